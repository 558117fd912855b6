"""/metrics after real traffic: a real gRPC server, the emulator over TLS + HTTP/2, scraped over HTTP."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from prometheus_client.parser import text_string_to_metric_families

from pushsvc.bootstrap import build_application
from pushsvc.config import Settings
from pushsvc.devstack import DevStack, start_dev_stack
from pushsvc.metrics import NULL_METRICS
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, apns, by_token, receipts, register
from tests.rpc.helpers import status_of

A, F = pb.PLATFORM_APNS, pb.PLATFORM_FCM
PUSH = "pushsvc.v1.PushService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
        text = reply.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def eventually(port: int, check: Callable[[Samples], bool], timeout_s: float = 10.0) -> Samples:
    """Scrapes until `check` holds (a stream's counters land as the server ends it), within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = await asyncio.to_thread(scrape, port)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.1)


@pytest.fixture
async def metered(tmp_path: Path) -> AsyncIterator[DevStack]:
    """The dev stack with the metrics endpoint on a free port."""
    dev = await start_dev_stack(
        state_dir=tmp_path / "dev", port=0, store_url="memory://metrics", dispatch=FAST_DISPATCH, metrics_port=0
    )
    try:
        yield dev
    finally:
        await dev.stop(0)


async def test_metrics_after_real_traffic_match_the_calls_and_the_receipts(metered: DevStack) -> None:
    port = metered.app.metrics_port
    assert port
    before = await asyncio.to_thread(scrape, port)
    assert get(before, "pushsvc_serving") == 1 and get(before, "pushsvc_store_up") == 1
    tokens = {apns(1): A, apns(2, "0410"): A, "fcm-ok": F, "quota-m1": F, "unregistered-m1": F}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered.app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        for token, platform in tokens.items():
            await register(stub, token, platform, user_id="metered-user")
        bad = pb.RegisterTokenRequest(app_id=APP, token="zz", platform=A)
        assert await status_of(stub.RegisterToken(bad)) == grpc.StatusCode.INVALID_ARGUMENT
        sent = await stub.Send(
            pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["metered-user"])), message=pb.Message(title="m"))
        )
        got = by_token(await receipts(stub, sent.notification_id))
        await stub.GetNotification(pb.GetNotificationRequest(app_id=APP, notification_id=sent.notification_id))
        later = timestamp_pb2.Timestamp()
        later.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
        await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="later"), send_at=later))

    def calls(s: Samples, method: str, code: str = "OK") -> float:
        return get(s, "pushsvc_rpcs_total", service=PUSH, method=method, code=code)

    samples = await eventually(port, lambda s: calls(s, "StreamReceipts") == 1 and get(s, "pushsvc_queue_depth") == 1)
    assert calls(samples, "RegisterToken") == len(tokens)
    assert calls(samples, "RegisterToken", "INVALID_ARGUMENT") == 1
    assert (calls(samples, "Send"), calls(samples, "GetNotification"), calls(samples, "StreamReceipts")) == (2, 1, 1)
    histogram = {"service": PUSH, "method": "RegisterToken"}
    assert get(samples, "pushsvc_rpc_duration_seconds_count", **histogram) == len(tokens) + 1
    assert get(samples, "pushsvc_rpc_duration_seconds_bucket", **histogram, le="+Inf") == len(tokens) + 1
    assert get(samples, "pushsvc_rpc_duration_seconds_sum", **histogram) > 0

    # Deliveries agree with the receipts, by platform, status and reason.
    platform_name = {A: "apns", F: "fcm"}
    expected: dict[tuple[str, str, str], int] = {}
    for token, r in got.items():
        key = (platform_name[tokens[token]], pb.DeliveryStatus.Name(r.status).removeprefix("DELIVERY_STATUS_"), r.reason or "none")
        expected[key] = expected.get(key, 0) + 1
    assert expected == {
        ("apns", "DELIVERED", "none"): 1, ("apns", "TOKEN_INVALID", "Unregistered"): 1,
        ("fcm", "DELIVERED", "none"): 2, ("fcm", "TOKEN_INVALID", "UNREGISTERED"): 1,
    }
    for (platform, status, reason), n in expected.items():
        assert get(samples, "pushsvc_deliveries_total", app=APP, platform=platform, status=status, reason=reason) == n
    assert total(samples, "pushsvc_deliveries_total") == len(tokens)
    # The quota- token was answered 429 QUOTA_EXCEEDED once, then delivered.
    assert got["quota-m1"].attempts == 2
    assert get(samples, "pushsvc_delivery_retries_total", app=APP, platform="fcm", reason="QUOTA_EXCEEDED") == 1
    # One provider request per attempt; nothing left in flight.
    for platform in ("apns", "fcm"):
        attempts = sum(r.attempts for t, r in got.items() if platform_name[tokens[t]] == platform)
        assert total(samples, "pushsvc_provider_request_duration_seconds_count", app=APP, platform=platform) == attempts
        assert get(samples, "pushsvc_deliveries_in_flight", app=APP, platform=platform) == 0
    assert get(samples, "pushsvc_provider_request_duration_seconds_count", app=APP, platform="fcm", outcome="retryable") == 1
    assert get(samples, "pushsvc_credential_refreshes_total", kind="apns_jwt", result="ok") >= 1
    assert get(samples, "pushsvc_credential_refreshes_total", kind="fcm_oauth", result="ok") >= 1
    assert total(samples, "pushsvc_credential_refreshes_total", result="error") == 0
    # The scheduled Send is the one unfinished notification.
    assert get(samples, "pushsvc_queue_depth") == 1

    # No label value carries a token or a user id.
    values = {v for _, ls in samples for _, v in ls}
    leaked = [v for v in values for secret in (*tokens, "metered-user") if secret in v]
    assert leaked == []


async def test_health_checks_and_unknown_methods_stay_bounded(metered: DevStack) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered.app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
        for i in range(3):
            call = channel.unary_unary(f"/pushsvc.v1.PushService/Nope{i}")
            assert await status_of(call(b"")) == grpc.StatusCode.UNIMPLEMENTED
    samples = await asyncio.to_thread(scrape, metered.app.metrics_port)
    assert get(samples, "pushsvc_rpcs_total", service="grpc.health.v1.Health", method="Check", code="OK") == 1
    assert not [ls for n, ls in samples if n == "pushsvc_rpcs_total" and ("method", "Nope0") in ls]
    # A method's series appear once it has been called: none for Watch, which nobody called.
    assert [ls for n, ls in samples if n == "pushsvc_rpc_duration_seconds_count" and ("method", "Check") in ls]
    assert not [ls for n, ls in samples if n.startswith("pushsvc_rpc_duration_seconds") and ("method", "Watch") in ls]


async def test_the_endpoint_stops_with_the_application(tmp_path: Path) -> None:
    dev = await start_dev_stack(state_dir=tmp_path / "dev", port=0, store_url="memory://stop", metrics_port=0)
    port = dev.app.metrics_port
    assert get(await asyncio.to_thread(scrape, port), "pushsvc_serving") == 1
    await dev.stop(0)
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(scrape, port)


async def test_metrics_are_off_with_port_0() -> None:
    app = build_application(Settings(store_url="memory://off", host="127.0.0.1", port=0), providers={})
    await app.start()
    try:
        assert app.metrics_server is None and app.metrics is NULL_METRICS and app.metrics_port == 0
    finally:
        await app.stop(0)
