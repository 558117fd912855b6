"""Throttled fan-out end to end: real gRPC servers, real dispatchers, the emulator over TLS + HTTP/2, every backend.

The rate itself is held to 10% over every 10 s window in virtual time
(tests/unit/test_dispatch_throttle.py) and measured in real time by
bench/throttle.py; here the real stack shows that the rate reaches the store
and the dispatchers (no token sent sooner than the rate allows, on one
replica or two), that the app's default applies, that bad input is refused
and that a cancel stops a throttled fan-out.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import grpc

from pushsvc import models
from pushsvc.bootstrap import Application, build_application
from pushsvc.config import Settings
from pushsvc.devstack import DEMO_APP_ID, DevStack, demo_app_settings, start_dev_stack
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, by_token, notification, receipts, register, seed
from tests.rpc.helpers import violations

F = pb.PLATFORM_FCM
HELLO = pb.Message(title="Hello", body="World")


async def _replica_with_default(dev: DevStack, default_max_per_second: int) -> Application:
    """A second replica on the dev stack's store and emulator whose demo app has a default rate."""
    app = demo_app_settings(DEMO_APP_ID, dev.emulator, dev.credentials).model_copy(
        update={"default_max_per_second": default_max_per_second}
    )
    settings = Settings(
        store_url=dev.app.settings.store_url, host="127.0.0.1", port=0, apps={DEMO_APP_ID: app},
        dispatch=dev.app.settings.dispatch.model_copy(update={"replica_id": "second-replica"}),
    )
    replica = build_application(settings, clock=dev.app.clock, stores=dev.app.stores)
    await replica.start()
    return replica


def _last_after_s(got: dict[str, pb.Receipt], before: datetime) -> float:
    """How long after `before` (taken just before the Send) the last receipt was answered.

    The first booking starts no earlier than one batch before `before` (the
    dispatcher's tolerance), so the last batch starts no earlier than that
    plus the bookings ahead of it; the first receipt is no reference (the
    first batch also sets up the connections).
    """
    return (max(r.at.ToDatetime(tzinfo=UTC) for r in got.values()) - before).total_seconds()


async def test_a_throttled_send_is_sent_no_faster_than_its_rate(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    tokens = [f"fcm-thr-{i:03d}" for i in range(60)]
    await seed(stack.app.stores, [(t, models.Platform.FCM) for t in tokens])
    before = datetime.now(UTC)
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO, max_per_second=40))
    n = await notification(stack_stub, sent.notification_id)
    assert n.max_per_second == 40
    got = by_token(await receipts(stack_stub, sent.notification_id, timeout_s=60))
    assert set(got) == set(tokens) and {r.status for r in got.values()} == {pb.DELIVERY_STATUS_DELIVERED}
    # 60 at 40/s in batches of 8 (200 ms of the rate): the last starts 56/40 s after the first,
    # which may start 0.2 s early.
    assert _last_after_s(got, before) >= 56 / 40 - 0.2 - 0.01
    n = await notification(stack_stub, sent.notification_id)
    assert (n.state, n.delivered, n.pending, n.max_per_second) == (pb.NOTIFICATION_STATE_COMPLETED, 60, 0, 40)


async def test_the_apps_default_rate_applies_and_two_replicas_share_it(store_url: str, tmp_path: Path) -> None:
    # Four partitions: both replicas send, from one budget.
    dispatch = FAST_DISPATCH.model_copy(update={"partition_size": 20, "lease_s": 30})
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=dispatch)
    replica = await _replica_with_default(dev, 50)
    try:
        tokens = [f"fcm-def-{i:03d}" for i in range(80)]
        await seed(dev.app.stores, [(t, models.Platform.FCM) for t in tokens])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{replica.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            before = datetime.now(UTC)
            sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO))
            assert (await notification(stub, sent.notification_id)).max_per_second == 50
            got = by_token(await receipts(stub, sent.notification_id, timeout_s=60))
            own = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO, max_per_second=7))
            assert (await notification(stub, own.notification_id)).max_per_second == 7, "the Send's own rate wins"
            await stub.CancelNotification(pb.CancelNotificationRequest(app_id=APP, notification_id=own.notification_id))
        owners = Counter(p.finished_by for p in await dev.app.stores.notifications.partitions(sent.notification_id))
    finally:
        await replica.stop(0)
        await dev.stop(0)
    assert set(got) == set(tokens)
    # 80 at 50/s in batches of 10: the last starts 70/50 s after the first (which may start 0.2 s early),
    # whichever replica sends it.
    assert _last_after_s(got, before) >= 70 / 50 - 0.2 - 0.01, "two replicas together stay within the one rate"
    assert set(owners) == {dev.app.dispatcher.owner, replica.dispatcher.owner}, owners


async def test_without_a_default_a_send_is_unthrottled(stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    await register(stack_stub, "fcm-unthrottled", F)
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO))
    assert (await notification(stack_stub, sent.notification_id)).max_per_second == 0


async def test_a_negative_rate_is_invalid_argument_and_stores_nothing(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    await register(stack_stub, "fcm-neg", F)
    bad = await violations(
        stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO, max_per_second=-1))
    )
    assert set(bad) == {"max_per_second"}
    listed = await stack_stub.ListNotifications(pb.ListNotificationsRequest(app_id=APP))
    assert list(listed.notifications) == []
    assert stack.emulator.inbox.entries(token="fcm-neg") == []


async def test_a_cancel_stops_a_throttled_fan_out_and_every_token_has_one_receipt(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    tokens = [f"fcm-thc-{i:03d}" for i in range(100)]
    await seed(stack.app.stores, [(t, models.Platform.FCM) for t in tokens])
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO, max_per_second=20))
    stream = stack_stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=sent.notification_id))
    await asyncio.wait_for(anext(aiter(stream)), 30)
    stream.cancel()
    reply = await stack_stub.CancelNotification(
        pb.CancelNotificationRequest(app_id=APP, notification_id=sent.notification_id)
    )
    cancelled_at = reply.notification.cancel_requested_at.ToDatetime()
    got = by_token(await receipts(stack_stub, sent.notification_id, timeout_s=60))
    assert set(got) == set(tokens)
    statuses = Counter(r.status for r in got.values())
    assert set(statuses) == {pb.DELIVERY_STATUS_DELIVERED, pb.DELIVERY_STATUS_CANCELLED}
    # At 20/s (batches of 4) the fan-out would take 5 s; it stopped within a batch per worker of the cancel.
    late = [r for r in got.values() if r.status == pb.DELIVERY_STATUS_DELIVERED and r.at.ToDatetime() > cancelled_at]
    assert len(late) <= 4 * stack.app.settings.dispatch.workers, len(late)
    assert statuses[pb.DELIVERY_STATUS_CANCELLED] >= 50
    n = await notification(stack_stub, sent.notification_id)
    assert (n.state, n.delivered, n.cancelled, n.pending) == (
        pb.NOTIFICATION_STATE_CANCELLED, statuses[pb.DELIVERY_STATUS_DELIVERED], statuses[pb.DELIVERY_STATUS_CANCELLED], 0
    )
