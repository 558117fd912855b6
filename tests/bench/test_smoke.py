"""Smoke runs of every other benchmark entry point at a tiny size, so they cannot rot.

Each test runs one bench as its README says (a few hundred deliveries or
requests), and checks that it exits 0, prints the header facts (machine, date,
commit), writes its JSON with those facts, that the JSON accounts for every
delivery or request the bench counts, and that the peer or ceiling of the
same run is there. Rates and latencies are never asserted: the figures are
taken by hand on a quiet machine (bench/README.md). The PostgreSQL benches
have their own smoke tests (test_postgres_benches.py).

h2load is optional for the benches themselves (their ceiling then reads n/a),
so where it is missing the tests check that the JSON says so instead of
checking the ceiling's count.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.bench.runs import run_bench

HAVE_NGINX = Path("/usr/sbin/nginx").exists()
HAVE_H2LOAD = shutil.which("h2load") is not None
HAVE_GHZ = shutil.which("ghz") is not None or (Path.home() / "go/bin/ghz").exists()
needs_nginx = pytest.mark.skipif(not HAVE_NGINX, reason="needs nginx-light (/usr/sbin/nginx, bench/nginx.py)")

TEST_TIMEOUT_S = 150
"""Per test; each bench gets a little less (runs.RUN_TIMEOUT_S)."""

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)


def _check_ceiling(ceiling: dict[str, Any]) -> None:
    """An h2load ceiling answered every request 2xx; without h2load, the JSON says why there is none."""
    if HAVE_H2LOAD:
        assert ceiling["req_per_s"] is not None, ceiling
        assert ceiling["ok_2xx"] == ceiling["requests"] and ceiling["failed"] == 0, ceiling
    else:
        assert ceiling["req_per_s"] is None and "h2load not installed" in ceiling["error"], ceiling


# ------------------------------------------------------------------ bench/providers.py


@pytest.mark.parametrize("endpoint", ["emulator", pytest.param("nginx", marks=needs_nginx)])
def test_providers(tmp_path: Path, endpoint: str) -> None:
    n, h2load_n = 200, 500
    record = run_bench(["-m", "bench.providers", "-n", str(n), "--endpoints", endpoint, "--h2load-n", str(h2load_n),
                       "--timeout-s", "60"], tmp_path / "providers.json")
    rows = record["rows"]
    assert {r["client"] for r in rows} == {"pushsvc-apns", "pushsvc-fcm", "aioapns", "firebase-admin"}
    for row in rows:
        assert row["endpoint"] == endpoint
        assert (row["sends"], row["ok"], row["errors"], row["errors_total"]) == (n, n, {}, 0), row
        if row["client"].startswith("pushsvc-"):
            # The peer (aioapns, firebase-admin) was measured in the same run.
            assert row["ratio_vs_peer"] is not None, row
    ceilings = record["endpoints"][endpoint]["ceilings"]
    assert set(ceilings) == {"apns", "fcm"}
    for ceiling in ceilings.values():
        assert ceiling["requests"] == h2load_n
        _check_ceiling(ceiling)


# ------------------------------------------------------------------ bench/auth.py


def test_auth(tmp_path: Path) -> None:
    n = 300
    record = run_bench(["-m", "bench.auth", "-n", str(n), "--repeat", "1", "--decisions", "100"], tmp_path / "auth.json")
    runs = record["runs"]
    assert set(runs) == {"none", "open", "api_key", "jwt"}
    for mode, rounds in runs.items():
        assert [(r["requests"], r["answered"]) for r in rounds] == [(n, n)], mode
    # `none` is the peer every mode is compared with; the auth decision is timed in-process beside it.
    assert "none" in record["median"]
    assert set(record["decision_us"]) == {"api_key", "jwt", "jwt first use"}


# ------------------------------------------------------------------ bench/fanout.py


@pytest.mark.parametrize(
    "variant",
    ["emulator", pytest.param("nginx", marks=needs_nginx), "null-provider", "python-gc"],
)
def test_fanout(tmp_path: Path, variant: str) -> None:
    n = 300
    extra = {"emulator": ["--h2load-n", "600"], "nginx": ["--endpoint", "nginx"],
             "null-provider": ["--null-provider", "--metrics"],
             "python-gc": ["--null-provider", "--python-gc", "--workers", "3"]}[variant]
    record = run_bench(["-m", "bench.fanout", "-n", str(n), *extra], tmp_path / "fanout.json")
    result = record["result"]
    assert (result["targeted"], result["delivered"], result["state"]) == (n, n, "completed"), result
    # The event loop's thread: its CPU is part of the process's, and its idle time part of the wall time.
    assert 0 < result["loop_cpu_s"] <= result["gateway_cpu_s"] + 0.01, result
    assert 0 <= result["loop_idle_s"] <= result["seconds"], result
    assert result["loop_waited_for_cpu_s"] >= 0, result
    assert record["args"]["serve_gc"] == str(variant != "python-gc")
    assert record["args"]["workers"] == ("3" if variant == "python-gc" else "2")
    if "--null-provider" in extra:
        # No request leaves the process, so there is no endpoint to measure; /metrics counted every delivery.
        assert record["ceiling"] is None
        assert result["metrics_delivered"] == (n if "--metrics" in extra else None)
    else:
        _check_ceiling(record["ceiling"])
    if variant == "emulator":
        # The emulator's CPU during the fan-out, and its ceiling measured the same way: APNs, FCM and 50/50.
        assert result["emulator_cpu_s"] > 0, result
        assert set(record["emulator_ceilings"]) == {"apns", "fcm", "mix"}, record["emulator_ceilings"]
        assert record["emulator_ceilings"]["mix"]["requests"] == 600
        for ceiling in record["emulator_ceilings"].values():
            _check_ceiling(ceiling)
            assert ceiling["emulator_cpu_us_per_req"] > 0, ceiling
        assert record["ceiling"]["req_per_s"] == record["emulator_ceilings"]["mix"]["req_per_s"]
        # h2load's APNs requests go to one device token each, as the fan-out's do (all answered 2xx above).
        assert "-i <300 paths>" in record["emulator_ceilings"]["apns"]["command"], record["emulator_ceilings"]
        # Both sides' share of their core during the fan-out, to tell which one bounds it.
        assert 0 < record["gateway_busy"] and 0 < record["emulator_busy"], record
        assert record["emulator_cpu_ratio"] > 0, record


# ------------------------------------------------------------------ bench/register.py


@pytest.mark.skipif(not HAVE_GHZ, reason="needs ghz (go install github.com/bojand/ghz/cmd/ghz@v0.120.0)")
def test_register(tmp_path: Path) -> None:
    n = 300
    record = run_bench(["bench/register.py", "-n", str(n), "--preload", "300", "--chain-calls", "200"], tmp_path / "register.json")
    # The echo server before and after is the peer; RegisterToken at full and at half load.
    for run in ("echo_before", "echo_after", "full", "half"):
        assert (record[run]["count"], record[run]["status"], record[run]["errors"]) == (n, {"OK": n}, {}), run
    # Each server's CPU per call, read from /proc around its runs (clock ticks: a tiny echo run may read 0).
    assert all(record[run]["server_cpu_us_per_call"] >= 0 for run in ("echo_before", "echo_after")), record
    assert record["full"]["server_cpu_us_per_call"] > 0 and record["cpu_ratio"] >= 0, record
    assert record["handler_chain_us"] > 0, record


# ------------------------------------------------------------------ bench/tokens_import.py


def test_tokens_import(tmp_path: Path) -> None:
    n, unary_n = 300, 200
    record = run_bench(["-m", "bench.tokens_import", "-n", str(n), "--batch-size", "100", "--unary-n", str(unary_n)],
                       tmp_path / "import.json")
    assert record["ok"] is True
    assert record["registered"] == n
    for run in ("ceiling", "bulk"):
        summary = record[run]["summary"]
        assert (summary["rows"], summary["created"], summary["bad"], summary["complete"]) == (n, n, 0, True), run
    assert (record["unary"]["rows"], record["unary"]["answered"]) == (unary_n, unary_n)


# ------------------------------------------------------------------ bench/connect.py


@pytest.mark.skipif(not (HAVE_GHZ and HAVE_H2LOAD), reason="needs ghz and h2load (nghttp2-client)")
def test_connect(tmp_path: Path) -> None:
    n = 200
    record = run_bench(["bench/connect.py", "-n", str(n), "--rounds", "1"], tmp_path / "connect.json")
    # The gRPC path (ghz) is the peer of the Connect path (h2load), in the same run against the same server.
    assert [(r["path"], r["requests"], r["ok"]) for r in record["runs"]] == [("grpc", n, n), ("connect", n, n)]
    assert all(r["server_cpu_s"] > 0 for r in record["runs"]), record["runs"]
    assert record["ratio"] > 0 and record["goal"] == 1.2
