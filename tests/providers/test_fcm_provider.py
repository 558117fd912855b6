"""FcmProvider against an in-memory transport: request shape and every error shape and code."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from pushsvc import models
from pushsvc.providers.base import Delivery, Outcome
from pushsvc.providers.fcm import FcmProvider, render_fcm
from pushsvc.providers.fcm_auth import FcmAccessTokenSource
from pushsvc.providers.transport import ConnectFailed, ConnectionLost, DeadlineExceeded

from .fakes import FakeTransport

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
APNS_ERROR = "type.googleapis.com/google.firebase.fcm.v1.ApnsError"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def _status(code: int, status: str, message: str = "", *details: dict, headers: dict | None = None) -> httpx.Response:
    error = {"code": code, "message": message, "status": status, "details": list(details)}
    return httpx.Response(code, json={"error": error}, headers=headers)


def _fcm(code: str) -> dict:
    return {"@type": FCM_ERROR, "errorCode": code}


@pytest.fixture
def token_source(clock, CountingCredentials) -> FcmAccessTokenSource:
    return FcmAccessTokenSource(CountingCredentials(), request=object(), clock=clock)  # type: ignore[arg-type]


def _provider(handler, token_source, clock) -> FcmProvider:
    return FcmProvider(
        transport=FakeTransport(handler), base_url="https://fcm.test/", project_id="demo", token_source=token_source, clock=clock
    )


def _delivery(**kwargs) -> Delivery:
    message = models.Message(title="T", body="B", collapse_key="c", priority=models.Priority.HIGH)
    return Delivery(token=kwargs.pop("token", "tok-abc"), rendered=render_fcm(message), **kwargs)


async def test_request_shape_and_success(token_source, clock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"name": "projects/demo/messages/0:123"})

    async with _provider(handler, token_source, clock) as provider:
        expires = datetime.fromtimestamp(clock.now + 90.2, tz=UTC)
        result = await provider.send(_delivery(expires_at=expires))
    assert (result.outcome, result.provider_status, result.provider_message_id) == (
        Outcome.DELIVERED, 200, "projects/demo/messages/0:123"
    )
    request = seen[0]
    assert str(request.url) == "https://fcm.test/v1/projects/demo/messages:send"
    assert request.headers["authorization"] == "Bearer tok-1"
    message = json.loads(request.content)["message"]
    assert message["token"] == "tok-abc"
    assert message["notification"] == {"title": "T", "body": "B"}
    assert message["android"]["ttl"] == "91s" and message["android"]["priority"] == "HIGH"
    assert message["apns"]["headers"]["apns-expiration"] == str(int(clock.now + 90.2))
    assert message["apns"]["headers"]["apns-collapse-id"] == "c"


async def test_without_expiry_there_is_no_ttl(token_source, clock) -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["message"])
        return httpx.Response(200, json={"name": "n"})

    async with _provider(handler, token_source, clock) as provider:
        await provider.send(_delivery())
        await provider.send(_delivery(expires_at=datetime.fromtimestamp(clock.now - 5, tz=UTC)))
    assert "ttl" not in seen[0]["android"] and "apns-expiration" not in seen[0]["apns"]["headers"]
    assert seen[1]["android"]["ttl"] == "0s"


CASES = [
    # (response, outcome, reason, retry_after)
    (_status(404, "NOT_FOUND", "Requested entity was not found.", _fcm("UNREGISTERED")), Outcome.TOKEN_INVALID, "UNREGISTERED", None),
    (_status(403, "PERMISSION_DENIED", "SenderId mismatch", _fcm("SENDER_ID_MISMATCH")), Outcome.TOKEN_INVALID, "SENDER_ID_MISMATCH", None),
    (_status(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", _fcm("INVALID_ARGUMENT")),
     Outcome.TOKEN_INVALID, "INVALID_ARGUMENT", None),
    (_status(400, "INVALID_ARGUMENT", "APNs device token is disabled.", _fcm("INVALID_ARGUMENT"),
             {"@type": APNS_ERROR, "statusCode": 410, "reason": "Unregistered"}), Outcome.TOKEN_INVALID, "INVALID_ARGUMENT", None),
    (_status(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", _fcm("INVALID_ARGUMENT"),
             {"@type": APNS_ERROR, "statusCode": 400, "reason": "BadDeviceToken"}), Outcome.TOKEN_INVALID, "INVALID_ARGUMENT", None),
    (_status(400, "INVALID_ARGUMENT", "Android message is too big", _fcm("INVALID_ARGUMENT")), Outcome.PERMANENT, "INVALID_ARGUMENT", None),
    (_status(429, "RESOURCE_EXHAUSTED", "Sending limit exceeded", _fcm("QUOTA_EXCEEDED"), headers={"retry-after": "60"}),
     Outcome.RETRYABLE, "QUOTA_EXCEEDED", 60.0),
    (_status(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric",
             {"@type": ERROR_INFO, "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com"}, headers={"retry-after": "1"}),
     Outcome.RETRYABLE, "RESOURCE_EXHAUSTED", 1.0),
    (_status(503, "UNAVAILABLE", "The service is currently unavailable.", _fcm("UNAVAILABLE"), headers={"retry-after": "3"}),
     Outcome.RETRYABLE, "UNAVAILABLE", 3.0),
    (_status(500, "INTERNAL", "Internal error", _fcm("INTERNAL")), Outcome.RETRYABLE, "INTERNAL", None),
    (_status(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service", _fcm("THIRD_PARTY_AUTH_ERROR"),
             {"@type": APNS_ERROR, "statusCode": 403, "reason": "InvalidProviderToken"}),
     Outcome.CREDENTIALS_REJECTED, "THIRD_PARTY_AUTH_ERROR", None),
    (_status(401, "UNAUTHENTICATED", "", _fcm("APNS_AUTH_ERROR")), Outcome.CREDENTIALS_REJECTED, "APNS_AUTH_ERROR", None),
    (_status(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied"),
     Outcome.CREDENTIALS_REJECTED, "PERMISSION_DENIED", None),
    (_status(400, "INVALID_ARGUMENT", "", _fcm("UNSPECIFIED_ERROR")), Outcome.PERMANENT, "UNSPECIFIED_ERROR", None),
    (_status(400, "INVALID_ARGUMENT", "", _fcm("SOMETHING_NEW")), Outcome.PERMANENT, "SOMETHING_NEW", None),
    (_status(503, "UNAVAILABLE", "", _fcm("SOMETHING_NEW")), Outcome.RETRYABLE, "SOMETHING_NEW", None),
    (_status(400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
             {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": []}), Outcome.PERMANENT, "INVALID_ARGUMENT", None),
    # A 404 without FcmError is a wrong URL or project, never a reason to delete tokens.
    (_status(404, "NOT_FOUND", "Requested entity was not found."), Outcome.PERMANENT, "NOT_FOUND", None),
    (httpx.Response(502, text="<html>bad gateway</html>"), Outcome.RETRYABLE, "HTTP_502", None),
    (httpx.Response(504, text="", headers={"retry-after": "Wed, 15 Nov 2023 00:00:30 GMT"}), Outcome.RETRYABLE, "HTTP_504", 30.0),
]


@pytest.mark.parametrize(("response", "outcome", "reason", "retry_after"), CASES)
async def test_error_shapes(response, outcome, reason, retry_after, token_source, clock) -> None:
    clock.now = datetime(2023, 11, 15, tzinfo=UTC).timestamp()
    async with _provider(lambda request: response, token_source, clock) as provider:
        result = await provider.send(_delivery())
    assert (result.outcome, result.provider_status, result.reason, result.retry_after_s) == (
        outcome, response.status_code, reason, retry_after
    )


def test_every_documented_error_code_is_covered() -> None:
    documented = {"UNSPECIFIED_ERROR", "INVALID_ARGUMENT", "UNREGISTERED", "SENDER_ID_MISMATCH", "QUOTA_EXCEEDED",
                  "UNAVAILABLE", "INTERNAL", "THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR"}
    tested = {case[2] for case in CASES}
    assert documented <= tested


async def test_oauth_401_refreshes_the_token_and_retries_once(token_source, clock) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        if len(seen) == 1:
            return _status(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        return httpx.Response(200, json={"name": "projects/demo/messages/1"})

    async with _provider(handler, token_source, clock) as provider:
        result = await provider.send(_delivery())
    assert result.outcome is Outcome.DELIVERED
    assert seen == ["Bearer tok-1", "Bearer tok-2"]


async def test_oauth_401_twice_is_credentials_rejected(token_source, clock) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _status(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")

    async with _provider(handler, token_source, clock) as provider:
        result = await provider.send(_delivery())
    assert calls == 2
    assert (result.outcome, result.reason) == (Outcome.CREDENTIALS_REJECTED, "UNAUTHENTICATED")


async def test_third_party_auth_error_is_not_retried(token_source, clock) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _status(401, "UNAUTHENTICATED", "", _fcm("THIRD_PARTY_AUTH_ERROR"))

    async with _provider(handler, token_source, clock) as provider:
        await provider.send(_delivery())
    assert calls == 1 and token_source.refresh_count == 1


async def test_many_sends_share_one_access_token(token_source, clock) -> None:
    import asyncio

    async with _provider(lambda request: httpx.Response(200, json={"name": "n"}), token_source, clock) as provider:
        await asyncio.gather(*(provider.send(_delivery()) for _ in range(30)))
    assert token_source.refresh_count == 1


@pytest.mark.parametrize(
    ("exc", "reason"),
    [(ConnectFailed("x"), "ConnectFailed"), (ConnectionLost("x"), "ConnectionLost (outcome unknown)"),
     (DeadlineExceeded("x"), "Timeout (outcome unknown)")],
)
async def test_network_errors_are_retryable(exc, reason, token_source, clock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with _provider(handler, token_source, clock) as provider:
        result = await provider.send(_delivery())
    assert (result.outcome, result.provider_status, result.reason) == (Outcome.RETRYABLE, 0, reason)


async def test_oauth_endpoint_failures_do_not_raise(clock) -> None:
    import google.auth.credentials
    import google.auth.exceptions

    class Refusing(google.auth.credentials.Credentials):
        def __init__(self, exc: Exception) -> None:
            super().__init__()
            self.exc = exc

        def refresh(self, request) -> None:
            raise self.exc

    cases = [
        (google.auth.exceptions.RefreshError("invalid_grant"), Outcome.CREDENTIALS_REJECTED),
        (google.auth.exceptions.RefreshError("busy", retryable=True), Outcome.RETRYABLE),
        (google.auth.exceptions.TransportError("down"), Outcome.RETRYABLE),
    ]
    reasons = ["OAuthRefreshError", "OAuthRefreshError", "OAuthTransportError"]
    for (exc, outcome), reason in zip(cases, reasons, strict=True):
        source = FcmAccessTokenSource(Refusing(exc), request=object(), clock=clock)  # type: ignore[arg-type]
        async with _provider(lambda request: httpx.Response(200), source, clock) as provider:
            result = await provider.send(_delivery())
            assert (result.outcome, result.reason, result.provider_status) == (outcome, reason, 0)


async def test_a_batch_resends_its_oauth_401_answers_together_with_one_new_access_token(token_source, clock) -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        token = json.loads(request.content)["message"]["token"]
        seen.append((token, request.headers["authorization"]))
        if request.headers["authorization"] == "Bearer tok-1" and token in ("t1", "t3"):
            return _status(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        return httpx.Response(200, json={"name": f"projects/demo/messages/{token}"})

    async with _provider(handler, token_source, clock) as provider:
        results = await provider.send_batch([_delivery(token=f"t{i}") for i in range(5)])
    assert [r.provider_message_id for r in results] == [f"projects/demo/messages/t{i}" for i in range(5)]
    assert seen == [(f"t{i}", "Bearer tok-1") for i in range(5)] + [("t1", "Bearer tok-2"), ("t3", "Bearer tok-2")]


async def test_a_batch_body_is_the_message_with_each_token_escaped_as_json(token_source, clock) -> None:
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"name": "projects/demo/messages/1"})

    odd = 'we"ird\\tok\u00e9n'
    expires = datetime.fromtimestamp(clock.now + 90, tz=UTC)
    async with _provider(handler, token_source, clock) as provider:
        await provider.send_batch([_delivery(token="plain", expires_at=expires), _delivery(token=odd, expires_at=expires)])
    assert [b["message"]["token"] for b in bodies] == ["plain", odd]
    for body in bodies:
        assert body["message"]["android"]["ttl"] == "90s" and body["message"]["notification"] == {"title": "T", "body": "B"}
