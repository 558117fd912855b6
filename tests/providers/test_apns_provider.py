"""ApnsProvider against an in-memory transport: request shape and every documented reason."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import httpx
import jwt
import pytest

from pushsvc import models
from pushsvc.providers.apns import ApnsProvider, render_apns
from pushsvc.providers.apns_jwt import ApnsTokenSigner
from pushsvc.providers.base import Delivery, Outcome
from pushsvc.providers.transport import ConnectFailed, ConnectionLost, DeadlineExceeded

from .fakes import FakeClock, FakeTransport

TOKEN = "ab" * 32
PROD = "https://apns.test"
SANDBOX = "https://sandbox.apns.test"

# Apple's table (reference/protocols.md §A.9), written out independently of the code's table.
DOCUMENTED = [
    (400, "BadCollapseId", Outcome.PERMANENT),
    (400, "BadDeviceToken", Outcome.TOKEN_INVALID),
    (400, "BadExpirationDate", Outcome.PERMANENT),
    (400, "BadMessageId", Outcome.PERMANENT),
    (400, "BadPriority", Outcome.PERMANENT),
    (400, "BadTopic", Outcome.PERMANENT),
    (400, "DeviceTokenNotForTopic", Outcome.TOKEN_INVALID),
    (400, "DuplicateHeaders", Outcome.PERMANENT),
    (400, "IdleTimeout", Outcome.RETRYABLE),
    (400, "InvalidPushType", Outcome.PERMANENT),
    (400, "MissingDeviceToken", Outcome.PERMANENT),
    (400, "MissingTopic", Outcome.PERMANENT),
    (400, "PayloadEmpty", Outcome.PERMANENT),
    (400, "TopicDisallowed", Outcome.PERMANENT),
    (403, "BadCertificate", Outcome.CREDENTIALS_REJECTED),
    (403, "BadCertificateEnvironment", Outcome.CREDENTIALS_REJECTED),
    (403, "Forbidden", Outcome.PERMANENT),
    (403, "InvalidProviderToken", Outcome.CREDENTIALS_REJECTED),
    (403, "MissingProviderToken", Outcome.CREDENTIALS_REJECTED),
    (403, "UnrelatedKeyIdInToken", Outcome.CREDENTIALS_REJECTED),
    (403, "BadEnvironmentKeyIdInToken", Outcome.CREDENTIALS_REJECTED),
    (403, "BadEnvironmentKeyInToken", Outcome.CREDENTIALS_REJECTED),
    (404, "BadPath", Outcome.PERMANENT),
    (405, "MethodNotAllowed", Outcome.PERMANENT),
    (410, "ExpiredToken", Outcome.TOKEN_INVALID),
    (410, "Unregistered", Outcome.TOKEN_INVALID),
    (413, "PayloadTooLarge", Outcome.PERMANENT),
    (429, "TooManyProviderTokenUpdates", Outcome.RETRYABLE),
    (429, "TooManyRequests", Outcome.RETRYABLE),
    (500, "InternalServerError", Outcome.RETRYABLE),
    (503, "ServiceUnavailable", Outcome.RETRYABLE),
    (503, "Shutdown", Outcome.RETRYABLE),
]


def _delivery(**kwargs) -> Delivery:
    rendered = render_apns(models.Message(title="hi", collapse_key="c"), bundle_id="com.example.app")
    return Delivery(token=kwargs.pop("token", TOKEN), rendered=rendered, **kwargs)


def _provider(handler, signer=None, clock=None) -> ApnsProvider:
    return ApnsProvider(
        transport=FakeTransport(handler),
        production_url=PROD,
        sandbox_url=SANDBOX,
        signer=signer,
        clock=clock or FakeClock(),
    )


def _error(status: int, reason: str, **extra) -> httpx.Response:
    return httpx.Response(status, json={"reason": reason, **extra}, headers={"apns-id": "srv-id"})


@pytest.fixture
def signer(p8_pem, clock) -> ApnsTokenSigner:
    return ApnsTokenSigner(p8_pem, "KEYID12345", "TEAMID1234", clock=clock)


async def test_request_shape_with_token_auth(signer, ec_key, clock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"apns-id": request.headers["apns-id"]})

    provider = _provider(handler, signer)
    expires = datetime.fromtimestamp(clock.now + 600, tz=UTC)
    result = await provider.send(_delivery(expires_at=expires))
    request = seen[0]
    assert result.outcome is Outcome.DELIVERED and result.provider_status == 200
    assert result.provider_message_id == request.headers["apns-id"]
    assert str(uuid.UUID(request.headers["apns-id"])) == request.headers["apns-id"]
    assert request.method == "POST" and str(request.url) == f"{PROD}/3/device/{TOKEN}"
    assert request.headers["apns-push-type"] == "alert"
    assert request.headers["apns-topic"] == "com.example.app"
    assert request.headers["apns-priority"] == "10"
    assert request.headers["apns-collapse-id"] == "c"
    assert request.headers["apns-expiration"] == str(int(clock.now + 600))
    token = request.headers["authorization"].removeprefix("bearer ")
    assert jwt.decode(token, ec_key.public_key(), algorithms=["ES256"], options={"verify_iat": False})["iss"] == "TEAMID1234"
    assert json.loads(request.content) == {"aps": {"alert": {"title": "hi"}}}
    await provider.aclose()


async def test_sandbox_tokens_go_to_the_sandbox_url_and_each_send_gets_a_new_apns_id(signer) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with _provider(handler, signer) as provider:
        await provider.send(_delivery(apns_environment=models.ApnsEnvironment.SANDBOX))
        await provider.send(_delivery())
    assert seen[0].url.host == "sandbox.apns.test" and seen[1].url.host == "apns.test"
    assert seen[0].headers["apns-id"] != seen[1].headers["apns-id"]
    assert "apns-expiration" not in seen[0].headers
    # Falls back to the sent apns-id when the response carries none.
    assert signer.mint_count == 1


async def test_certificate_auth_sends_no_authorization() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with _provider(handler, signer=None) as provider:
        result = await provider.send(_delivery())
    assert "authorization" not in seen[0].headers
    assert result.provider_message_id == seen[0].headers["apns-id"]


@pytest.mark.parametrize(("status", "reason", "outcome"), DOCUMENTED)
async def test_every_documented_reason(status: int, reason: str, outcome: Outcome, signer) -> None:
    async with _provider(lambda request: _error(status, reason), signer) as provider:
        result = await provider.send(_delivery())
    assert (result.outcome, result.provider_status, result.reason) == (outcome, status, reason)
    assert result.provider_message_id == "srv-id"


async def test_410_timestamp_becomes_invalid_since(signer) -> None:
    when = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)
    millis = int(when.timestamp() * 1000)
    async with _provider(lambda request: _error(410, "Unregistered", timestamp=millis), signer) as provider:
        result = await provider.send(_delivery())
    assert result.outcome is Outcome.TOKEN_INVALID
    assert result.invalid_since == when and result.invalid_since.tzinfo is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("Wed, 15 Nov 2023 00:00:30 GMT", None), ("soon", None)],
)
async def test_retry_after(value: str, expected: float | None, signer, clock) -> None:
    if expected is None and value.startswith("Wed"):
        clock.now = datetime(2023, 11, 15, 0, 0, 0, tzinfo=UTC).timestamp()
        expected = 30.0

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"reason": "TooManyRequests"}, headers={"retry-after": value})

    async with _provider(handler, signer, clock=clock) as provider:
        result = await provider.send(_delivery())
    assert result.outcome is Outcome.RETRYABLE and result.retry_after_s == expected


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(500, Outcome.RETRYABLE), (502, Outcome.RETRYABLE), (429, Outcome.RETRYABLE), (400, Outcome.PERMANENT),
     (410, Outcome.TOKEN_INVALID), (418, Outcome.PERMANENT)],
)
async def test_unknown_reasons_fall_back_to_the_status(status: int, outcome: Outcome, signer) -> None:
    async with _provider(lambda request: _error(status, "SomethingNew"), signer) as provider:
        assert (await provider.send(_delivery())).outcome is outcome
    async with _provider(lambda request: httpx.Response(status, text="<html>"), signer) as provider:
        assert (await provider.send(_delivery())).outcome is outcome


async def test_expired_provider_token_retries_once_with_a_fresh_jwt(signer, clock) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return _error(403, "ExpiredProviderToken") if len(seen) == 1 else httpx.Response(200)

    async with _provider(handler, signer) as provider:
        clock.advance(5)
        result = await provider.send(_delivery())
    assert result.outcome is Outcome.DELIVERED
    assert len(seen) == 2 and seen[0] != seen[1]
    assert signer.mint_count == 2


async def test_expired_provider_token_twice_is_credentials_rejected(signer) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _error(403, "ExpiredProviderToken")

    async with _provider(handler, signer) as provider:
        result = await provider.send(_delivery())
    assert calls == 2
    assert (result.outcome, result.reason) == (Outcome.CREDENTIALS_REJECTED, "ExpiredProviderToken")


async def test_concurrent_expired_tokens_mint_one_new_jwt(signer) -> None:
    first = signer.authorization()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == first:
            return _error(403, "ExpiredProviderToken")
        return httpx.Response(200)

    async with _provider(handler, signer) as provider:
        results = await asyncio.gather(*(provider.send(_delivery()) for _ in range(20)))
    assert all(result.outcome is Outcome.DELIVERED for result in results)
    assert signer.mint_count == 2


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectFailed("refused"), "ConnectFailed"),
        (ConnectionLost("reset"), "ConnectionLost (outcome unknown)"),
        (DeadlineExceeded("slow"), "Timeout (outcome unknown)"),
    ],
)
async def test_network_errors_are_retryable(exc: Exception, reason: str, signer) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with _provider(handler, signer) as provider:
        result = await provider.send(_delivery())
    assert (result.outcome, result.provider_status, result.reason) == (Outcome.RETRYABLE, 0, reason)


async def test_token_is_path_escaped(signer) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with _provider(handler, signer) as provider:
        await provider.send(_delivery(token="../x?y"))
    assert seen[0].url.raw_path == b"/3/device/..%2Fx%3Fy"


async def test_a_message_rendered_for_fcm_is_refused(signer) -> None:
    from pushsvc.providers.fcm import render_fcm

    async with _provider(lambda request: httpx.Response(200), signer) as provider:
        with pytest.raises(ValueError):
            await provider.send(Delivery(token=TOKEN, rendered=render_fcm(models.Message(title="x"))))


async def test_platform() -> None:
    async with _provider(lambda request: httpx.Response(200)) as provider:
        assert provider.platform is models.Platform.APNS


async def test_a_batch_resends_only_its_expired_provider_token_answers_together_with_one_fresh_jwt(signer) -> None:
    first = signer.authorization()
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.path.rsplit("/", 1)[1]
        seen.append((token, request.headers["authorization"]))
        stale = request.headers["authorization"] == first and int(token, 16) % 2 == 1
        return _error(403, "ExpiredProviderToken") if stale else httpx.Response(200)

    tokens = [f"{i:064x}" for i in range(10)]
    async with _provider(handler, signer) as provider:
        results = await provider.send_batch([_delivery(token=t) for t in tokens])
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 10
    # The batch went with one JWT; the five stale answers were resent, once, with one new JWT.
    assert [t for t, _ in seen] == tokens + tokens[1::2]
    assert {auth for _, auth in seen[:10]} == {first} and len({auth for _, auth in seen[10:]}) == 1
    assert signer.mint_count == 2
    # Every request has its own apns-id, a canonical UUID, reported as the message id.
    ids = [r.provider_message_id for r in results]
    assert len(set(ids)) == 10 and all(str(uuid.UUID(i)) == i for i in ids)


async def test_a_batch_keeps_each_tokens_own_answer_in_order(signer) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.path.rsplit("/", 1)[1]
        if token.endswith("1"):
            return _error(410, "Unregistered", timestamp=1_700_000_000_000)
        if token.endswith("2"):
            raise ConnectionLost("gone")
        return httpx.Response(200)

    async with _provider(handler, signer) as provider:
        results = await provider.send_batch([_delivery(token=f"{i:064x}") for i in range(4)])
    assert [(r.outcome, r.reason) for r in results] == [
        (Outcome.DELIVERED, ""),
        (Outcome.TOKEN_INVALID, "Unregistered"),
        (Outcome.RETRYABLE, "ConnectionLost (outcome unknown)"),
        (Outcome.DELIVERED, ""),
    ]
    assert results[2].outcome_unknown and not results[0].outcome_unknown
