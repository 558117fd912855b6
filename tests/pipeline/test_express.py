"""Transactional sends never wait behind a campaign: a one-token high-priority Send during a 20k fan-out.

The campaign is claimed oldest first in the bulk lane; with emulator latency
it keeps every bulk worker of every replica busy for seconds. The one-token
Send goes in the express lane (high priority, one target), which each
replica's reserved worker claims at once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from pushsvc import models
from pushsvc.bootstrap import Application, build_application
from pushsvc.config import Settings
from pushsvc.devstack import DEMO_APP_ID, DevStack, demo_app_settings, start_dev_stack
from pushsvc.storage import open_stores
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, by_token, notification, receipts, seed

F = pb.PLATFORM_FCM
LATENCY_S = 0.05


def _campaign_size(store_url: str) -> int:
    # FerretDB 1.x on SQLite evaluates every filter but _id with a full scan
    # (tests/storage/README.md), so each store call of the one-token Send costs
    # in proportion to the campaign's tokens and receipts: the same test at 2k, as test_replicas does.
    return 2_000 if store_url.startswith("mongodb") else 20_000


async def _replica(dev: DevStack) -> Application:
    """A second replica (its own replica id, so its own express worker) on the same store and emulator."""
    settings = Settings(
        store_url=dev.app.settings.store_url,
        host="127.0.0.1",
        port=0,
        apps={DEMO_APP_ID: demo_app_settings(DEMO_APP_ID, dev.emulator, dev.credentials)},
        dispatch=dev.app.settings.dispatch.model_copy(update={"replica_id": "second-replica"}),
    )
    replica = build_application(settings, clock=dev.app.clock, stores=dev.app.stores)
    await replica.start()
    return replica


@pytest.mark.parametrize("replicas", [1, 2])
async def test_a_one_token_high_priority_send_is_not_queued_behind_a_campaign(
    store_url: str, tmp_path: Path, replicas: int
) -> None:
    size = _campaign_size(store_url)
    stores = open_stores(store_url)
    dispatch = FAST_DISPATCH.model_copy(
        update={"workers": 2, "express_workers": 1, "batch_size": 500, "partition_size": size // 20, "lease_s": 30}
    )
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url=store_url, dispatch=dispatch, stores=stores)
    second = await _replica(dev) if replicas == 2 else None
    try:
        await seed(stores, [(f"campaign-{i}", models.Platform.FCM) for i in range(size)])
        dev.emulator.faults.latency_s = LATENCY_S
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            # High priority too: its size alone keeps it out of the express lane.
            bulk = await stub.Send(
                pb.SendRequest(
                    app_id=APP, target=pb.Target(all=True), message=pb.Message(title="sale", priority=pb.PRIORITY_HIGH)
                )
            )
            assert bulk.targeted == size
            # Every bulk worker of every replica is in a slow batch.
            for _ in range(200):
                if len([p for p in await stores.notifications.partitions(bulk.notification_id) if p.owner]) >= 2 * replicas:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the campaign never occupied the bulk workers")

            started = time.monotonic()
            login = await stub.Send(
                pb.SendRequest(
                    app_id=APP,
                    target=pb.Target(devices=pb.DeviceList(devices=[pb.Device(token="login-code", platform=F)])),
                    message=pb.Message(title="123456", priority=pb.PRIORITY_HIGH),
                )
            )
            got = by_token(await receipts(stub, login.notification_id, timeout_s=30))
            took_s = time.monotonic() - started
            assert got["login-code"].status == pb.DELIVERY_STATUS_DELIVERED
            assert took_s < 1.0, f"the one-token send took {took_s:.2f} s behind the campaign"
            running = await notification(stub, bulk.notification_id)
            assert running.state != pb.NOTIFICATION_STATE_COMPLETED, "the campaign was still running"

            done = by_token(await receipts(stub, bulk.notification_id, timeout_s=240))
            assert len(done) == size
            assert all(r.status == pb.DELIVERY_STATUS_DELIVERED for r in done.values())
    finally:
        if second is not None:
            await second.stop(0)
        dev.emulator.faults.latency_s = 0.0
        await dev.stop(0)
        stores.close()
