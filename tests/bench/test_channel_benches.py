"""Smoke runs of bench/webpush.py and bench/hms.py at a tiny size, so they cannot rot.

As in test_smoke.py: each exits 0, prints machine, date and commit, and its
JSON accounts for every delivery and carries the peer or ceiling of the same
run. No rate is asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runs import run_bench
from tests.bench.test_smoke import _check_ceiling, needs_nginx

pytestmark = pytest.mark.timeout(150)


@needs_nginx
def test_webpush(tmp_path: Path) -> None:
    n, peer_n, h2load_n = 300, 50, 500
    record = run_bench(["-m", "bench.webpush", "-n", str(n), "--peer-n", str(peer_n), "--h2load-n", str(h2load_n),
                       "--resend"], tmp_path / "webpush.json")
    result = record["result"]
    assert (result["targeted"], result["delivered"], result["state"]) == (n, n, "completed"), result
    again = result["resend"]
    assert (again["targeted"], again["delivered"], again["state"]) == (n, n, "completed"), again
    assert result["gateway_cpu_s"] > 0, result
    # The peer, pywebpush, sent its sample to the same endpoint in the same run, every answer a 201.
    peer = record["peer"]
    assert (peer["sent"], peer["ok"], peer["errors"]) == (peer_n, peer_n, {}), peer
    assert record["ratio"] == pytest.approx(result["rate"] / peer["rate"])
    assert record["ceiling"]["requests"] == h2load_n
    _check_ceiling(record["ceiling"])


def test_hms(tmp_path: Path) -> None:
    n, batch, h2load_n = 600, 100, 40
    record = run_bench(["-m", "bench.hms", "-n", str(n), "--batch", str(batch), "--h2load-n", str(h2load_n), "--gateway-alone"],
                       tmp_path / "hms.json")
    result = record["result"]
    assert (result["targeted"], result["delivered"], result["state"]) == (n, n, "completed"), result
    assert result["endpoint_cpu_s"] is not None, result
    alone = record["gateway_alone"]
    assert (alone["targeted"], alone["delivered"], alone["state"]) == (n, n, "completed"), alone
    assert record["ceiling"]["requests"] == h2load_n
    _check_ceiling(record["ceiling"])
    if record["ceiling"]["req_per_s"] is not None:
        # The ceiling is in deliveries: each h2load request carries one dispatcher batch of tokens.
        assert record["ceiling_deliveries_per_s"] == pytest.approx(record["ceiling"]["req_per_s"] * batch)
        assert record["ratio"] == pytest.approx(result["rate"] / record["ceiling_deliveries_per_s"])
