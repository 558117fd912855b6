"""FcmAccessTokenSource: google-auth flow over httpx, caching, single refresh, invalidate."""

from __future__ import annotations

import asyncio
import threading
import urllib.parse

import google.auth.exceptions
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import service_account

from pushsvc.providers.fcm_auth import FCM_SCOPE, FcmAccessTokenSource, HttpxAuthRequest


def _source(credentials, clock, **kwargs) -> FcmAccessTokenSource:
    return FcmAccessTokenSource(credentials, request=object(), clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_token_is_cached_until_shortly_before_expiry(clock, CountingCredentials) -> None:
    credentials = CountingCredentials(lifetime_s=3600)
    source = _source(credentials, clock, refresh_margin_s=300)
    assert await source.access_token() == "tok-1"
    clock.advance(3600 - 300 - 5)
    assert await source.access_token() == "tok-1"
    assert source.refresh_count == 1
    clock.advance(10)  # inside the margin
    assert await source.access_token() == "tok-2"
    assert source.refresh_count == 2


async def test_concurrent_callers_trigger_one_refresh_off_the_event_loop(clock, CountingCredentials) -> None:
    credentials = CountingCredentials(delay_s=0.05)
    source = _source(credentials, clock)
    tokens = await asyncio.gather(*(source.access_token() for _ in range(50)))
    assert set(tokens) == {"tok-1"}
    assert credentials.calls == 1
    assert credentials.threads[0] != threading.get_ident()


async def test_invalidate_forces_a_refresh_once(clock, CountingCredentials) -> None:
    credentials = CountingCredentials()
    source = _source(credentials, clock)
    first = await source.access_token()
    source.invalidate(rejected=first)
    second = await source.access_token()
    assert second == "tok-2"
    source.invalidate(rejected=first)  # stale rejection: someone already refreshed
    assert await source.access_token() == "tok-2"
    assert credentials.calls == 2


async def test_refresh_has_a_deadline(clock, CountingCredentials) -> None:
    source = _source(CountingCredentials(delay_s=0.5), clock, refresh_timeout_s=0.05)
    with pytest.raises(TimeoutError):
        await source.access_token()


@pytest.fixture(scope="module")
def service_account_info() -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "kid1",
        "private_key": pem,
        "client_email": "sender@demo.iam.gserviceaccount.com",
        "token_uri": "https://oauth.test/token",
        "_public": key.public_key(),
    }


async def test_google_auth_posts_a_jwt_grant_to_token_uri_through_httpx(service_account_info, clock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "ya29.issued", "expires_in": 3599, "token_type": "Bearer"})

    info = {key: value for key, value in service_account_info.items() if not key.startswith("_")}
    credentials = service_account.Credentials.from_service_account_info(info, scopes=[FCM_SCOPE])
    source = FcmAccessTokenSource(
        credentials, request=HttpxAuthRequest(httpx.Client(transport=httpx.MockTransport(handler))), clock=clock
    )
    assert await source.access_token() == "ya29.issued"
    assert await source.access_token() == "ya29.issued"
    assert len(seen) == 1
    request = seen[0]
    assert str(request.url) == "https://oauth.test/token"
    form = dict(urllib.parse.parse_qsl(request.content.decode()))
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(
        form["assertion"], service_account_info["_public"], algorithms=["RS256"], audience="https://oauth2.googleapis.com/token"
    )
    assert claims["iss"] == info["client_email"] and claims["scope"] == FCM_SCOPE
    # Expires in 3599 s: with a 300 s margin the cache holds for ~55 minutes on the injected clock.
    clock.advance(3599 - 300 + 1)
    await source.access_token()
    assert len(seen) == 2
    source.close()


async def test_token_endpoint_refusal_surfaces_as_refresh_error(service_account_info, clock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_grant", "error_description": "bad key"})

    info = {key: value for key, value in service_account_info.items() if not key.startswith("_")}
    credentials = service_account.Credentials.from_service_account_info(info, scopes=[FCM_SCOPE])
    source = FcmAccessTokenSource(
        credentials, request=HttpxAuthRequest(httpx.Client(transport=httpx.MockTransport(handler))), clock=clock
    )
    with pytest.raises(google.auth.exceptions.RefreshError) as caught:
        await source.access_token()
    assert not caught.value.retryable


def test_transport_errors_become_google_transport_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    request = HttpxAuthRequest(httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(google.auth.exceptions.TransportError):
        request("https://oauth.test/token", method="POST", body=b"x")
