"""The fake FCM send API answers like protocols.md B.1-B.5 and B.10 say FCM does."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from pushsvc.emulator import Emulator

from .conftest import PROJECT, FakeClock

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
APNS_ERROR = "type.googleapis.com/google.firebase.fcm.v1.ApnsError"
WWW_AUTHENTICATE = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'


async def send(
    client: httpx.AsyncClient,
    emulator: Emulator,
    access_token: str | None,
    document: Any,
    *,
    project: str = PROJECT,
) -> httpx.Response:
    headers = {"authorization": f"Bearer {access_token}"} if access_token is not None else {}
    content = document if isinstance(document, bytes) else json.dumps(document).encode()
    return await client.post(
        f"{emulator.fcm_url}/v1/projects/{project}/messages:send",
        headers={**headers, "content-type": "application/json"},
        content=content,
    )


def error_of(response: httpx.Response, code: int, status: str) -> dict[str, Any]:
    assert response.http_version == "HTTP/2"
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    return dict(error)


def fcm_codes(error: dict[str, Any]) -> list[str]:
    return [d["errorCode"] for d in error.get("details", []) if d["@type"] == FCM_ERROR]


async def test_success_name_and_inbox(client, emulator, access_token):
    message = {"token": "device-1", "notification": {"title": "hi"}, "data": {"k": "v"}}
    response = await send(client, emulator, access_token, {"message": message})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    name = response.json()["name"]
    assert name.startswith(f"projects/{PROJECT}/messages/") and not name.endswith("fake_message_id")
    [entry] = emulator.inbox.entries(platform="fcm")
    assert (entry.token, entry.environment, entry.message_id, entry.payload) == ("device-1", "", name, message)
    assert "authorization" not in entry.headers
    second = await send(client, emulator, access_token, {"message": message})
    assert second.json()["name"] != name
    assert emulator.stats.fcm_requests == 2


async def test_fid_and_topic_targets(client, emulator, access_token):
    assert (await send(client, emulator, access_token, {"message": {"fid": "f1"}})).status_code == 200
    assert (await send(client, emulator, access_token, {"message": {"topic": "news"}})).status_code == 200
    assert [e.token for e in emulator.inbox.entries()] == ["f1", ""]
    assert emulator.inbox.entries()[1].payload == {"topic": "news"}


async def test_validate_only(client, emulator, access_token):
    response = await send(client, emulator, access_token, {"validate_only": True, "message": {"token": "t"}})
    assert response.json() == {"name": f"projects/{PROJECT}/messages/fake_message_id"}
    assert emulator.inbox.entries() == []
    # Permanent token errors still apply to a dry run.
    unreg = await send(client, emulator, access_token, {"validate_only": True, "message": {"token": "unregistered-1"}})
    assert fcm_codes(error_of(unreg, 404, "NOT_FOUND")) == ["UNREGISTERED"]


async def test_missing_bearer_is_401_without_fcm_error(client, emulator):
    response = await send(client, emulator, None, {"message": {"token": "t"}})
    error = error_of(response, 401, "UNAUTHENTICATED")
    assert error["message"].startswith("Request is missing required authentication credential.")
    assert "details" not in error
    assert response.headers["www-authenticate"] == WWW_AUTHENTICATE


async def test_unknown_and_expired_access_tokens_are_401(client, emulator, access_token, emu_clock: FakeClock):
    for token in ("ya29.not-issued-here", access_token + "x"):
        response = await send(client, emulator, token, {"message": {"token": "t"}})
        error = error_of(response, 401, "UNAUTHENTICATED")
        assert error["message"].startswith("Request had invalid authentication credentials.")
        assert response.headers["www-authenticate"] == WWW_AUTHENTICATE
    emu_clock.advance(598)
    assert (await send(client, emulator, access_token, {"message": {"token": "t"}})).status_code == 200
    emu_clock.advance(1)  # lifetime 600 s, expires_in 599
    response = await send(client, emulator, access_token, {"message": {"token": "t"}})
    assert "details" not in error_of(response, 401, "UNAUTHENTICATED")


async def test_wrong_project_is_403_without_fcm_error(client, emulator, access_token):
    response = await send(client, emulator, access_token, {"message": {"token": "t"}}, project="someone-else")
    error = error_of(response, 403, "PERMISSION_DENIED")
    assert error["message"].startswith("Permission 'cloudmessaging.messages.create' denied")
    assert "details" not in error


async def test_insufficient_scope_is_403(client, emulator, make_assertion):
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}
    token_response = await client.post(
        emulator.token_uri, data={**grant, "assertion": make_assertion(scope="https://www.googleapis.com/auth/userinfo.email")}
    )
    token = token_response.json()["access_token"]
    error = error_of(await send(client, emulator, token, {"message": {"token": "t"}}), 403, "PERMISSION_DENIED")
    assert error["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert fcm_codes(error) == []


async def test_non_string_data_value_matches_documented_body(client, emulator, access_token):
    response = await send(client, emulator, access_token, {"message": {"token": "t", "data": {"a": 12}}})
    assert response.status_code == 400
    # Verbatim from protocols.md B.4 (firebase error-codes page).
    assert response.json() == {
        "error": {
            "code": 400,
            "message": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [
                        {
                            "field": "message.data[0].value",
                            "description": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
                        }
                    ],
                }
            ],
        }
    }
    second = await send(client, emulator, access_token, {"message": {"token": "t", "data": {"a": "1", "b": True}}})
    assert error_of(second, 400, "INVALID_ARGUMENT")["message"] == (
        "Invalid value at 'message.data[1].value' (TYPE_STRING), true"
    )


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ({}, "Recipient of the message is not set."),
        ({"token": ""}, "Recipient of the message is not set."),
        ({"token": "t", "topic": "news"}, "oneof field 'target' is already set"),
        ({"topic": "news", "condition": "'a' in topics"}, "oneof field 'target' is already set"),
        ({"token": "t", "data": {"from": "x"}}, "Invalid data payload key: from"),
        ({"token": "t", "data": {"message_type": "x"}}, "Invalid data payload key"),
        ({"token": "t", "data": {"google.c.a": "x"}}, "Invalid data payload key"),
        ({"token": "t", "data": {"gcm.notification.body": "x"}}, "Invalid data payload key"),
        ({"token": "t", "data": "notamap"}, "Invalid value at 'message.data'"),
        ({"token": "t", "colour": "red"}, 'Unknown name "colour"'),
    ],
)
async def test_invalid_messages(client, emulator, access_token, message, fragment):
    response = await send(client, emulator, access_token, {"message": message})
    error = error_of(response, 400, "INVALID_ARGUMENT")
    assert fragment in error["message"]
    assert any(d["@type"] == "type.googleapis.com/google.rpc.BadRequest" for d in error["details"])
    assert emulator.inbox.entries() == []


async def test_invalid_json_body(client, emulator, access_token):
    error = error_of(await send(client, emulator, access_token, b"{nope"), 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("Invalid JSON payload received.")


def sized_message(target: dict[str, str], size: int) -> dict[str, Any]:
    """A message whose size without the target, as compact JSON, is ``size`` bytes."""
    message: dict[str, Any] = {"data": {"k": ""}}
    overhead = len(json.dumps(message, separators=(",", ":")).encode())
    message["data"]["k"] = "é" * ((size - overhead) // 2) + "x" * ((size - overhead) % 2)
    assert len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()) == size
    return {**target, **message}


@pytest.mark.parametrize(("target", "limit"), [({"token": "t" * 300}, 4096), ({"topic": "news"}, 2048)])
async def test_message_size_limit(client, emulator, access_token, target, limit):
    ok = await send(client, emulator, access_token, {"message": sized_message(target, limit)})
    assert ok.status_code == 200, ok.text
    response = await send(client, emulator, access_token, {"message": sized_message(target, limit + 1)})
    error = error_of(response, 400, "INVALID_ARGUMENT")
    assert error["message"] == "Android message is too big"
    assert fcm_codes(error) == ["INVALID_ARGUMENT"]


@pytest.mark.parametrize(
    ("token", "code", "status", "message", "fcm_code", "apns"),
    [
        ("unregistered-a", 404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED", None),
        (
            "invalid-a",
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            "INVALID_ARGUMENT",
            None,
        ),
        ("mismatch-a", 403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH", None),
        (
            "apns-disabled-a",
            400,
            "INVALID_ARGUMENT",
            "APNs device token is disabled.",
            "INVALID_ARGUMENT",
            {"@type": APNS_ERROR, "statusCode": 410, "reason": "Unregistered"},
        ),
        (
            "thirdparty-a",
            401,
            "UNAUTHENTICATED",
            "Auth error from APNS or Web Push Service",
            "THIRD_PARTY_AUTH_ERROR",
            {"@type": APNS_ERROR, "statusCode": 403, "reason": "InvalidProviderToken"},
        ),
    ],
)
async def test_permanent_test_tokens(client, emulator, access_token, token, code, status, message, fcm_code, apns):
    for _ in range(2):
        response = await send(client, emulator, access_token, {"message": {"token": token}})
        error = error_of(response, code, status)
        assert error["message"] == message
        assert error["details"][0] == {"@type": FCM_ERROR, "errorCode": fcm_code}
        assert error["details"][1:] == ([apns] if apns else [])
    assert emulator.inbox.entries() == []


@pytest.mark.parametrize(
    ("prefix", "code", "status", "fcm_code", "retry_after"),
    [
        ("quota-", 429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "1"),
        ("unavailable-", 503, "UNAVAILABLE", "UNAVAILABLE", "1"),
        ("internal-", 500, "INTERNAL", "INTERNAL", None),
    ],
)
async def test_transient_test_tokens(client, emulator, access_token, prefix, code, status, fcm_code, retry_after):
    token = prefix + "a"
    response = await send(client, emulator, access_token, {"message": {"token": token}})
    assert fcm_codes(error_of(response, code, status)) == [fcm_code]
    assert response.headers.get("retry-after") == retry_after
    for _ in range(2):
        assert (await send(client, emulator, access_token, {"message": {"token": token}})).status_code == 200
    other = await send(client, emulator, access_token, {"message": {"token": prefix + "b"}})
    assert other.status_code == code


async def test_project_rate_limit_shape(client, emulator, access_token):
    response = await send(client, emulator, access_token, {"message": {"token": "ratelimit-a"}})
    error = error_of(response, 429, "RESOURCE_EXHAUSTED")
    assert response.headers["retry-after"] == "1"
    assert fcm_codes(error) == []
    info = error["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (info["reason"], info["domain"]) == ("RATE_LIMIT_EXCEEDED", "googleapis.com")
    assert info["metadata"]["quota_limit"] == "SendsPerMinutePerProject"
    assert (await send(client, emulator, access_token, {"message": {"token": "ratelimit-a"}})).status_code == 200


async def test_unknown_path_and_method(client, emulator, access_token):
    response = await client.post(f"{emulator.fcm_url}/v1/projects/{PROJECT}/messages:batch", content=b"{}")
    error_of(response, 404, "NOT_FOUND")
    response = await client.get(f"{emulator.fcm_url}/v1/projects/{PROJECT}/messages:send")
    assert response.status_code == 405
