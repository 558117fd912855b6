"""CancelNotification end to end: real gRPC server, real dispatcher, the emulator over TLS + HTTP/2."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
from google.protobuf import timestamp_pb2

from pushsvc import models
from pushsvc.devstack import DevStack, start_dev_stack
from pushsvc.storage import open_stores
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, by_token, notification, receipts, register, seed
from tests.pipeline.test_replicas import _replica
from tests.rpc.helpers import status_of

F = pb.PLATFORM_FCM
HELLO = pb.Message(title="Hello", body="World")


def _in(seconds: float) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(time.time() + seconds))


async def _cancel(stub: push_pb2_grpc.PushServiceStub, notification_id: str) -> pb.Notification:
    reply = await stub.CancelNotification(pb.CancelNotificationRequest(app_id=APP, notification_id=notification_id))
    return reply.notification


async def test_a_cancelled_scheduled_notification_sends_nothing_and_gives_every_token_a_cancelled_receipt(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    tokens = [f"fcm-sched-{i}" for i in range(5)]
    for token in tokens:
        await register(stack_stub, token, F, user_id="u")
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO, send_at=_in(3600)))
    view = await _cancel(stack_stub, sent.notification_id)
    assert view.state == pb.NOTIFICATION_STATE_SCHEDULED and view.HasField("cancel_requested_at")
    got = by_token(await receipts(stack_stub, sent.notification_id))  # the stream ends by itself
    assert set(got) == set(tokens)
    assert {(r.status, r.reason, r.attempts, r.provider_status) for r in got.values()} == {
        (pb.DELIVERY_STATUS_CANCELLED, "NotificationCancelled", 0, 0)
    }
    assert all(r.user_id == "u" for r in got.values())
    n = await notification(stack_stub, sent.notification_id)
    assert (n.state, n.targeted, n.cancelled, n.delivered, n.pending) == (pb.NOTIFICATION_STATE_CANCELLED, 5, 5, 0, 0)
    assert n.completed_at.ToDatetime() >= n.cancel_requested_at.ToDatetime()
    for token in tokens:
        assert stack.emulator.inbox.entries(token=token) == []
    # Cancelling twice is not an error; it answers with the notification as it is.
    again = await _cancel(stack_stub, sent.notification_id)
    assert again.state == pb.NOTIFICATION_STATE_CANCELLED and again.cancel_requested_at == n.cancel_requested_at


async def test_a_running_notification_stops_after_the_batches_in_flight_and_the_counters_add_up(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    tokens = [f"fcm-run-{i:04d}" for i in range(2000)]
    for i in range(0, len(tokens), 1000):
        items = [pb.TokenRegistration(token=t, platform=F) for t in tokens[i : i + 1000]]
        await stack_stub.RegisterTokens(pb.RegisterTokensRequest(app_id=APP, items=items))
    stack.emulator.faults.latency_s = 0.2  # each batch takes a while, so the fan-out is under way when it is cancelled
    try:
        sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO))
        stream = stack_stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=sent.notification_id))
        first = await anext(aiter(stream))
        stream.cancel()
        view = await _cancel(stack_stub, sent.notification_id)
        assert view.state == pb.NOTIFICATION_STATE_RUNNING and view.HasField("cancel_requested_at")
        got = by_token(await receipts(stack_stub, sent.notification_id, timeout_s=60))
    finally:
        stack.emulator.faults.latency_s = 0.0
    assert first.receipt.token in got and set(got) == set(tokens)  # one receipt per token
    statuses = [r.status for r in got.values()]
    delivered, cancelled = statuses.count(pb.DELIVERY_STATUS_DELIVERED), statuses.count(pb.DELIVERY_STATUS_CANCELLED)
    assert delivered + cancelled == 2000 and delivered >= 1 and cancelled >= 1, (delivered, cancelled)
    # Only the batches in flight when the cancel returned were sent after it: at most one
    # batch per partition being worked on (two workers, batches of 100).
    cancelled_at = view.cancel_requested_at.ToDatetime()
    late = [r for r in got.values() if r.status == pb.DELIVERY_STATUS_DELIVERED and r.at.ToDatetime() > cancelled_at]
    assert len(late) <= 2 * 100, len(late)
    assert {r.reason for r in got.values() if r.status == pb.DELIVERY_STATUS_CANCELLED} == {"NotificationCancelled"}
    n = await notification(stack_stub, sent.notification_id)
    assert n.state == pb.NOTIFICATION_STATE_CANCELLED
    assert (n.targeted, n.delivered, n.cancelled, n.failed, n.pending, n.vanished) == (2000, delivered, cancelled, 0, 0, 0)
    # What was delivered is exactly what the emulator received; the cancelled tokens got nothing.
    received = {e.token for e in stack.emulator.inbox.entries(platform="fcm")}
    assert received == {t for t, r in got.items() if r.status == pb.DELIVERY_STATUS_DELIVERED}


async def test_cancelling_a_finished_notification_is_failed_precondition(stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    await register(stack_stub, "fcm-done", F)
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO))
    await receipts(stack_stub, sent.notification_id)
    with_details = stack_stub.CancelNotification(pb.CancelNotificationRequest(app_id=APP, notification_id=sent.notification_id))
    try:
        await with_details
        raise AssertionError("cancelling a completed notification must fail")
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "already finished" in (exc.details() or "")
    n = await notification(stack_stub, sent.notification_id)
    assert n.state == pb.NOTIFICATION_STATE_COMPLETED and not n.HasField("cancel_requested_at")


async def test_list_notifications_shows_each_with_its_state_newest_first(stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    await register(stack_stub, "fcm-list", F)
    done = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO))
    await receipts(stack_stub, done.notification_id)
    await asyncio.sleep(0.01)  # distinct creation times
    later = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO, send_at=_in(3600)))
    listed = await stack_stub.ListNotifications(pb.ListNotificationsRequest(app_id=APP, page_size=1))
    assert [n.notification_id for n in listed.notifications] == [later.notification_id] and listed.next_page_token
    rest = await stack_stub.ListNotifications(
        pb.ListNotificationsRequest(app_id=APP, page_size=1, page_token=listed.next_page_token)
    )
    assert [n.notification_id for n in rest.notifications] == [done.notification_id]
    assert rest.notifications[0].delivered == 1 and rest.notifications[0].state == pb.NOTIFICATION_STATE_COMPLETED
    scheduled = await stack_stub.ListNotifications(
        pb.ListNotificationsRequest(app_id=APP, state=pb.NOTIFICATION_STATE_SCHEDULED)
    )
    assert [n.notification_id for n in scheduled.notifications] == [later.notification_id]
    assert scheduled.next_page_token == ""
    assert await status_of(
        stack_stub.ListNotifications(pb.ListNotificationsRequest(app_id=APP, page_token=listed.next_page_token + "x"))
    ) == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_cancel_taken_by_one_replica_stops_the_other_before_its_next_batch(store_url: str, tmp_path: Path) -> None:
    # Leases of 30 s: no renewal happens during the test, so only the read before each batch can stop the replica
    # that did not take the call.
    size = 2_000 if store_url.startswith("mongodb") else 4_000  # FerretDB scans (see test_replicas._fan_out_size)
    batch = 100
    stores = open_stores(store_url)
    dispatch = FAST_DISPATCH.model_copy(update={"partition_size": size // 8, "batch_size": batch, "lease_s": 30})
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=dispatch, stores=stores)
    replica = await _replica(dev)
    dev.emulator.faults.latency_s = 0.1
    try:
        tokens = [f"fcm-two-{i:05d}" for i in range(size)]
        await seed(stores, [(t, models.Platform.FCM) for t in tokens])
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as first,
            grpc.aio.insecure_channel(f"127.0.0.1:{replica.port}") as second,
        ):
            stub, other = push_pb2_grpc.PushServiceStub(first), push_pb2_grpc.PushServiceStub(second)
            sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=HELLO))
            # Wait until both replicas are sending, then cancel through the second one.
            for _ in range(300):
                owners = {p.owner for p in await stores.notifications.partitions(sent.notification_id) if p.owner}
                if {dev.app.dispatcher.owner, replica.dispatcher.owner} <= owners:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the second replica never took a partition")
            view = await _cancel(other, sent.notification_id)
            got = by_token(await receipts(stub, sent.notification_id, timeout_s=120))
            n = await notification(stub, sent.notification_id)
    finally:
        dev.emulator.faults.latency_s = 0.0
        await replica.stop(0)
        await dev.stop(0)
        stores.close()
    assert set(got) == set(tokens)
    statuses = Counter(r.status for r in got.values())
    assert set(statuses) <= {pb.DELIVERY_STATUS_DELIVERED, pb.DELIVERY_STATUS_CANCELLED}
    assert statuses[pb.DELIVERY_STATUS_CANCELLED] > 0
    cancelled_at = view.cancel_requested_at.ToDatetime()
    late = [r for r in got.values() if r.status == pb.DELIVERY_STATUS_DELIVERED and r.at.ToDatetime() > cancelled_at]
    in_flight = 2 * dispatch.workers  # two replicas, each working at most `workers` partitions at once
    assert len(late) <= batch * in_flight, len(late)
    assert n.state == pb.NOTIFICATION_STATE_CANCELLED
    assert (n.targeted, n.delivered, n.cancelled, n.pending, n.vanished) == (
        size, statuses[pb.DELIVERY_STATUS_DELIVERED], statuses[pb.DELIVERY_STATUS_CANCELLED], 0, 0
    )
