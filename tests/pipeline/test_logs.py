"""The server's JSON log after real traffic: context on every line, and no token, key or JWT anywhere.

A server with caller auth (an API key and a JWT issuer) on the emulator; the
log goes through `pushsvc.logs.configure`, as `pushsvc serve` sets it up, at
DEBUG so every RPC writes its line. The traffic: registrations, a Send with a
dead token among its targets, reads by notification id, bad input, and
authentication failures with a wrong key and a foreign JWT.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pushsvc import logs
from pushsvc.access import hash_key, new_key
from pushsvc.bootstrap import Application, build_application
from pushsvc.config import ApiKeySettings, AuthSettings, JwtIssuerSettings, Settings
from pushsvc.devstack import demo_app_settings
from pushsvc.emulator import Emulator, EmulatorConfig, make_demo_credentials
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.auth.pki import AUDIENCE, ISSUER, JwtSigner
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP
from tests.rpc.helpers import status_of

A, F = pb.PLATFORM_APNS, pb.PLATFORM_FCM
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
# Shaped like real tokens: 64 hex digits for APNs, FCM's "<instance id>:APA91b<...>".
LIVE_APNS = "5c" * 32
DEAD_APNS = "0410" + "7e" * 30
FCM_TOKEN = "dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx" + "Kp9" * 34


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The process's log, as JSON lines, at DEBUG for pushsvc."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure("json", "DEBUG", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("pushsvc").setLevel(logging.NOTSET)


class Secured:
    def __init__(self, app: Application, key: str, jwt: str) -> None:
        self.app, self.key, self.jwt = app, key, jwt


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    emulator = Emulator(EmulatorConfig())
    await emulator.start()
    try:
        credentials, apns_key, fcm_account = make_demo_credentials(
            tmp_path / "demo", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        emulator.add_apns_key(apns_key)
        emulator.add_fcm_account(fcm_account)
        signer = JwtSigner()
        (tmp_path / "jwt.pem").write_bytes(signer.public_pem)
        key = new_key()
        auth = AuthSettings(
            api_keys=(ApiKeySettings(name="backend", hash=hash_key(key), apps=(APP,), actions=("admin",)),),
            jwt=(JwtIssuerSettings(issuer=ISSUER, audience=AUDIENCE, public_key_file=tmp_path / "jwt.pem"),),
        )
        settings = Settings(
            store_url="memory://logs", host="127.0.0.1", port=0, dispatch=FAST_DISPATCH, auth=auth,
            apps={APP: demo_app_settings(APP, emulator, credentials)},
        )
        app = build_application(settings, metrics=True)
        await app.start()
        try:
            yield Secured(app, key, signer.mint("sender", "send read", [APP]))
        finally:
            await app.stop(0)
    finally:
        await emulator.stop()


def md(credential: str, **extra: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {credential}"), *extra.items()]


async def test_json_lines_carry_request_and_notification_ids_and_traceparent_and_no_secret(
    secured: Secured, json_log: io.StringIO
) -> None:
    foreign_jwt = JwtSigner().mint("intruder", "admin", [APP])
    wrong_key = new_key()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        for i, (token, platform) in enumerate(((LIVE_APNS, A), (DEAD_APNS, A), (FCM_TOKEN, F))):
            await stub.RegisterToken(
                pb.RegisterTokenRequest(app_id=APP, token=token, platform=platform, user_id="log-user"),
                metadata=md(secured.key, **{"x-request-id": f"reg-{i}", "traceparent": TRACEPARENT}),
            )
        bad = pb.RegisterTokenRequest(app_id=APP, token="zz", platform=A)
        assert await status_of(stub.RegisterToken(bad, metadata=md(secured.key, **{"x-request-id": "bad-input"}))) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        sent = await stub.Send(
            pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["log-user"])), message=pb.Message(title="t")),
            metadata=md(secured.jwt, **{"x-request-id": "send-1", "traceparent": "00-not-a-trace-id-01"}),
        )
        stream = stub.StreamReceipts(
            pb.StreamReceiptsRequest(app_id=APP, notification_id=sent.notification_id),
            metadata=md(secured.jwt, **{"x-request-id": "stream-1"}),
        )
        got = [r.receipt async for r in stream]
        assert {r.token for r in got} == {LIVE_APNS, DEAD_APNS, FCM_TOKEN}
        await stub.GetNotification(
            pb.GetNotificationRequest(app_id=APP, notification_id=sent.notification_id), metadata=md(secured.jwt)
        )
        await stub.GetNotification(
            pb.GetNotificationRequest(app_id=APP, notification_id=sent.notification_id), metadata=md(secured.jwt)
        )
        for i, credential in enumerate((wrong_key, foreign_jwt)):
            denied = stub.Prune(pb.PruneRequest(app_id=APP, dry_run=True), metadata=md(credential, **{"x-request-id": f"auth-{i}"}))
            assert await status_of(denied) == grpc.StatusCode.UNAUTHENTICATED
        await asyncio.sleep(0.3)  # the dispatcher's summary line for the dead token

    text = json_log.getvalue()
    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines()]
    assert lines, "nothing was logged"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line

    rpc_lines = [line for line in lines if "rpc" in line]  # one DEBUG line per call
    by_request = {line["request_id"]: line for line in rpc_lines}
    assert all(line.get("request_id") for line in rpc_lines)
    assert {"reg-0", "reg-1", "reg-2", "bad-input", "send-1", "stream-1", "auth-0", "auth-1"} <= set(by_request)
    # Calls that sent no x-request-id get a fresh one each.
    fresh = [line["request_id"] for line in rpc_lines if line["rpc"].endswith("/GetNotification")]
    assert len(fresh) == 2 and len(set(fresh)) == 2 and all(len(r) == 32 for r in fresh)
    assert [by_request[r]["code"] for r in ("reg-0", "bad-input", "send-1", "stream-1", "auth-0", "auth-1")] == [
        "OK", "INVALID_ARGUMENT", "OK", "OK", "UNAUTHENTICATED", "UNAUTHENTICATED"
    ]
    # The call's duration, app and platform are fields, not only words of the message.
    assert all(isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0 for line in rpc_lines)
    assert [(by_request[r].get("app"), by_request[r].get("platform")) for r in ("reg-0", "reg-2", "send-1", "stream-1")] == [
        (APP, "apns"), (APP, "fcm"), (APP, None), (APP, None)
    ]
    # The traceparent when valid, and not at all when malformed.
    assert all(by_request[f"reg-{i}"]["traceparent"] == TRACEPARENT for i in range(3))
    assert "traceparent" not in by_request["send-1"] and "traceparent" not in by_request["auth-0"]
    # The notification id on every line of the Send call (its audit line too), of the reads, and of the dispatcher.
    nid = sent.notification_id
    send_lines = [line for line in lines if line.get("request_id") == "send-1"]
    assert {line["logger"] for line in send_lines} == {"pushsvc.rpc", "pushsvc.audit"}
    assert all(line["notification_id"] == nid for line in send_lines)
    audit = next(line for line in send_lines if line["logger"] == "pushsvc.audit")
    assert (audit["audit"], audit["outcome"], audit["targeted"], audit["principal"]) == ("Send", "ok", 3, f"jwt:{ISSUER}#sender")
    assert by_request["stream-1"]["notification_id"] == nid
    assert all(line["notification_id"] == nid for line in rpc_lines if line["rpc"].endswith("/GetNotification"))
    dispatch = [line for line in lines if line["logger"] == "pushsvc.dispatch"]
    assert any("is invalid" in line["message"] for line in dispatch), dispatch
    summary = next(line for line in dispatch if "finished with failures" in line["message"])
    assert summary["app"] == APP
    assert dispatch and all(line.get("notification_id") == nid for line in dispatch)
    assert "request_id" not in dispatch[0]  # the dispatcher works outside any RPC
    # The dead token is named by its redacted prefix only.
    assert any(logs.redact_token(DEAD_APNS) in line["message"] for line in dispatch)

    # No device token, user id, API key or JWT anywhere, in any form.
    for secret in (LIVE_APNS, DEAD_APNS, FCM_TOKEN, secured.key, wrong_key, secured.jwt, foreign_jwt, "log-user"):
        assert secret not in text
    for jwt in (secured.jwt, foreign_jwt):
        assert jwt.split(".")[2] not in text

    # The same calls, counted: failures under their codes.
    with urllib.request.urlopen(f"http://127.0.0.1:{secured.app.metrics_port}/metrics", timeout=5) as reply:
        scraped = reply.read().decode()
    assert 'pushsvc_rpcs_total{code="UNAUTHENTICATED",method="Prune",service="pushsvc.v1.PushService"} 2.0' in scraped
    # And the standard process and Python metrics beside pushsvc's own, on the same endpoint.
    assert "\nprocess_resident_memory_bytes " in scraped and "\npython_info{" in scraped
    assert "\npushsvc_build_info{" in scraped


async def test_a_huge_value_from_a_caller_is_cut_in_every_line_it_reaches(secured: Secured, json_log: io.StringIO) -> None:
    huge = "x." * 500_000  # not token-shaped: redaction alone would leave it whole
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        request = pb.SendRequest(app_id=huge, target=pb.Target(all=True), message=pb.Message(title="t"))
        assert await status_of(stub.Send(request, metadata=md(secured.jwt, **{"x-request-id": "huge"}))) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        # A smaller one gets its own answer; its audit line names the app, cut.
        big = pb.SendRequest(app_id="y." * 50_000, target=pb.Target(all=True), message=pb.Message(title="t"))
        assert await status_of(stub.Send(big, metadata=md(secured.key, **{"x-request-id": "big"}))) != grpc.StatusCode.OK
    text = json_log.getvalue()
    lines = text.splitlines()
    assert lines and all(len(line) < 8 * logs.MAX_VALUE_CHARS + 4096 for line in lines), max(len(line) for line in lines)
    parsed = [json.loads(line) for line in lines]
    assert {"huge", "big"} <= {line.get("request_id") for line in parsed}
    audit = [line for line in parsed if line["logger"] == "pushsvc.audit" and line.get("request_id") == "big"]
    assert audit and audit[0]["app"] == ("y." * 50_000)[: logs.MAX_VALUE_CHARS] + f"…[+{100_000 - logs.MAX_VALUE_CHARS} chars]"
    assert "x." * logs.MAX_VALUE_CHARS not in text

