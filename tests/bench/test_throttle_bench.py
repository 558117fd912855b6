"""Smoke run of bench/throttle.py at a tiny size, so it cannot rot (rates and windows are never asserted)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.bench.runs import run_bench

HAVE_POSTGRES = bool(list(Path("/usr/lib/postgresql").glob("*/bin/postgres")))
HAVE_NGINX = Path("/usr/sbin/nginx").exists()

# Two `pushsvc serve` replicas need a store they share: PostgreSQL (memory:// is per process).
pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not HAVE_POSTGRES and os.environ.get("PUSHSVC_REQUIRE_POSTGRES") != "1",
                       reason="needs Debian's postgresql"),
    pytest.mark.skipif(not HAVE_NGINX, reason="needs nginx-light (bench/nginx.py)"),
]


def test_throttle_bench(tmp_path: Path) -> None:
    out = tmp_path / "throttle.json"
    record = run_bench(["-m", "bench.throttle", "-n", "200", "--rate", "100", "--window-s", "1", "--partition-size", "50"],
                       out, timeout_s=280, facts=("unthrottled (ceiling):", "windows of 1 s"))
    result = record["result"]
    # Every token got its receipt in both sends, the throttled one carried its rate, and windows were counted.
    assert result["ceiling"]["receipts"] == result["throttled"]["receipts"] == 200, result
    assert result["ceiling"]["max_per_second"] == 0 and result["throttled"]["max_per_second"] == 100, result
    assert result["window_counts"] and result["window_expected"] == 100, result
