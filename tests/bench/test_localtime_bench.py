"""Smoke run of bench/localtime.py at a tiny size, so it cannot rot (times are never asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runs import run_bench

pytestmark = pytest.mark.timeout(200)


def test_localtime_bench(tmp_path: Path) -> None:
    record = run_bench(["-m", "bench.localtime", "-n", "1000", "--batch", "10", "--partition-size", "100"],
                       tmp_path / "localtime.json", timeout_s=180)
    result = record["result"]
    # Every group arrived at its instant and none before; the restart lost nothing and repeated at most a batch per worker.
    assert (result["early"], result["missing"], result["delivered"]) == (0, 0, 1000), result
    assert result["groups"] >= 20 and len(result["group_rows"]) == result["groups"], result
    assert 0 < result["restart"]["arrived_before_stop"] <= result["restart"]["group_tokens"], result
    assert result["repeats"] <= 2 * 10, result
    assert result["plain_send_to_last_receipt_s"] > 0, result
