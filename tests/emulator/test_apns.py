"""The fake APNs answers like protocols.md A.2-A.12 says APNs does."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from pushsvc.emulator import Emulator

from .conftest import BUNDLE, OTHER_KEY_ID, FakeClock, hex_token, ssl_ctx_from

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PAYLOAD = b'{"aps":{"alert":"hi"}}'
APNS_ID = "eabeae54-14a8-11e5-b60b-1697f925ec7b"


async def push(
    client: httpx.AsyncClient,
    emulator: Emulator,
    token: str,
    jwt_token: str | None,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = PAYLOAD,
    method: str = "POST",
    path: str | None = None,
    sandbox: bool = False,
) -> httpx.Response:
    base = emulator.apns_sandbox_url if sandbox else emulator.apns_url
    all_headers = [("apns-topic", BUNDLE)] if headers is None else list(headers)
    if jwt_token is not None:
        all_headers.append(("authorization", f"bearer {jwt_token}"))
    return await client.request(
        method, base + (path or f"/3/device/{token}"), headers=all_headers, content=body
    )


def assert_error(response: httpx.Response, status: int, reason: str) -> dict[str, object]:
    assert response.http_version == "HTTP/2"
    assert (response.status_code, response.json()["reason"]) == (status, reason), response.text
    assert response.headers["content-type"] == "application/json"
    assert UUID_RE.fullmatch(response.headers["apns-id"])
    return response.json()


async def test_success_is_200_with_apns_id_and_empty_body(client, emulator, make_jwt):
    token = hex_token()
    response = await push(client, emulator, token, make_jwt(), headers=[("apns-topic", BUNDLE), ("apns-id", APNS_ID)])
    assert response.status_code == 200
    assert response.content == b""
    assert "content-type" not in response.headers
    assert response.headers["apns-id"] == APNS_ID
    assert "apns-unique-id" not in response.headers
    [entry] = emulator.inbox.entries(platform="apns")
    assert (entry.token, entry.environment, entry.message_id) == (token, "production", APNS_ID)
    assert entry.payload == json.loads(PAYLOAD)
    assert entry.headers["apns-topic"] == BUNDLE
    assert "authorization" not in entry.headers
    assert entry.received_at == 1_700_000_000.0


async def test_generated_apns_id_and_sandbox_unique_id(client, emulator, make_jwt):
    response = await push(client, emulator, hex_token(), make_jwt(), sandbox=True)
    assert response.status_code == 200
    assert UUID_RE.fullmatch(response.headers["apns-id"])
    assert UUID_RE.fullmatch(response.headers["apns-unique-id"])
    assert emulator.inbox.entries()[0].environment == "sandbox"
    assert emulator.inbox.entries()[0].message_id == response.headers["apns-id"]


async def test_error_echoes_apns_id(client, emulator, make_jwt):
    response = await push(client, emulator, "nothex", make_jwt(), headers=[("apns-topic", BUNDLE), ("apns-id", APNS_ID)])
    assert_error(response, 400, "BadDeviceToken")
    assert response.headers["apns-id"] == APNS_ID
    assert emulator.inbox.entries() == []


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"method": "GET"}, 405, "MethodNotAllowed"),
        ({"method": "PUT"}, 405, "MethodNotAllowed"),
        ({"path": "/3/notdevice/abcd"}, 404, "BadPath"),
        ({"path": "/3/device/ab/cd"}, 404, "BadPath"),
        ({"path": "/3/device/"}, 400, "MissingDeviceToken"),
        ({"headers": []}, 400, "MissingTopic"),
        ({"headers": [("apns-topic", "com.other.app")]}, 400, "BadTopic"),
        ({"headers": [("apns-topic", BUNDLE), ("apns-push-type", "voip")]}, 400, "BadTopic"),
        ({"headers": [("apns-topic", BUNDLE + ".voip"), ("apns-push-type", "alert")]}, 400, "BadTopic"),
        ({"headers": [("apns-topic", BUNDLE), ("apns-push-type", "shout")]}, 400, "InvalidPushType"),
        ({"headers": [("apns-topic", BUNDLE), ("apns-priority", "7")]}, 400, "BadPriority"),
        (
            {"headers": [("apns-topic", BUNDLE), ("apns-push-type", "background"), ("apns-priority", "10")]},
            400,
            "BadPriority",
        ),
        ({"headers": [("apns-topic", BUNDLE), ("apns-id", APNS_ID.upper())]}, 400, "BadMessageId"),
        ({"headers": [("apns-topic", BUNDLE), ("apns-id", "not-a-uuid")]}, 400, "BadMessageId"),
        ({"headers": [("apns-topic", BUNDLE), ("apns-expiration", "tomorrow")]}, 400, "BadExpirationDate"),
        ({"headers": [("apns-topic", BUNDLE), ("apns-collapse-id", "x" * 65)]}, 400, "BadCollapseId"),
        ({"headers": [("apns-topic", BUNDLE), ("apns-topic", BUNDLE)]}, 400, "DuplicateHeaders"),
        ({"body": b""}, 400, "PayloadEmpty"),
        ({"body": b'{"aps":{"alert":"' + b"x" * 4080 + b'"}}'}, 413, "PayloadTooLarge"),
        ({"body": b"not json"}, 400, "InvalidPayload"),
        ({"body": b'{"alert":"no aps"}'}, 400, "InvalidPayload"),
    ],
)
async def test_request_errors(client, emulator, make_jwt, kwargs, status, reason):
    response = await push(client, emulator, hex_token(), make_jwt(), **kwargs)
    assert_error(response, status, reason)
    assert emulator.inbox.entries() == []


@pytest.mark.parametrize(
    ("headers", "body_size"),
    [
        ([("apns-topic", BUNDLE + ".voip"), ("apns-push-type", "voip")], 5120),
        ([("apns-topic", BUNDLE + ".voip")], 5120),  # no push type: VoIP inferred from the topic
        ([("apns-topic", BUNDLE), ("apns-push-type", "alert")], 4096),
        ([("apns-topic", BUNDLE + ".push-type.liveactivity"), ("apns-push-type", "liveactivity")], 4096),
        ([("apns-topic", BUNDLE), ("apns-push-type", "background"), ("apns-priority", "5")], 100),
        ([("apns-topic", BUNDLE), ("apns-expiration", "0"), ("apns-collapse-id", "x" * 64)], 100),
    ],
)
async def test_accepted_limits(client, emulator, make_jwt, headers, body_size):
    body = b'{"aps":{"alert":"' + b"x" * (body_size - 20) + b'"}}'
    assert len(body) == body_size
    ok = await push(client, emulator, hex_token(), make_jwt(), headers=headers, body=body)
    assert ok.status_code == 200, ok.text
    too_big = body[:17] + b"x" + body[17:]
    if body_size >= 4096:
        assert_error(
            await push(client, emulator, hex_token(), make_jwt(), headers=headers, body=too_big), 413, "PayloadTooLarge"
        )


async def test_missing_and_malformed_authorization(client, emulator, make_jwt):
    assert_error(await push(client, emulator, hex_token(), None), 403, "MissingProviderToken")
    assert_error(await push(client, emulator, hex_token(), ""), 403, "MissingProviderToken")
    response = await push(client, emulator, hex_token(), None, headers=[("apns-topic", BUNDLE), ("authorization", f"basic {make_jwt()}")])
    assert_error(response, 403, "InvalidProviderToken")


@pytest.mark.parametrize("case", ["unknown kid", "wrong key", "wrong team", "garbage"])
async def test_invalid_provider_token(client, emulator, make_jwt, other_ec_key, case):
    token = {
        "unknown kid": lambda: make_jwt(kid="NOSUCHKEY0"),
        "wrong key": lambda: make_jwt(key=other_ec_key),  # kid of the main key, other signature
        "wrong team": lambda: make_jwt(iss="OTHERTEAM0"),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    assert_error(await push(client, emulator, hex_token(), token), 403, "InvalidProviderToken")


async def test_expired_provider_token(client, emulator, make_jwt, emu_clock: FakeClock):
    iat = int(emu_clock.now)
    emu_clock.advance(3601)
    assert_error(await push(client, emulator, hex_token(), make_jwt(iat=iat)), 403, "ExpiredProviderToken")


async def test_token_reused_until_expiry_then_expired(client, emulator, make_jwt, emu_clock: FakeClock):
    token = make_jwt()
    assert (await push(client, emulator, hex_token(), token)).status_code == 200
    emu_clock.advance(3599)
    assert (await push(client, emulator, hex_token(), token)).status_code == 200
    emu_clock.advance(2)
    assert_error(await push(client, emulator, hex_token(), token), 403, "ExpiredProviderToken")


async def test_unrelated_key_id_on_same_connection(client, emulator, make_jwt, other_ec_key, config):
    assert (await push(client, emulator, hex_token(), make_jwt())).status_code == 200
    other = make_jwt(key=other_ec_key, kid=OTHER_KEY_ID)
    assert_error(await push(client, emulator, hex_token(), other), 403, "UnrelatedKeyIdInToken")
    # A new connection may use the other key.
    async with httpx.AsyncClient(http2=True, verify=ssl_ctx_from(emulator.ca_pem)) as fresh:
        assert (await push(fresh, emulator, hex_token(), other)).status_code == 200


async def test_too_many_provider_token_updates(client, emulator, make_jwt, emu_clock: FakeClock):
    first = make_jwt()
    assert (await push(client, emulator, hex_token(), first)).status_code == 200
    emu_clock.advance(1199)
    assert_error(await push(client, emulator, hex_token(), make_jwt()), 429, "TooManyProviderTokenUpdates")
    # The token in use keeps working.
    assert (await push(client, emulator, hex_token(), first)).status_code == 200
    emu_clock.advance(1)
    second = make_jwt()
    assert (await push(client, emulator, hex_token(), second)).status_code == 200
    emu_clock.advance(1199)
    assert_error(await push(client, emulator, hex_token(), make_jwt()), 429, "TooManyProviderTokenUpdates")


async def test_permanent_test_tokens(client, emulator, make_jwt, emu_clock: FakeClock):
    emu_clock.now = 1_700_000_123.456
    for _ in range(2):
        body = assert_error(await push(client, emulator, hex_token("0410"), make_jwt()), 410, "Unregistered")
        assert body["timestamp"] == 1_700_000_123_456
        assert "timestamp" not in assert_error(
            await push(client, emulator, hex_token("0400"), make_jwt()), 400, "BadDeviceToken"
        )
        assert_error(await push(client, emulator, hex_token("0403"), make_jwt()), 403, "Forbidden")
    assert emulator.inbox.entries() == []


@pytest.mark.parametrize(
    ("prefix", "status", "reason"),
    [("0429", 429, "TooManyRequests"), ("0503", 503, "ServiceUnavailable"), ("0500", 500, "InternalServerError")],
)
async def test_transient_test_tokens(client, emulator, make_jwt, prefix, status, reason):
    token = hex_token(prefix)
    assert_error(await push(client, emulator, token, make_jwt()), status, reason)
    assert (await push(client, emulator, token, make_jwt())).status_code == 200
    assert (await push(client, emulator, token, make_jwt())).status_code == 200
    # Each token has its own first attempt.
    assert_error(await push(client, emulator, hex_token(prefix + "ff"), make_jwt()), status, reason)
    assert [e.token for e in emulator.inbox.entries()] == [token, token]


async def test_uppercase_hex_token_accepted(client, emulator, make_jwt):
    token = hex_token().upper()
    assert (await push(client, emulator, token, make_jwt())).status_code == 200
    assert emulator.inbox.entries(token=token)[0].token == token


async def test_stats_count_requests(client, emulator, make_jwt):
    await push(client, emulator, hex_token(), make_jwt())
    await push(client, emulator, "zz", make_jwt())
    assert emulator.stats.apns_requests == 2
