"""Delivery at local time end to end on every backend: a real gRPC server and dispatcher, the emulator, a manual clock.

Tokens in 30 zones (and some with none) get one local-time Send; the test
walks the manual clock to each zone's due instant and checks, at every step,
that exactly the tokens then due have arrived in the emulator's inbox: none
a second early, all of them before the clock moves on (so each is delivered
within one batch interval of its local time). Halfway through, the server is
stopped in the middle of a group and a new one is started on the same store.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest

from pushsvc import models
from pushsvc.bootstrap import Application, build_application
from pushsvc.clock import ManualClock
from pushsvc.config import Settings
from pushsvc.devstack import DEMO_APP_ID, DevStack, demo_app_settings, start_dev_stack
from pushsvc.storage import Stores, open_stores
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, by_token, notification, receipts, register
from tests.rpc.helpers import status_of, violations
from tests.unit.test_localtime import ZONES_30

pytestmark = pytest.mark.timeout(300)

PER_ZONE = 100
NO_ZONE = 50
"""Tokens registered without a zone: they take the fallback's (Europe/Paris)."""
START = datetime(2026, 6, 1, 12, 0, 7, tzinfo=UTC)
DISPATCH = FAST_DISPATCH.model_copy(update={"batch_size": 50, "partition_size": 40, "workers": 2, "lease_s": 30.0})


def _due(zone: str) -> datetime:
    """09:30 local, today if still to come at START, else tomorrow (NEXT_DAY), worked out here from zoneinfo alone."""
    tz = ZoneInfo(zone)
    local = START.astimezone(tz)
    wall = local.replace(hour=9, minute=30, second=0, microsecond=0)
    if wall < local:
        wall = (local + timedelta(days=1)).replace(hour=9, minute=30, second=0, microsecond=0)
    return wall.astimezone(UTC)


async def _replica(dev: DevStack, stores: Stores, clock: ManualClock) -> Application:
    settings = Settings(
        store_url=dev.app.settings.store_url, host="127.0.0.1", port=0,
        apps={DEMO_APP_ID: demo_app_settings(DEMO_APP_ID, dev.emulator, dev.credentials)},
        dispatch=dev.app.settings.dispatch,
    )
    app = build_application(settings, clock=clock, stores=stores)
    await app.start()
    return app


