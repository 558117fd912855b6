"""Client-side helpers for the pipeline tests: send, then read receipts as a caller would."""

from __future__ import annotations

import asyncio

from pushsvc import models
from pushsvc.storage import Stores
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc

APP = "demo"


def apns(i: int, prefix: str = "") -> str:
    """A 64-hex-digit APNs token, optionally starting with an emulator test prefix."""
    body = f"{i:064x}"
    return (prefix + body[len(prefix) :]) if prefix else ("aa" + body[2:])


async def register(stub: push_pb2_grpc.PushServiceStub, token: str, platform: int, **kw: object) -> None:
    await stub.RegisterToken(pb.RegisterTokenRequest(app_id=APP, token=token, platform=platform, **kw))  # type: ignore[arg-type]


async def seed(stores: Stores, tokens: list[tuple[str, models.Platform]], **kw: object) -> None:
    """Bulk-registers many tokens through the store (setup for big fan-outs)."""
    from pushsvc.clock import SystemClock

    regs = [models.TokenRegistration(app_id=APP, token=t, platform=p, **kw) for t, p in tokens]  # type: ignore[arg-type]
    for i in range(0, len(regs), 5000):
        await stores.tokens.insert_new(regs[i : i + 5000], SystemClock().now())


async def receipts(
    stub: push_pb2_grpc.PushServiceStub, notification_id: str, after: str = "", timeout_s: float = 30.0
) -> list[pb.Receipt]:
    """Every receipt of a notification; the stream must end by itself within timeout_s."""
    out: list[pb.Receipt] = []

    async def read() -> None:
        async for r in stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=notification_id, after=after)):
            out.append(r.receipt)

    await asyncio.wait_for(read(), timeout_s)
    return out


async def notification(stub: push_pb2_grpc.PushServiceStub, notification_id: str) -> pb.Notification:
    reply = await stub.GetNotification(pb.GetNotificationRequest(app_id=APP, notification_id=notification_id))
    return reply.notification


def by_token(rs: list[pb.Receipt]) -> dict[str, pb.Receipt]:
    out = {r.token: r for r in rs}
    assert len(out) == len(rs), "exactly one receipt per token"
    return out
