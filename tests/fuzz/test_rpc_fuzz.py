"""Fuzzing every PushService RPC with Hypothesis: no input gets INTERNAL or UNKNOWN.

One server process (`tests.fuzz.server`: the dev stack on the embedded store)
serves the whole module. Each RPC gets structured requests built from the
proto descriptors and raw request bytes (see `tests.fuzz.strategies`). Every
answer must be OK or a status a caller's mistake may get, and an
INVALID_ARGUMENT must carry a BadRequest naming at least one field. After the
run the server must still register a token and report SERVING, its RSS must
have grown by at most RSS_GROWTH_BOUND_MB, and its log must hold no traceback
and no ERROR line.

Size: PUSHSVC_FUZZ_EXAMPLES examples per RPC and kind (structured, raw), so
14 times that in all against the server (and 7 times that more for the
field-naming walk, which runs in the test process). The default, 150, keeps CI under a minute; the
dedicated run uses 1000 (14,000 examples):

    PUSHSVC_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest tests/fuzz -q -p no:randomly --timeout 3600

PUSHSVC_FUZZ_STORE_URL=mongodb://... runs the server on a real store instead.
The Hypothesis example database is off, so nothing is written into the repo.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings

from pushsvc.rpc import wire
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.fuzz import strategies

# Hypothesis warns when a failing example's repr is large; the example still matters.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

ROOT = Path(__file__).resolve().parents[2]
SERVICE = pb.DESCRIPTOR.services_by_name["PushService"]
METHODS = [m.name for m in SERVICE.methods]
EXAMPLES = int(os.environ.get("PUSHSVC_FUZZ_EXAMPLES", "150"))
STORE_URL = os.environ.get("PUSHSVC_FUZZ_STORE_URL", "mongomock://localhost/fuzz")
"""The fuzz server's store: the embedded one, or e.g. a FerretDB database."""
RSS_GROWTH_BOUND_MB = 32 + EXAMPLES * 2 * len(METHODS) * 2 / 1024
"""32 MB, plus 2 KB per example for what a valid request may legitimately store (tokens, notifications)."""
UNARY_TIMEOUT_S = 10.0
STREAM_TIMEOUT_S = 0.1
"""A valid StreamReceipts follows a live feed until its deadline; DEADLINE_EXCEEDED is then the client's own doing."""

CALLER_MISTAKES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@dataclass
class Target:
    """The server under attack and a channel to it."""

    process: subprocess.Popen[str]
    log_path: Path
    channel: grpc.Channel
    started_at: float
    rss_start_kb: int = 0
    examples: dict[str, int] = field(default_factory=dict)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(method, status) counts, printed at the end to show how deep the fuzzing reached."""

    def rss_kb(self) -> int:
        """The server process's resident set size."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        assert match, status
        return int(match.group(1))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    state = tmp_path_factory.mktemp("fuzz")
    log_path = state / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.server", str(state / "dev"), STORE_URL],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
        )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().strip() or 0)
        assert port, f"fuzz server did not start: {log_path.read_text()[-2000:]}"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        t = Target(process=process, log_path=log_path, channel=channel, started_at=time.monotonic())
        # Warm up every RPC once so the baseline includes the server's first-call allocations.
        for method in METHODS:
            _call(t, method, b"")
        t.rss_start_kb = t.rss_kb()
        yield t
        channel.close()
    finally:
        for pipe in (process.stdin, process.stdout):
            if pipe:
                pipe.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _call(t: Target, method: str, data: bytes) -> None:
    """Sends raw request bytes; fails unless the answer is OK or a caller's-mistake status."""
    path = f"/{SERVICE.full_name}/{method}"
    t.examples[method] = t.examples.get(method, 0) + 1
    streaming = SERVICE.methods_by_name[method].server_streaming
    try:
        if streaming:
            for _ in t.channel.unary_stream(path)(data, timeout=STREAM_TIMEOUT_S):
                pass
        else:
            t.channel.unary_unary(path)(data, timeout=UNARY_TIMEOUT_S)
        t.codes[method, "OK"] += 1
    except grpc.RpcError as err:
        code = err.code()  # type: ignore[attr-defined]
        t.codes[method, code.name] += 1
        if streaming and code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return
        assert code in CALLER_MISTAKES, f"{method}: {code} {err.details()}"  # type: ignore[attr-defined]
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            status = rpc_status.from_call(err)  # type: ignore[arg-type]
            assert status is not None, f"{method}: INVALID_ARGUMENT without a google.rpc.Status"
            bad = error_details_pb2.BadRequest()
            assert any(d.Unpack(bad) for d in status.details) and bad.field_violations, err.details()  # type: ignore[attr-defined]


def _input(method: str) -> descriptor.Descriptor:
    return SERVICE.methods_by_name[method].input_type


@pytest.mark.parametrize("method", METHODS)
def test_structured_requests(target: Target, method: str) -> None:
    @FUZZ
    @given(data=strategies.requests(_input(method)))
    def run(data: bytes) -> None:
        _call(target, method, data)

    run()


@pytest.mark.parametrize("method", METHODS)
def test_raw_request_bytes(target: Target, method: str) -> None:
    @FUZZ
    @given(data=strategies.raw_bytes(_input(method)))
    def run(data: bytes) -> None:
        _call(target, method, data)

    run()


@pytest.mark.parametrize("method", METHODS)
def test_naming_the_bad_field_never_raises(method: str) -> None:
    """The server swallows a failure here (the field is then ""), so it is checked directly."""
    desc = _input(method)

    @FUZZ
    @given(data=strategies.raw_bytes(desc))
    def run(data: bytes) -> None:
        for too_deep in (False, True):
            path = wire.bad_field(desc, data, too_deep=too_deep)
            assert isinstance(path, str) and len(path) < 2000

    run()


def test_the_server_survives_serving_and_bounded(target: Target) -> None:
    """Runs last in this module: the same server still answers, within its memory bound, with a clean log."""
    stub = push_pb2_grpc.PushServiceStub(target.channel)
    ok = stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token="cd" * 32, platform=pb.PLATFORM_APNS), timeout=10)
    assert ok.token.token == "cd" * 32
    health = health_pb2_grpc.HealthStub(target.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert target.process.poll() is None

    grown_mb = (target.rss_kb() - target.rss_start_kb) / 1024
    total = sum(target.examples.values())
    elapsed_s = time.monotonic() - target.started_at
    print(f"\nfuzz: {total} calls in {elapsed_s:.0f} s; server RSS grew {grown_mb:.1f} MB (bound {RSS_GROWTH_BOUND_MB:.0f} MB)")
    for method in METHODS:
        print(f"  {method}: " + ", ".join(f"{code} {n}" for (m, code), n in sorted(target.codes.items()) if m == method))
    assert grown_mb <= RSS_GROWTH_BOUND_MB

    log = target.log_path.read_text()
    assert "Traceback" not in log, log[-4000:]
    assert not [line for line in log.splitlines() if line.startswith(("ERROR", "CRITICAL"))], log[-4000:]
    rejected = [line for line in log.splitlines() if "rejected an unparsable request" in line]
    # The throttle: at most one line per method per second (plus one per method for the first window).
    assert len(rejected) <= len(METHODS) * (elapsed_s + 1), len(rejected)
    assert all(len(line) < 300 for line in rejected)
