"""HMS end to end in the dev stack: register Huawei tokens, Send, read receipts; an illegal token is removed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from pushsvc.devstack import DevStack, start_dev_stack
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, by_token, receipts, register

H = pb.PLATFORM_HMS


@pytest.fixture
async def hms_stack(tmp_path: Path, store_url: str) -> AsyncIterator[tuple[DevStack, push_pb2_grpc.PushServiceStub]]:
    dev = await start_dev_stack(state_dir=tmp_path / "dev", port=0, store_url=store_url, dispatch=FAST_DISPATCH)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            yield dev, push_pb2_grpc.PushServiceStub(channel)
    finally:
        await dev.stop(0)


async def test_huawei_tokens_get_the_notification_and_a_dead_one_is_removed(hms_stack) -> None:
    stack, stub = hms_stack
    # A first, good send proves the app's configuration, so "all tokens invalid" may prune later.
    await register(stub, "hms-good/1+", H, user_id="alice")
    first = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["alice"])),
                                           message=pb.Message(title="Hello", body="Huawei")))
    [r] = await receipts(stub, first.notification_id)
    assert (r.status, r.platform, r.provider_status) == (pb.DELIVERY_STATUS_DELIVERED, H, 200)
    await register(stub, "invalid-hms-1", H, user_id="bob")
    await register(stub, "ratelimit-hms-1", H, user_id="bob")
    sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["bob"])),
                                          message=pb.Message(title="Hi", body="bob", data={"k": "v"})))
    got = by_token(await receipts(stub, sent.notification_id))
    assert got["invalid-hms-1"].status == pb.DELIVERY_STATUS_TOKEN_INVALID and got["invalid-hms-1"].token_removed
    assert got["ratelimit-hms-1"].status == pb.DELIVERY_STATUS_DELIVERED and got["ratelimit-hms-1"].attempts == 2
    entries = stack.emulator.inbox.entries(platform="hms")
    assert sorted(e.token for e in entries) == ["hms-good/1+", "ratelimit-hms-1"]
    assert entries[0].payload["notification"] == {"title": "Hello", "body": "Huawei"}
