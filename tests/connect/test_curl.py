"""Every PushService RPC over the Connect protocol's JSON with curl, and the auth matrix's key cases.

curl is the independent client: what a shell script or a cron job would send,
and the wire format the Connect protocol specifies (unary: a JSON body and an
HTTP status; server streams: enveloped messages and an end-of-stream message).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from pushsvc.v1 import push_pb2
from tests.connect.conftest import ConnectStack, CurlAnswer, bad_request_fields, curl, envelope, unenvelope

SERVICE = "/pushsvc.v1.PushService/"


async def call(stack: ConnectStack, method: str, body: dict[str, Any] | str, credential: str | None, **kw: Any) -> CurlAnswer:
    text = body if isinstance(body, str) else json.dumps(body)
    return await asyncio.to_thread(curl, stack.base_url + SERVICE + method, text, credential=credential, **kw)


async def stream(stack: ConnectStack, body: dict[str, Any], credential: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A StreamReceipts call in the Connect streaming protocol: the messages and the end-of-stream message."""
    answer = await asyncio.to_thread(
        curl, stack.base_url + SERVICE + "StreamReceipts", envelope(json.dumps(body).encode()),
        credential=credential, content_type="application/connect+json",
    )
    assert answer.status == 200, answer
    assert answer.content_type == "application/connect+json"
    frames = unenvelope(answer.body)
    assert frames and frames[-1][0] == 2, "the stream ends with an end-of-stream message"
    assert all(flags == 0 for flags, _ in frames[:-1])
    return [json.loads(p) for _, p in frames[:-1]], json.loads(frames[-1][1])


async def test_every_rpc_over_connect_json(stack: ConnectStack) -> None:
    keys = stack.keys
    tokens = [f"alpha-{uuid.uuid4().hex}" for _ in range(3)]
    first = await call(stack, "RegisterToken", {"appId": "alpha", "token": tokens[0], "platform": "PLATFORM_FCM", "userId": "u1"}, keys["register"])
    assert first.status == 200 and first.content_type == "application/json", first
    assert first.json()["created"] is True and first.json()["token"]["token"] == tokens[0]
    # proto field names are accepted as well as lowerCamelCase ones (proto3 JSON mapping)
    again = await call(stack, "RegisterToken", {"app_id": "alpha", "token": tokens[0], "platform": "PLATFORM_FCM", "user_id": "u1"}, keys["register"])
    assert again.status == 200 and "created" not in again.json()  # false is a default: omitted in proto3 JSON

    batch = await call(stack, "RegisterTokens", {"appId": "alpha", "items": [
        {"token": tokens[1], "platform": "PLATFORM_FCM", "userId": "u2"},
        {"token": tokens[2], "platform": "PLATFORM_FCM", "userId": "u3"},
        {"token": "", "platform": "PLATFORM_FCM"},
    ]}, keys["register"])
    assert batch.status == 200, batch
    results = batch.json()["results"]
    assert [r["outcome"] for r in results] == ["REGISTRATION_OUTCOME_CREATED"] * 2 + ["REGISTRATION_OUTCOME_INVALID"]
    assert results[2]["violations"] == [{"field": "items[2].token", "description": "must not be empty"}]

    sent = await call(stack, "Send", {"appId": "alpha", "target": {"all": True}, "message": {"title": "over curl"}}, keys["send"])
    assert sent.status == 200, sent
    nid = sent.json()["notificationId"]
    assert sent.json()["targeted"] == "3"  # int64 is a string in proto3 JSON

    receipts, end = await stream(stack, {"appId": "alpha", "notificationId": nid}, keys["read"])
    assert end == {}, "ended with OK"
    assert sorted(r["receipt"]["token"] for r in receipts) == sorted(tokens)
    assert {r["receipt"]["status"] for r in receipts} == {"DELIVERY_STATUS_DELIVERED"}

    got = await call(stack, "GetNotification", {"appId": "alpha", "notificationId": nid}, stack.jwts["read"])
    assert got.status == 200, got
    assert got.json()["notification"]["notificationId"] == nid

    removed = await call(stack, "UnregisterToken", {"appId": "alpha", "token": tokens[2], "platform": "PLATFORM_FCM"}, keys["register"])
    assert removed.status == 200 and removed.json()["removed"] is True

    pruned = await call(stack, "Prune", {"appId": "alpha", "dryRun": True, "staleAfter": "3600s"}, keys["prune"])
    assert pruned.status == 200, pruned
    assert "removed" not in pruned.json() and int(pruned.json().get("wouldRemove", "0")) == 0  # every token was seen just now

    token = await call(stack, "GetToken", {"appId": "alpha", "platform": "PLATFORM_FCM", "token": tokens[0]}, keys["read"])
    assert token.status == 200 and token.json()["token"]["token"] == tokens[0], token
    listed = await call(stack, "ListTokens", {"appId": "alpha", "userId": "u1"}, keys["read"])
    assert listed.status == 200 and [t["token"] for t in listed.json()["tokens"]] == [tokens[0]], listed
    notes = await call(stack, "ListNotifications", {"appId": "alpha"}, keys["read"])
    assert notes.status == 200 and nid in [n["notificationId"] for n in notes.json()["notifications"]], notes
    # The notification is finished: cancelling it is FAILED_PRECONDITION, over Connect as over gRPC.
    cancelled = await call(stack, "CancelNotification", {"appId": "alpha", "notificationId": nid}, keys["send"])
    assert cancelled.status == 400 and cancelled.json()["code"] == "failed_precondition", cancelled
    missing = await call(stack, "GetToken", {"appId": "alpha", "platform": "PLATFORM_FCM", "token": "nope"}, keys["read"])
    assert missing.status == 404 and missing.json()["code"] == "not_found", missing

    called = {"RegisterToken", "RegisterTokens", "Send", "StreamReceipts", "GetNotification", "UnregisterToken", "Prune",
              "GetToken", "ListTokens", "ListNotifications", "CancelNotification"}
    assert called == {m.name for m in push_pb2.DESCRIPTOR.services_by_name["PushService"].methods}, "every RPC, once"