async def _wait_for(predicate: object, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _settled(stores: Stores, notification_id: str, now: datetime) -> None:
    """Waits until no partition of the notification is runnable or running: the due groups are done, committed.

    The inbox can show a group complete while its last batch's receipts are being written; moving the manual
    clock hours ahead then would expire that lease, which a real clock never does mid-batch.
    """
    async def idle() -> bool:
        parts = await stores.notifications.partitions(notification_id)
        return all(p.done or (p.owner is None and p.not_before is not None and p.not_before > now) for p in parts)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not await idle():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_thirty_zones_each_at_their_own_nine_thirty_through_a_restart(tmp_path: Path, store_url: str) -> None:
    clock = ManualClock(start=START)
    stores = open_stores(store_url, clock=clock)
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=DISPATCH,
                                stores=stores, clock=clock)
    app = dev.app
    expected: dict[str, datetime] = {}
    regs = []
    for z, zone in enumerate(ZONES_30):
        for i in range(PER_ZONE):
            token = f"fcm-{z:02d}-{i:03d}"
            regs.append(models.TokenRegistration(APP, token, models.Platform.FCM, timezone=zone))
            expected[token] = _due(zone)
    for i in range(NO_ZONE):
        regs.append(models.TokenRegistration(APP, f"fcm-none-{i:03d}", models.Platform.FCM))
        expected[f"fcm-none-{i:03d}"] = _due("Europe/Paris")
    await stores.tokens.insert_new(regs, clock.now())
    total = len(expected)
    groups = sorted(set(expected.values()))
    assert len(groups) >= 20 and groups[-1] - START < timedelta(days=1)
    inbox = dev.emulator.inbox
    restarted = False
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            sent = await stub.Send(pb.SendRequest(
                app_id=APP, target=pb.Target(all=True), message=pb.Message(title="Good morning"),
                local_time=pb.LocalTime(hour=9, minute=30, fallback_timezone="Europe/Paris"),
            ))
            assert sent.targeted == total
            n = await notification(stub, sent.notification_id)
            assert n.state == pb.NOTIFICATION_STATE_SCHEDULED and n.waiting == total
        for step, due in enumerate(groups):
            # One second before: nothing of this group (nor later ones) has left.
            clock.advance((due - clock.now()).total_seconds() - 1)
            app.dispatcher.wake()
            await asyncio.sleep(0.3)
            delivered = {e.token for e in inbox.entries()}
            assert delivered == {t for t, d in expected.items() if d < due}, f"early delivery before {due}"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                n = await notification(push_pb2_grpc.PushServiceStub(channel), sent.notification_id)
            assert n.waiting == sum(1 for d in expected.values() if d >= due)
            clock.advance(1)
            due_now = {t for t, d in expected.items() if d == due}
            if step == len(groups) // 2 and not restarted:
                # Stop the server mid-group (slow deliveries, so some of the group is still to go), then a new one.
                dev.emulator.faults.latency_s = 0.05
                app.dispatcher.wake()
                biggest = max(len(due_now), 1)
                started = min(30, biggest // 4)
                await _wait_for(lambda: len({e.token for e in inbox.entries()} & due_now) >= started)  # noqa: B023 (awaited here, in this iteration)
                await app.stop(0)
                at_stop = len({e.token for e in inbox.entries()} & due_now)
                assert 0 < at_stop < len(due_now), "the restart must come in the middle of a group"
                dev.emulator.faults.latency_s = 0.0
                app = await _replica(dev, stores, clock)
                restarted = True
            app.dispatcher.wake()
            so_far = {t for t, d in expected.items() if d <= due}
            await _wait_for(lambda: {e.token for e in inbox.entries()} >= so_far)  # noqa: B023 (awaited here, in this iteration)
            assert {e.token for e in inbox.entries()} == {t for t, d in expected.items() if d <= due}
            await _settled(stores, sent.notification_id, clock.now())
        assert restarted
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            got = by_token(await receipts(stub, sent.notification_id))
            assert set(got) == set(expected)  # nothing lost
            assert all(r.status == pb.DELIVERY_STATUS_DELIVERED for r in got.values())
            n = await notification(stub, sent.notification_id)
            assert (n.state, n.delivered, n.pending, n.waiting) == (pb.NOTIFICATION_STATE_COMPLETED, total, 0, 0)
        # The restart repeats at most the batches that were in flight: one per worker. (Nothing else repeats:
        # no lease expires, as the clock moves only once every due partition is done.)
        repeats = sum(c - 1 for c in Counter(e.token for e in inbox.entries()).values())
        assert repeats <= DISPATCH.workers * DISPATCH.batch_size, repeats
    finally:
        await app.stop(0)
        await dev.emulator.stop()
        stores.close()


@pytest.fixture
async def served(tmp_path: Path, store_url: str) -> object:
    """A dev stack on each backend in turn, with a manual clock: the validation, device-list and cancel cases run on all of them."""
    clock = ManualClock(start=START)
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=DISPATCH, clock=clock)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            yield dev, push_pb2_grpc.PushServiceStub(channel)
    finally:
        await dev.stop(0)


async def test_bad_local_times_and_zones_are_invalid_argument_and_store_nothing(served: tuple[DevStack, push_pb2_grpc.PushServiceStub]) -> None:
    dev, stub = served
    await register(stub, "fcm-1", pb.PLATFORM_FCM, timezone="Asia/Tokyo")
    before = await dev.app.stores.notifications.queue_depth()
    for local_time, fields in (
        (pb.LocalTime(hour=24), {"local_time.hour"}),
        (pb.LocalTime(hour=-1, minute=60), {"local_time.hour", "local_time.minute"}),
        (pb.LocalTime(hour=9, fallback_timezone="Mars/Olympus_Mons"), {"local_time.fallback_timezone"}),
        (pb.LocalTime(hour=9, fallback_timezone="../../etc/passwd"), {"local_time.fallback_timezone"}),
        (pb.LocalTime(hour=9, fallback_timezone="x" * 5000), {"local_time.fallback_timezone"}),
        (pb.LocalTime(hour=9, if_passed=7), {"local_time.if_passed"}),  # type: ignore[arg-type]  # a value from a future proto
    ):
        for validate_only in (False, True):
            bad = await violations(stub.Send(pb.SendRequest(
                app_id=APP, target=pb.Target(all=True), message=pb.Message(title="x"), local_time=local_time,
                validate_only=validate_only,
            )))
            assert set(bad) == fields, (local_time, bad)
    assert await dev.app.stores.notifications.queue_depth() == before
    for zone in ("Mars/Olympus_Mons", "Europe", "/etc/localtime", "Europe/Paris\n"):
        code = await status_of(stub.RegisterToken(pb.RegisterTokenRequest(
            app_id=APP, token="fcm-2", platform=pb.PLATFORM_FCM, timezone=zone
        )))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, zone
    assert await dev.app.stores.tokens.get(APP, models.Platform.FCM, "fcm-2") is None
    reply = await stub.RegisterTokens(pb.RegisterTokensRequest(app_id=APP, items=[
        pb.TokenRegistration(token="fcm-3", platform=pb.PLATFORM_FCM, timezone="Nowhere/Land"),
        pb.TokenRegistration(token="fcm-4", platform=pb.PLATFORM_FCM, timezone="America/Sao_Paulo"),
    ]))
    assert (reply.invalid, reply.created) == (1, 1)
    [bad_item] = [r for r in reply.results if r.violations]
    assert bad_item.index == 0 and [v.field for v in bad_item.violations] == ["items[0].timezone"]
    stored = await dev.app.stores.tokens.get(APP, models.Platform.FCM, "fcm-4")
    assert stored is not None and stored.timezone == "America/Sao_Paulo"
    assert await dev.app.stores.tokens.get(APP, models.Platform.FCM, "fcm-3") is None


