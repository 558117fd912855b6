"""Smoke run of bench/cancel.py at a tiny size, so it cannot rot (rates are never asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runs import run_bench

pytestmark = pytest.mark.timeout(150)
needs_nginx = pytest.mark.skipif(not Path("/usr/sbin/nginx").exists(), reason="needs nginx-light (/usr/sbin/nginx, bench/nginx.py)")


@pytest.mark.parametrize("endpoint", [pytest.param("nginx", marks=needs_nginx), "emulator"])
def test_cancel_bench(tmp_path: Path, endpoint: str) -> None:
    n = 3000
    out = tmp_path / "cancel.json"
    extra = ["--endpoint", "emulator", "--latency-s", "0.02"] if endpoint == "emulator" else []
    record = run_bench(["-m", "bench.cancel", "-n", str(n), "--batch", "50", "--partition-size", "300",
                        "--cancel-at", "0.2", *extra], out)
    assert record["checks"] and all(record["checks"].values()), record["checks"]
    result = record["result"]
    assert result["partitions"] == 10 and result["bound"] == 500, result
    # The ceiling of the same run delivered everything; the cancelled Send accounts for every token.
    assert result["ceiling"]["notification"]["delivered"] == n and result["ceiling"]["endpoint_requests"] == n
    cancel = result["cancel"]
    final, stream = cancel["final"], cancel["stream"]
    assert (stream["receipts"], stream["tokens"]) == (n, n), stream
    assert final["delivered"] + final["cancelled"] == n and final["cancelled"] > 0, final
    assert stream["by_status"] == {"DELIVERY_STATUS_DELIVERED": final["delivered"],
                                   "DELIVERY_STATUS_CANCELLED": final["cancelled"]}, stream
    assert cancel["endpoint_requests"] == final["delivered"], cancel
    assert cancel["delivered_after_cancel_returned"] < result["bound"], cancel
