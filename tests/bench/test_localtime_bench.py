"""Smoke run of bench/localtime.py at a tiny size, so it cannot rot (times are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CONTEXT_FIELDS = {"cpu", "cores", "ram_gib", "load_average", "python", "date_utc", "commit", "versions"}

pytestmark = pytest.mark.timeout(200)


def test_localtime_bench(tmp_path: Path) -> None:
    out = tmp_path / "localtime.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.localtime", "-n", "1000", "--batch", "10", "--partition-size", "100", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for fact in ("machine:", "date:", "commit:"):
        assert fact in proc.stdout, proc.stdout
    record = json.loads(out.read_text())
    assert CONTEXT_FIELDS <= set(record["context"]), record["context"]
    result = record["result"]
    # Every group arrived at its instant and none before; the restart lost nothing and repeated at most a batch per worker.
    assert (result["early"], result["missing"], result["delivered"]) == (0, 0, 1000), result
    assert result["groups"] >= 20 and len(result["group_rows"]) == result["groups"], result
    assert 0 < result["restart"]["arrived_before_stop"] <= result["restart"]["group_tokens"], result
    assert result["repeats"] <= 2 * 10, result
    assert result["plain_send_to_last_receipt_s"] > 0, result
