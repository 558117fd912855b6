"""Several dispatchers on one store: sharing a fan-out, surviving a crash, streams across replicas."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import grpc

from pushsvc import models
from pushsvc.bootstrap import Application, build_application
from pushsvc.clock import ManualClock
from pushsvc.config import Settings
from pushsvc.devstack import DEMO_APP_ID, DevStack, demo_app_settings, start_dev_stack
from pushsvc.storage import open_stores
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, apns, by_token, notification, receipts, seed

A, F = pb.PLATFORM_APNS, pb.PLATFORM_FCM


async def _replica(dev: DevStack, clock: models.Any | None = None, **dispatch: object) -> Application:  # type: ignore[name-defined]
    """A second pushsvc replica on the dev stack's store and emulator (another replica id: another host)."""
    dispatch.setdefault("replica_id", "second-replica")
    settings = Settings(
        store_url=dev.app.settings.store_url,
        host="127.0.0.1",
        port=0,
        apps={DEMO_APP_ID: demo_app_settings(DEMO_APP_ID, dev.emulator, dev.credentials)},
        dispatch=dev.app.settings.dispatch.model_copy(update=dispatch),
    )
    replica = build_application(settings, clock=clock or dev.app.clock, stores=dev.app.stores)
    await replica.start()
    return replica


async def _partition_owners(dev: DevStack, notification_id: str) -> Counter[str]:
    return Counter(p.finished_by for p in await dev.app.stores.notifications.partitions(notification_id))


def _fan_out_size(store_url: str) -> int:
    # FerretDB 1.x on SQLite evaluates every filter but _id equality/$in with a
    # full scan (0.6-1.7 s per query at 20k tokens, measured; tests/storage/README.md),
    # which would make this test take minutes; it runs the same test at 2k.
    return 2_000 if store_url.startswith("mongodb") else 20_000


async def test_two_dispatchers_share_a_20k_fan_out_and_miss_no_token(store_url: str, tmp_path: Path) -> None:
    size = _fan_out_size(store_url)
    stores = open_stores(store_url)
    dispatch = FAST_DISPATCH.model_copy(update={"partition_size": size // 20, "batch_size": 500, "lease_s": 30})
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=dispatch, stores=stores)
    replica = await _replica(dev)
    try:
        half = size // 2
        tokens = [(apns(i), models.Platform.APNS) for i in range(half)] + [(f"fcm-{i}", models.Platform.FCM) for i in range(half)]
        await seed(stores, tokens)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="20k")))
            assert sent.targeted == size
            got = by_token(await receipts(stub, sent.notification_id, timeout_s=240))
            assert set(got) == {t for t, _ in tokens}
            assert all(r.status == pb.DELIVERY_STATUS_DELIVERED for r in got.values())
            n = await notification(stub, sent.notification_id)
            assert (n.state, n.delivered, n.pending) == (pb.NOTIFICATION_STATE_COMPLETED, size, 0)
        delivered = Counter(e.token for e in dev.emulator.inbox.entries())
        assert set(delivered) == {t for t, _ in tokens} and max(delivered.values()) == 1
        owners = await _partition_owners(dev, sent.notification_id)
        assert set(owners) == {dev.app.dispatcher.owner, replica.dispatcher.owner}, owners
        assert sum(owners.values()) == 20
    finally:
        await replica.stop(0)
        await dev.stop(0)
        stores.close()


async def test_a_crashed_dispatchers_partitions_resume_after_the_lease_expires(store_url: str, tmp_path: Path) -> None:
    clock = ManualClock()
    stores = open_stores(store_url)
    dispatch = FAST_DISPATCH.model_copy(update={"workers": 1, "batch_size": 50, "partition_size": 100_000})
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=dispatch, stores=stores, clock=clock)
    try:
        tokens = [(f"fcm-{i}", models.Platform.FCM) for i in range(1_000)]
        await seed(stores, tokens)
        dev.emulator.faults.latency_s = 0.02  # slow enough to kill it mid-way
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="resume")))
            for _ in range(200):
                if len(dev.emulator.inbox.entries()) >= 150:
                    break
                await asyncio.sleep(0.02)
            await dev.app.dispatcher.stop(release_leases=False)  # a crash: the lease is left to expire
            sent_before = len(dev.emulator.inbox.entries())
            assert 150 <= sent_before < 1_000
            dev.emulator.faults.latency_s = 0.0
            rescuer = await _replica(dev)
            try:
                await asyncio.sleep(0.3)
                assert len(dev.emulator.inbox.entries()) == sent_before, "nobody takes over before the lease expires"
                clock.advance(dispatch.lease_s + 1)
                rescuer.dispatcher.wake()
                got = by_token(await receipts(stub, sent.notification_id, timeout_s=60))
            finally:
                await rescuer.stop(0)
            assert set(got) == {t for t, _ in tokens}
            n = await notification(stub, sent.notification_id)
            assert (n.state, n.delivered, n.pending) == (pb.NOTIFICATION_STATE_COMPLETED, 1_000, 0)
        delivered = Counter(e.token for e in dev.emulator.inbox.entries())
        assert set(delivered) == {t for t, _ in tokens}
        duplicates = sum(c - 1 for c in delivered.values())
        assert duplicates <= dispatch.batch_size, f"{duplicates} duplicate sends; at most one batch may repeat"
    finally:
        await dev.stop(0)
        stores.close()


async def test_stream_resumes_from_a_cursor_on_another_replica_without_loss_or_repeat(store_url: str, tmp_path: Path) -> None:
    stores = open_stores(store_url)
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=FAST_DISPATCH, stores=stores)
    other = await _replica(dev)
    try:
        tokens = [(f"fcm-{i}", models.Platform.FCM) for i in range(300)]
        await seed(stores, tokens)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as ch1, grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as ch2:
            first, second = push_pb2_grpc.PushServiceStub(ch1), push_pb2_grpc.PushServiceStub(ch2)
            sent = await first.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="cursor")))
            seen: list[pb.Receipt] = []
            call = first.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=sent.notification_id))
            async for r in call:
                seen.append(r.receipt)
                if len(seen) == 120:
                    call.cancel()
                    break
            rest = await receipts(second, sent.notification_id, after=seen[-1].cursor)
            tokens_seen = [r.token for r in seen + rest]
            assert len(tokens_seen) == len(set(tokens_seen)) == 300

            # The app's live feed: from now on, on either replica, resumable by cursor.
            live: list[pb.Receipt] = []

            async def follow(stub: push_pb2_grpc.PushServiceStub, after: str, want: int) -> None:
                async for r in stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, after=after)):
                    live.append(r.receipt)
                    if len(live) >= want:
                        return

            feed = asyncio.create_task(follow(second, "", 50))
            await asyncio.sleep(0.2)
            again = await first.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="live")))
            await asyncio.wait_for(feed, 30)
            await asyncio.wait_for(follow(first, live[-1].cursor, 300), 30)
            assert all(r.notification_id == again.notification_id for r in live)
            assert sorted(r.token for r in live) == sorted(t for t, _ in tokens)
    finally:
        await other.stop(0)
        await dev.stop(0)
        stores.close()


async def test_draining_ends_streams_with_unavailable(stack: DevStack) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        call = stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP))

        async def read() -> grpc.StatusCode:
            try:
                async for _ in call:
                    pass
            except grpc.aio.AioRpcError as err:
                return err.code()
            return grpc.StatusCode.OK

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.3)
        await stack.app.server.stop(2.0)
        assert await asyncio.wait_for(reader, 5) == grpc.StatusCode.UNAVAILABLE
