"""Scheduling, ttl, the APNs 410 timestamp rule, credential failure, back-pressure (injected clocks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.devstack import DevStack, start_dev_stack
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, apns, by_token, notification, receipts, register, seed
from tests.rpc.helpers import status_of

A, F = pb.PLATFORM_APNS, pb.PLATFORM_FCM
HELLO = pb.Message(title="Hello")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def timed(store_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[tuple[DevStack, push_pb2_grpc.PushServiceStub]]:
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=FAST_DISPATCH, clock=clock)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            yield dev, push_pb2_grpc.PushServiceStub(channel)
    finally:
        await dev.stop(0)


def ts(dt: object) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(dt)  # type: ignore[arg-type]
    return t


def to(*devices: tuple[str, int]) -> pb.Target:
    return pb.Target(devices=pb.DeviceList(devices=[pb.Device(token=t, platform=p) for t, p in devices]))


async def test_send_at_holds_delivery_until_the_clock_gets_there(timed: tuple[DevStack, push_pb2_grpc.PushServiceStub], clock: ManualClock) -> None:
    dev, stub = timed
    sent = await stub.Send(pb.SendRequest(app_id=APP, target=to((apns(1), A)), message=HELLO, send_at=ts(clock.now() + timedelta(minutes=10))))
    await asyncio.sleep(0.4)  # several dispatcher polls
    n = await notification(stub, sent.notification_id)
    assert n.state == pb.NOTIFICATION_STATE_SCHEDULED and n.pending == 1
    assert dev.emulator.inbox.entries() == []
    clock.advance(601)
    dev.app.dispatcher.wake()
    got = await receipts(stub, sent.notification_id)
    assert [r.status for r in got] == [pb.DELIVERY_STATUS_DELIVERED]
    assert (await notification(stub, sent.notification_id)).state == pb.NOTIFICATION_STATE_COMPLETED


async def test_tokens_unregistered_before_a_scheduled_fan_out_are_reported_as_vanished(
    timed: tuple[DevStack, push_pb2_grpc.PushServiceStub], clock: ManualClock
) -> None:
    _, stub = timed
    tokens = [f"fcm-v{i}" for i in range(5)]
    for t in tokens:
        await register(stub, t, F, user_id="vanish")
    target = pb.Target(users=pb.UserList(user_ids=["vanish"]))
    sent = await stub.Send(pb.SendRequest(app_id=APP, target=target, message=HELLO, send_at=ts(clock.now() + timedelta(minutes=1))))
    assert sent.targeted == 5
    for t in tokens[:2]:
        await stub.UnregisterToken(pb.UnregisterTokenRequest(app_id=APP, token=t, platform=F))
    clock.advance(61)
    dev = timed[0]
    dev.app.dispatcher.wake()
    got = await receipts(stub, sent.notification_id)
    assert sorted(r.token for r in got) == tokens[2:]
    n = await notification(stub, sent.notification_id)
    # targeted stays what Send reported; the two that were gone are said to be.
    assert (n.state, n.targeted, n.delivered, n.vanished, n.pending) == (pb.NOTIFICATION_STATE_COMPLETED, 5, 3, 2, 0)


async def test_a_message_whose_ttl_passed_before_delivery_expires(timed: tuple[DevStack, push_pb2_grpc.PushServiceStub], clock: ManualClock) -> None:
    dev, stub = timed
    msg = pb.Message(title="flash sale", ttl=duration_pb2.Duration(seconds=30))
    sent = await stub.Send(pb.SendRequest(app_id=APP, target=to((apns(1), A), ("fcm-1", F)), message=msg, send_at=ts(clock.now() + timedelta(seconds=5))))
    clock.advance(120)  # the dispatcher only gets to it after the ttl
    dev.app.dispatcher.wake()
    got = by_token(await receipts(stub, sent.notification_id))
    assert {t: (r.status, r.attempts, r.reason) for t, r in got.items()} == {
        apns(1): (pb.DELIVERY_STATUS_EXPIRED, 0, "TtlExpired"),
        "fcm-1": (pb.DELIVERY_STATUS_EXPIRED, 0, "TtlExpired"),
    }
    n = await notification(stub, sent.notification_id)
    assert (n.state, n.expired, n.delivered, n.pending) == (pb.NOTIFICATION_STATE_COMPLETED, 2, 0, 0)
    assert dev.emulator.inbox.entries() == []


@pytest.mark.parametrize("registered_offset_s, kept", [(+3600, True), (-3600, False)])
async def test_apns_410_keeps_a_token_re_registered_after_apples_timestamp(
    store_url: str, tmp_path: Path, registered_offset_s: int, kept: bool
) -> None:
    # The emulator stamps the 410 with the real time; pushsvc's clock says when the
    # token was last registered: an hour after (kept) or an hour before (removed).
    # The clock is back at the real time before the send, because it also signs
    # the APNs JWT, which the emulator checks against the real time.
    clock = ManualClock()
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=FAST_DISPATCH, clock=clock)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            dead = apns(1, "0410")
            clock.advance(registered_offset_s)
            await register(stub, dead, A, user_id="u")
            clock.advance(-registered_offset_s)
            sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["u"])), message=HELLO))
            (r,) = await receipts(stub, sent.notification_id)
            assert (r.status, r.provider_status, r.reason) == (pb.DELIVERY_STATUS_TOKEN_INVALID, 410, "Unregistered")
            assert r.token_removed is (not kept)
            still = await stub.UnregisterToken(pb.UnregisterTokenRequest(app_id=APP, token=dead, platform=A))
            assert still.removed is kept
    finally:
        await dev.stop(0)


async def test_rejected_credentials_fail_the_notification_and_stop_the_fan_out(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    # "thirdparty-" makes the FCM emulator answer 401 THIRD_PARTY_AUTH_ERROR: the
    # app's APNs credentials held by FCM are bad, which condemns every token.
    await register(stack_stub, "thirdparty-1", F, user_id="u")
    # Fan-out runs in token order within a partition: "zz-" tokens sort after
    # "thirdparty-1", so the credential failure comes in the first batch.
    await seed(stack.app.stores, [(f"zz-{i:03d}", models.Platform.FCM) for i in range(450)], user_id="u")
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["u"])), message=HELLO))
    assert sent.targeted == 451
    got = by_token(await receipts(stack_stub, sent.notification_id))
    n = await notification(stack_stub, sent.notification_id)
    assert n.state == pb.NOTIFICATION_STATE_FAILED
    assert "rejected the app's credentials" in n.error and "THIRD_PARTY_AUTH_ERROR" in n.error
    assert got["thirdparty-1"].status == pb.DELIVERY_STATUS_FAILED and got["thirdparty-1"].provider_status == 401
    # Only the batch in flight was attempted (batch_size 100), not all 451...
    assert len(stack.emulator.inbox.entries()) < FAST_DISPATCH.batch_size
    # ...and still every targeted token ends with one receipt: the others say why.
    assert len(got) == 451
    unsent = [r for r in got.values() if r.reason == "NotificationFailed"]
    assert len(unsent) >= 451 - FAST_DISPATCH.batch_size
    assert all(r.status == pb.DELIVERY_STATUS_FAILED and r.attempts == 0 for r in unsent)
    assert (n.pending, n.delivered + n.failed + n.invalid_tokens + n.expired + n.vanished) == (0, 451)


async def test_a_credential_failure_gives_a_receipt_to_every_token_even_one_mid_retry(
    store_url: str, tmp_path: Path
) -> None:
    # A retry backoff far longer than the test may take: the APNs token is
    # certainly waiting to retry when FCM condemns the notification.
    dispatch = FAST_DISPATCH.model_copy(update={"initial_backoff_s": 60.0, "max_backoff_s": 60.0})
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=dispatch)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            retrying = apns(1, "0503")  # 503 on the first attempt, then 200
            await register(stub, retrying, A, user_id="u")
            await register(stub, "thirdparty-1", F, user_id="u")
            sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["u"])), message=HELLO))
            assert sent.targeted == 2
            got = by_token(await receipts(stub, sent.notification_id, timeout_s=20.0))
            n = await notification(stub, sent.notification_id)
    finally:
        await dev.stop(0)
    assert set(got) == {retrying, "thirdparty-1"}
    assert (got["thirdparty-1"].status, got["thirdparty-1"].provider_status, got["thirdparty-1"].reason) == (
        pb.DELIVERY_STATUS_FAILED, 401, "THIRD_PARTY_AUTH_ERROR"
    )
    r = got[retrying]
    assert (r.status, r.reason, r.attempts, r.provider_status) == (pb.DELIVERY_STATUS_FAILED, "NotificationFailed", 1, 503)
    assert n.state == pb.NOTIFICATION_STATE_FAILED and "THIRD_PARTY_AUTH_ERROR" in n.error
    assert (n.targeted, n.failed, n.pending) == (2, 2, 0)
    assert n.delivered + n.failed + n.invalid_tokens + n.expired + n.vanished == n.targeted


async def test_queue_depth_limit_answers_resource_exhausted(store_url: str, tmp_path: Path) -> None:
    dispatch = FAST_DISPATCH.model_copy(update={"max_queue_depth": 2})
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=dispatch)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            later = ts(dev.app.clock.now() + timedelta(days=1))
            for i in range(2):
                await stub.Send(pb.SendRequest(app_id=APP, target=to((apns(i), A)), message=HELLO, send_at=later))
            req = pb.SendRequest(app_id=APP, target=to((apns(9), A)), message=HELLO, send_at=later)
            assert await status_of(stub.Send(req)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await dev.stop(0)
