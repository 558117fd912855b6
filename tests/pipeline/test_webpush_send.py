"""Web Push end to end in the dev stack: register a browser subscription, Send, read receipts, see the decrypted inbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from pushsvc.devstack import DevStack, start_dev_stack
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, by_token, receipts, register

W = pb.PLATFORM_WEBPUSH


@pytest.fixture
async def web_stack(tmp_path: Path, store_url: str) -> AsyncIterator[tuple[DevStack, push_pb2_grpc.PushServiceStub]]:
    dev = await start_dev_stack(state_dir=tmp_path / "dev", port=0, store_url=store_url, dispatch=FAST_DISPATCH)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            yield dev, push_pb2_grpc.PushServiceStub(channel)
    finally:
        await dev.stop(0)


async def test_subscriptions_get_the_notification_a_busy_one_after_a_retry_and_a_gone_one_is_removed(web_stack) -> None:
    stack, stub = web_stack
    live = stack.emulator.subscribe_webpush()
    gone = stack.emulator.subscribe_webpush(outcome="410")
    busy = stack.emulator.subscribe_webpush(outcome="429")
    for sub in (live, gone, busy):
        await register(stub, json.dumps(sub), W, user_id="alice")
    sent = await stub.Send(pb.SendRequest(
        app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["alice"])),
        message=pb.Message(title="Hello", body="browser", collapse_key="greeting", priority=pb.PRIORITY_HIGH),
    ))
    assert sent.targeted == 3
    got = {json.loads(t)["endpoint"]: r for t, r in by_token(await receipts(stub, sent.notification_id)).items()}
    assert got[live["endpoint"]].status == pb.DELIVERY_STATUS_DELIVERED and got[live["endpoint"]].provider_status == 201
    assert got[live["endpoint"]].platform == W
    assert got[gone["endpoint"]].status == pb.DELIVERY_STATUS_TOKEN_INVALID and got[gone["endpoint"]].token_removed
    assert got[gone["endpoint"]].reason == "SubscriptionGone"
    assert got[busy["endpoint"]].status == pb.DELIVERY_STATUS_DELIVERED and got[busy["endpoint"]].attempts == 2
    entry = stack.emulator.inbox.entries(platform="webpush", token=live["endpoint"])[0]
    assert entry.payload == {
        "title": "Hello", "body": "browser", "tag": "greeting", "data": {"pushsvc_notification_id": sent.notification_id},
    }
    assert entry.headers["urgency"] == "high" and entry.headers["topic"] == "greeting"
