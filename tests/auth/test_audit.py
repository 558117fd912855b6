"""Audit lines: one per Send, UnregisterToken and Prune, with principal, app, counts and notification id."""

from __future__ import annotations

import json
import logging

import grpc
import pytest
from google.protobuf import duration_pb2

from pushsvc import logs
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.auth.conftest import Secured
from tests.auth.test_matrix import bearer


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    # The structured fields, as the JSON log format writes them (top-level keys of the line).
    return [json.loads(json.dumps(getattr(r, logs.FIELDS))) for r in caplog.records if r.name == "pushsvc.audit"]


async def test_one_audit_line_per_call_and_no_token(secured: Secured, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pushsvc.audit")
    stub = push_pb2_grpc.PushServiceStub(secured.channel())
    token = "audit-device-" + "7" * 20
    await stub.RegisterToken(
        pb.RegisterTokenRequest(app_id="alpha", token=token, platform=pb.PLATFORM_FCM, user_id="audit-user"),
        metadata=bearer(secured.keys["register"]),
        timeout=10,
    )
    sent = await stub.Send(
        pb.SendRequest(app_id="alpha", target=pb.Target(users=pb.UserList(user_ids=["audit-user"])), message=pb.Message(title="a")),
        metadata=bearer(secured.jwts["send"]),
        timeout=10,
    )
    pruned = await stub.Prune(
        pb.PruneRequest(app_id="alpha", stale_after=duration_pb2.Duration(seconds=3600), dry_run=True),
        metadata=bearer(secured.keys["prune"]),
        timeout=10,
    )
    await stub.UnregisterToken(
        pb.UnregisterTokenRequest(app_id="alpha", token=token, platform=pb.PLATFORM_FCM),
        metadata=bearer(secured.keys["register"]),
        timeout=10,
    )
    mtls = push_pb2_grpc.PushServiceStub(secured.channel(secured.certs["send"]))
    with pytest.raises(grpc.aio.AioRpcError):
        await mtls.Prune(pb.PruneRequest(app_id="beta", stale_after=duration_pb2.Duration(seconds=1)), timeout=10)
    assert audit_lines(caplog) == [
        {
            "audit": "Send",
            "principal": "jwt:https://issuer.pushsvc.test#alpha-send",
            "app": "alpha",
            "outcome": "ok",
            "target": "users",
            "validate_only": False,
            "notification_id": sent.notification_id,
            "targeted": 1,
            "duplicate": False,
        },
        {"audit": "Prune", "principal": "key:alpha-prune", "app": "alpha", "outcome": "ok", "dry_run": True, "removed": 0, "would_remove": pruned.would_remove},
        {"audit": "UnregisterToken", "principal": "key:alpha-register", "app": "alpha", "outcome": "ok", "platform": "PLATFORM_FCM", "removed": 1},
        {
            "audit": "Prune",
            "principal": "spiffe://mesh.pushsvc.test/ns/alpha/sa/send",
            "app": "beta",
            "outcome": "denied",
            "dry_run": False,
        },
    ]
    fields = json.dumps([getattr(r, logs.FIELDS, {}) for r in caplog.records])
    assert token not in caplog.text and "audit-user" not in caplog.text
    assert token not in fields and "audit-user" not in fields
