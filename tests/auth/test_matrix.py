"""The tenant-isolation matrix: every RPC x allowed / wrong app / wrong action / unauthenticated,
for API keys, JWTs and mTLS identities, over real TLS to a real server.

Each principal is limited to app alpha and one action. "Wrong app" calls name
app beta with beta's real tokens and notification, so a leak would show; the
test then checks that beta is untouched. The server's whole log output
(Python logging and grpc's own stderr) is searched for every credential and
device token used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from pushsvc import logs
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.auth.conftest import ACTIONS, Secured
from tests.auth.pki import JwtSigner

Metadata = Sequence[tuple[str, str]]
NEEDS = {
    "RegisterToken": "register",
    "RegisterTokens": "register",
    "UnregisterToken": "register",
    "Send": "send",
    "GetNotification": "read",
    "StreamReceipts/notification": "read",
    "StreamReceipts/feed": "read",
    "Prune": "prune",
    "CancelNotification": "send",
    "GetToken": "read",
    "ListTokens": "read",
    "ListNotifications": "read",
}


def bearer(credential: str) -> Metadata:
    """Call metadata carrying a bearer credential."""
    return (("authorization", f"Bearer {credential}"),)


@dataclasses.dataclass
class Tenant:
    """What set-up created in one app: tokens, a finished notification and its first receipt cursor."""

    app_id: str
    tokens: list[str]
    notification_id: str
    first_cursor: str
    spare_tokens: list[str] = dataclasses.field(default_factory=list)
    """Tokens that allowed UnregisterToken calls may remove."""
    scheduled_id: str = ""
    """A notification scheduled a day ahead, which an allowed CancelNotification may cancel."""


async def setup_tenant(stub: push_pb2_grpc.PushServiceStub, admin: Metadata, app_id: str) -> Tenant:
    """Registers FCM tokens for `app_id`, sends to all of them, and waits for every receipt."""
    tokens = [f"{app_id}-device-{uuid.uuid4().hex}" for _ in range(3)]
    spare = [f"{app_id}-spare-{uuid.uuid4().hex}" for _ in range(3)]
    for token in tokens:
        await stub.RegisterToken(
            pb.RegisterTokenRequest(app_id=app_id, token=token, platform=pb.PLATFORM_FCM, user_id=f"{app_id}-user"),
            metadata=admin,
            timeout=10,
        )
    sent = await stub.Send(
        pb.SendRequest(app_id=app_id, target=pb.Target(all=True), message=pb.Message(title="setup")),
        metadata=admin,
        timeout=10,
    )
    receipts = [
        r
        async for r in stub.StreamReceipts(
            pb.StreamReceiptsRequest(app_id=app_id, notification_id=sent.notification_id), metadata=admin, timeout=30
        )
    ]
    assert len(receipts) == len(tokens), receipts
    for token in spare:
        await stub.RegisterToken(
            pb.RegisterTokenRequest(app_id=app_id, token=token, platform=pb.PLATFORM_FCM), metadata=admin, timeout=10
        )
    tomorrow = timestamp_pb2.Timestamp(seconds=int(time.time()) + 86400)
    scheduled = await stub.Send(
        pb.SendRequest(app_id=app_id, target=pb.Target(all=True), message=pb.Message(title="later"), send_at=tomorrow),
        metadata=admin,
        timeout=10,
    )
    return Tenant(app_id, tokens, sent.notification_id, receipts[0].receipt.cursor, spare, scheduled.notification_id)


def request_for(rpc: str, tenant: Tenant, *, allowed: bool) -> Any:
    """The request an RPC is called with; calls on another tenant aim at its real objects, destructively."""
    app = tenant.app_id
    if rpc == "RegisterToken":
        return pb.RegisterTokenRequest(app_id=app, token=f"matrix-{uuid.uuid4().hex}", platform=pb.PLATFORM_FCM)
    if rpc == "RegisterTokens":
        item = pb.TokenRegistration(token=f"matrix-{uuid.uuid4().hex}", platform=pb.PLATFORM_FCM)
        return pb.RegisterTokensRequest(app_id=app, items=[item])
    if rpc == "UnregisterToken":
        token = tenant.spare_tokens.pop() if allowed else tenant.tokens[0]
        return pb.UnregisterTokenRequest(app_id=app, token=token, platform=pb.PLATFORM_FCM)
    if rpc == "Send":
        return pb.SendRequest(app_id=app, target=pb.Target(all=True), message=pb.Message(title="matrix"))
    if rpc == "GetNotification":
        return pb.GetNotificationRequest(app_id=app, notification_id=tenant.notification_id)
    if rpc == "StreamReceipts/notification":
        return pb.StreamReceiptsRequest(app_id=app, notification_id=tenant.notification_id)
    if rpc == "StreamReceipts/feed":
        return pb.StreamReceiptsRequest(app_id=app, after=tenant.first_cursor)
    if rpc == "CancelNotification":
        return pb.CancelNotificationRequest(app_id=app, notification_id=tenant.scheduled_id)
    if rpc == "GetToken":
        return pb.GetTokenRequest(app_id=app, platform=pb.PLATFORM_FCM, token=tenant.tokens[1])
    if rpc == "ListTokens":
        return pb.ListTokensRequest(app_id=app, user_id=f"{app}-user")
    if rpc == "ListNotifications":
        return pb.ListNotificationsRequest(app_id=app)
    assert rpc == "Prune"
    # Allowed: a dry run. Elsewhere: would delete every token older than a second.
    if allowed:
        return pb.PruneRequest(app_id=app, stale_after=duration_pb2.Duration(seconds=86400), dry_run=True)
    return pb.PruneRequest(app_id=app, stale_after=duration_pb2.Duration(seconds=1))


async def call(stub: push_pb2_grpc.PushServiceStub, rpc: str, request: Any, metadata: Metadata) -> Any:
    """Makes one call; returns "OK" or the status code; stream calls read their first message."""
    try:
        if rpc.startswith("StreamReceipts"):
            stream = stub.StreamReceipts(request, metadata=metadata, timeout=10)
            first = await anext(aiter(stream))
            stream.cancel()
            assert first.receipt.app_id == request.app_id
            return "OK"
        response = await getattr(stub, rpc)(request, metadata=metadata, timeout=10)
        assert response is not None
        return "OK"
    except grpc.aio.AioRpcError as exc:
        return exc.code()


Caller = Callable[[str], tuple[push_pb2_grpc.PushServiceStub, Metadata]]
"""action -> (stub, metadata) of the alpha principal holding that action."""


def other_action(action: str) -> str:
    """An action the principal for `action` does not hold."""
    return ACTIONS[(ACTIONS.index(action) + 1) % len(ACTIONS)]


def callers(kind: str, s: Secured) -> tuple[Caller, list[tuple[str, push_pb2_grpc.PushServiceStub, Metadata]]]:
    """The principals of one credential kind, and the unauthenticated attempts for that kind."""
    plain = push_pb2_grpc.PushServiceStub(s.channel())
    if kind == "api_key":
        bogus = "psk_" + "A" * 43
        return (lambda a: (plain, bearer(s.keys[a]))), [
            ("no credentials", plain, ()),
            ("unknown key", plain, bearer(bogus)),
            ("not a bearer", plain, (("authorization", s.keys["register"]),)),
            ("garbage", plain, bearer("nonsense")),
        ]
    if kind == "jwt":
        forger = JwtSigner()
        return (lambda a: (plain, bearer(s.jwts[a]))), [
            ("no credentials", plain, ()),
            ("signed by another key", plain, bearer(forger.mint("alpha-admin", "admin", ["*"]))),
            ("malformed", plain, bearer("a.b.c")),
            ("expired", plain, bearer(s.signer.mint("alpha-old", "admin", ["alpha"], ttl_s=-120))),
        ]
    assert kind == "mtls"
    stubs = {a: push_pb2_grpc.PushServiceStub(s.channel(s.certs[a])) for a in ACTIONS}
    stranger = push_pb2_grpc.PushServiceStub(s.channel(s.stranger_cert))
    return (lambda a: (stubs[a], ())), [
        ("unmapped SPIFFE ID", stranger, ()),
        ("certificate without SPIFFE ID", plain, ()),
        ("mapped identity with a bad bearer", stubs["register"], bearer("psk_" + "B" * 43)),
    ]


@pytest.mark.parametrize("kind", ["api_key", "jwt", "mtls"])
async def test_matrix(
    secured: Secured, kind: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    s = secured
    admin_stub = push_pb2_grpc.PushServiceStub(s.channel())
    admin = bearer(s.admin_key)
    alpha = await setup_tenant(admin_stub, admin, "alpha")
    beta = await setup_tenant(admin_stub, admin, "beta")
    principal, unauthenticated = callers(kind, s)

    got: dict[tuple[str, str], Any] = {}
    expected: dict[tuple[str, str], Any] = {}
    for rpc, action in NEEDS.items():
        stub, md = principal(action)
        expected[(rpc, "allowed")] = "OK"
        got[(rpc, "allowed")] = await call(stub, rpc, request_for(rpc, alpha, allowed=True), md)
        expected[(rpc, "wrong app")] = grpc.StatusCode.PERMISSION_DENIED
        got[(rpc, "wrong app")] = await call(stub, rpc, request_for(rpc, beta, allowed=False), md)
        stub, md = principal(other_action(action))
        expected[(rpc, "wrong action")] = grpc.StatusCode.PERMISSION_DENIED
        got[(rpc, "wrong action")] = await call(stub, rpc, request_for(rpc, alpha, allowed=False), md)
        for label, stub, md in unauthenticated:
            for tenant in (alpha, beta):
                case = f"unauthenticated: {label} on {tenant.app_id}"
                expected[(rpc, case)] = grpc.StatusCode.UNAUTHENTICATED
                got[(rpc, case)] = await call(stub, rpc, request_for(rpc, tenant, allowed=False), md)
    wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    assert not wrong, "\n".join(f"{rpc} [{case}]: got {g}, expected {e}" for (rpc, case), (g, e) in wrong.items())
    cross_tenant = [k for k, v in got.items() if v == "OK" and k[1] != "allowed"]
    assert cross_tenant == []

    # Beta is untouched: its tokens are all there and got exactly the set-up notification.
    await asyncio.sleep(1.2)  # every beta token is now older than a second
    counted = await admin_stub.Prune(
        pb.PruneRequest(app_id="beta", stale_after=duration_pb2.Duration(seconds=1), dry_run=True),
        metadata=admin,
        timeout=10,
    )
    assert counted.would_remove == len(beta.tokens) + len(beta.spare_tokens)
    for token in beta.tokens:
        assert len(s.emulator.inbox.entries(token=token)) == 1, token
    still = await admin_stub.GetNotification(
        pb.GetNotificationRequest(app_id="beta", notification_id=beta.scheduled_id), metadata=admin, timeout=10
    )
    assert still.notification.state == pb.NOTIFICATION_STATE_SCHEDULED
    assert not still.notification.HasField("cancel_requested_at")

    # Secrets and device tokens appear nowhere in the server's output.
    out, err = capfd.readouterr()
    # Structured fields (audit lines) unredacted, so a leak there cannot hide behind the log formatter.
    fields = "\n".join(json.dumps(getattr(r, logs.FIELDS, {}), separators=(",", ":")) for r in caplog.records)
    logged = caplog.text + fields + out + err
    for secret in [*s.secrets(), *(md[0][1] for _, _, md in unauthenticated if md)]:
        assert secret.split()[-1] not in logged
    for token in [*alpha.tokens, *beta.tokens]:
        assert token not in logged
    assert '"audit":"Send"' in fields
    assert '"outcome":"denied"' in fields


@pytest.mark.parametrize("kind", ["api_key", "jwt", "mtls"])
async def test_denial_does_not_reveal_whether_the_object_exists(secured: Secured, kind: str) -> None:
    s = secured
    admin_stub = push_pb2_grpc.PushServiceStub(s.channel())
    beta = await setup_tenant(admin_stub, bearer(s.admin_key), "beta")
    principal, _ = callers(kind, s)
    stub, md = principal("read")
    answers = []
    for notification_id in (beta.notification_id, "n" + uuid.uuid4().hex):
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda notification_id=notification_id: stub.GetNotification(
                pb.GetNotificationRequest(app_id="beta", notification_id=notification_id), metadata=md, timeout=10
            ),
            lambda notification_id=notification_id: anext(
                aiter(
                    stub.StreamReceipts(
                        pb.StreamReceiptsRequest(app_id="beta", notification_id=notification_id),
                        metadata=md,
                        timeout=10,
                    )
                )
            ),
        ]
        for make in calls:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await make()
            answers.append((info.value.code(), info.value.details()))
    assert answers[0] == answers[2] and answers[1] == answers[3], answers
    assert {code for code, _ in answers} == {grpc.StatusCode.PERMISSION_DENIED}
