"""Smoke run of bench/express.py at a tiny size, so it cannot rot (latencies are never asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runs import run_bench

pytestmark = pytest.mark.timeout(150)


def test_express_bench(tmp_path: Path) -> None:
    out = tmp_path / "express.json"
    record = run_bench(["-m", "bench.express", "-n", "1000", "--tries", "3", "--partition-size", "250"], out)
    result = record["result"]
    # Every try was timed, idle (the ceiling of the same run) and during the fan-out, which delivered everything.
    assert len(result["idle_s"]) == 3 and len(result["during_fan_out_s"]) == 3, result
    assert result["fan_out_delivered"] == 1000, result
    for row in (result["idle"], result["during_fan_out"]):
        assert 0 < row["p50_s"] <= row["p99_s"] <= row["max_s"], row
