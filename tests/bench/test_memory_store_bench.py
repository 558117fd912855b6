"""Smoke run of bench/memory_store.py at a tiny size, so it cannot rot.

It checks that the bench runs end to end, prints its table and writes its
JSON with every token and every receipt accounted for; the figures are taken
by hand at 1,000,000 tokens (bench/README.md), never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.timeout(300)


def test_memory_store_bench(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    proc = subprocess.run([sys.executable, "-m", "bench.memory_store", "-n", "2000", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "machine:" in proc.stdout and "commit:" in proc.stdout, proc.stdout
    assert "registry / plain set of its tokens" in proc.stdout, proc.stdout
    record = json.loads(out.read_text())
    results = record["results"]
    assert set(results) == {"set", "tokens", "users"}
    assert [results[c]["tokens"] for c in ("set", "tokens", "users")] == [2000, 2000, 2000]
    assert [results[c]["receipts"] for c in ("tokens", "users")] == [2000, 2000]
    assert all("bytes_per_token" in r for r in results.values())