async def test_auth_matrix_key_cases(stack: ConnectStack) -> None:
    register = {"appId": "alpha", "token": f"t-{uuid.uuid4().hex}", "platform": "PLATFORM_FCM"}
    none = await call(stack, "RegisterToken", register, None)
    assert none.status == 401 and none.json()["code"] == "unauthenticated", none
    bogus = await call(stack, "RegisterToken", register, "psk_not-a-key")
    assert bogus.status == 401 and bogus.json()["code"] == "unauthenticated"
    assert "psk_not-a-key" not in bogus.body.decode()

    wrong_app = await call(stack, "RegisterToken", {**register, "appId": "beta"}, stack.keys["register"])
    assert wrong_app.status == 403 and wrong_app.json()["code"] == "permission_denied", wrong_app
    wrong_action = await call(stack, "Send", {"appId": "alpha", "target": {"all": True}, "message": {"title": "x"}}, stack.keys["register"])
    assert wrong_action.status == 403 and wrong_action.json()["code"] == "permission_denied"
    wrong_app_jwt = await call(stack, "GetNotification", {"appId": "beta", "notificationId": "n"}, stack.jwts["read"])
    assert wrong_app_jwt.json()["code"] == "permission_denied"

    bad = await call(stack, "RegisterToken", {"appId": "alpha", "token": "", "platform": "PLATFORM_FCM"}, stack.keys["register"])
    assert bad.status == 400 and bad.json()["code"] == "invalid_argument", bad
    assert "token" in bad_request_fields(bad.json())

    # JSON that does not fit the message: auth first (as over gRPC), then INVALID_ARGUMENT naming the field.
    unparsable = '{"appId": "alpha", "token": 5, "platform": "NOPE"}'
    anonymous = await call(stack, "RegisterToken", unparsable, None)
    assert anonymous.json()["code"] == "unauthenticated"
    rejected = await call(stack, "RegisterToken", unparsable, stack.keys["register"])
    assert rejected.json()["code"] == "invalid_argument", rejected
    fields = bad_request_fields(rejected.json())
    assert list(fields) == ["token"] and "not valid JSON" in fields["token"]
    broken = await call(stack, "Send", "{not json", stack.keys["send"])
    assert broken.json()["code"] == "invalid_argument" and "" in bad_request_fields(broken.json())

    # A stream's errors come in its end-of-stream message.
    _, end = await stream(stack, {"appId": "beta", "notificationId": "n"}, stack.keys["read"])
    assert end["error"]["code"] == "permission_denied"
    _, end = await stream(stack, {"appId": "alpha", "notificationId": "n"}, None)
    assert end["error"]["code"] == "unauthenticated"


async def test_grpc_web_binary_with_curl(stack: ConnectStack) -> None:
    """gRPC-web's framing (binary, trailers in the body) reaches the same chain: the same codes and details."""
    from google.rpc import error_details_pb2, status_pb2

    from pushsvc.v1 import push_pb2 as pb

    request = pb.RegisterTokenRequest(app_id="alpha", token="", platform=pb.PLATFORM_FCM)
    answer = await asyncio.to_thread(
        curl, stack.base_url + SERVICE + "RegisterToken", envelope(request.SerializeToString()),
        credential=stack.keys["register"], content_type="application/grpc-web+proto",
    )
    assert answer.status == 200 and answer.content_type.startswith("application/grpc-web")
    frames = unenvelope(answer.body)
    trailers = dict(
        line.split(":", 1) for line in frames[-1][1].decode().split("\r\n") if line
    )
    assert frames[-1][0] & 0x80 and trailers["grpc-status"].strip() == "3"
    rich = status_pb2.Status.FromString(_b64(trailers["grpc-status-details-bin"].strip()))
    bad = error_details_pb2.BadRequest()
    assert rich.details[0].Unpack(bad) and [v.field for v in bad.field_violations] == ["token"]


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text + "=" * (-len(text) % 4))