async def test_a_device_list_waits_for_each_device_s_zone_and_unregistered_ones_take_the_fallback(
    served: tuple[DevStack, push_pb2_grpc.PushServiceStub],
) -> None:
    dev, stub = served
    await register(stub, "fcm-tokyo", pb.PLATFORM_FCM, timezone="Asia/Tokyo")
    clock = dev.app.clock
    assert isinstance(clock, ManualClock)
    devices = [pb.Device(token=t, platform=pb.PLATFORM_FCM) for t in ("fcm-tokyo", "fcm-unregistered")]
    sent = await stub.Send(pb.SendRequest(
        app_id=APP, target=pb.Target(devices=pb.DeviceList(devices=devices)), message=pb.Message(title="x"),
        local_time=pb.LocalTime(hour=13, minute=0, fallback_timezone="UTC", if_passed=pb.LOCAL_TIME_PASSED_SEND_NOW),
    ))
    # 12:00:07 UTC: 13:00 UTC is still to come; 13:00 in Tokyo (04:00 UTC) has passed, so Tokyo goes now.
    await _wait_for(lambda: {e.token for e in dev.emulator.inbox.entries()} == {"fcm-tokyo"})
    n = await notification(stub, sent.notification_id)
    assert n.waiting == 1 and n.state == pb.NOTIFICATION_STATE_RUNNING
    clock.advance(3600 - 8)
    dev.app.dispatcher.wake()
    await asyncio.sleep(0.3)
    assert {e.token for e in dev.emulator.inbox.entries()} == {"fcm-tokyo"}
    clock.advance(1)
    dev.app.dispatcher.wake()
    got = by_token(await receipts(stub, sent.notification_id))
    assert set(got) == {"fcm-tokyo", "fcm-unregistered"}
    n = await notification(stub, sent.notification_id)
    assert (n.state, n.waiting) == (pb.NOTIFICATION_STATE_COMPLETED, 0)


async def test_cancelling_a_local_time_send_ends_its_waiting_groups_at_once(
    served: tuple[DevStack, push_pb2_grpc.PushServiceStub],
) -> None:
    dev, stub = served
    for token, zone in (("fcm-a", "Asia/Tokyo"), ("fcm-b", "America/New_York"), ("fcm-c", "")):
        await register(stub, token, pb.PLATFORM_FCM, timezone=zone)
    sent = await stub.Send(pb.SendRequest(
        app_id=APP, target=pb.Target(all=True), message=pb.Message(title="x"), local_time=pb.LocalTime(hour=23, minute=59),
    ))
    n = await notification(stub, sent.notification_id)
    assert (n.state, n.waiting, n.targeted) == (pb.NOTIFICATION_STATE_SCHEDULED, 3, 3)
    await stub.CancelNotification(pb.CancelNotificationRequest(app_id=APP, notification_id=sent.notification_id))
    dev.app.dispatcher.wake()
    got = by_token(await receipts(stub, sent.notification_id))
    assert {t: r.status for t, r in got.items()} == dict.fromkeys(("fcm-a", "fcm-b", "fcm-c"), pb.DELIVERY_STATUS_CANCELLED)
    n = await notification(stub, sent.notification_id)
    assert (n.state, n.waiting, n.cancelled, n.delivered) == (pb.NOTIFICATION_STATE_CANCELLED, 0, 3, 0)
    assert dev.emulator.inbox.entries() == []
