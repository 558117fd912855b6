"""Smoke run of bench/fanout.py --locales at a tiny size: both Sends of each pair, and their ratio, are in the JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runs import run_bench

pytestmark = pytest.mark.timeout(150)


def test_fanout_locales(tmp_path: Path) -> None:
    n = 400
    out = tmp_path / "fanout.json"
    record = run_bench(["-m", "bench.fanout", "-n", str(n), "--null-provider", "--metrics", "--locales", "5", "--pairs", "2"],
                       out, facts=("localized / unlocalized",))
    runs = record["runs"]
    # Two pairs, the order alternating; every Send delivered to every token, and /metrics counted all four.
    assert [r["kind"] for r in runs] == ["plain", "localized", "localized", "plain"], runs
    assert all((r["targeted"], r["delivered"], r["state"]) == (n, n, "completed") for r in runs), runs
    assert record["result"]["metrics_delivered"] == 4 * n
    locales = record["locales"]
    assert locales["locales"] == 5 and len(locales["plain_cpu_us"]) == len(locales["localized_cpu_us"]) == 2
    assert locales["ratio"] == pytest.approx(locales["localized_median_us"] / locales["plain_median_us"])
