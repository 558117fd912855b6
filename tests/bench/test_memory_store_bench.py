"""Smoke run of bench/memory_store.py at a tiny size, so it cannot rot.

It checks that the bench runs end to end, prints its table and writes its
JSON with every token and every receipt accounted for; the figures are taken
by hand at 1,000,000 tokens (bench/README.md), never asserted here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runs import run_bench

pytestmark = pytest.mark.timeout(300)


def test_memory_store_bench(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    record = run_bench(["-m", "bench.memory_store", "-n", "2000"], out, timeout_s=240,
                       facts=("registry / plain set of its tokens",))
    results = record["results"]
    assert set(results) == {"set", "tokens", "users"}
    assert [results[c]["tokens"] for c in ("set", "tokens", "users")] == [2000, 2000, 2000]
    assert [results[c]["receipts"] for c in ("tokens", "users")] == [2000, 2000]
    assert all("bytes_per_token" in r for r in results.values())
