"""The fake Google OAuth token endpoint (protocols.md C)."""

from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pushsvc.emulator import Emulator

from .conftest import JWT_GRANT, START, FakeClock


async def token_request(client: httpx.AsyncClient, emulator: Emulator, **form: str) -> httpx.Response:
    return await client.post(emulator.token_uri, data=form)


async def test_issues_bearer_token(client, emulator, make_assertion):
    response = await token_request(client, emulator, grant_type=JWT_GRANT, assertion=make_assertion())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 599)
    assert body["access_token"]
    again = await token_request(client, emulator, grant_type=JWT_GRANT, assertion=make_assertion())
    assert again.json()["access_token"] != body["access_token"]
    assert emulator.stats.oauth_tokens_issued == 2


async def test_accepts_own_token_uri_as_audience(client, emulator, make_assertion):
    response = await token_request(client, emulator, grant_type=JWT_GRANT, assertion=make_assertion(aud=emulator.token_uri))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"iss": "nobody@example.iam.gserviceaccount.com"}, "invalid_grant", "account not found"),
        ({"aud": "https://example.com/token"}, "invalid_grant", "audience"),
        ({"exp": int(START) - 1}, "invalid_grant", "short-lived token"),
        ({"iat": int(START) - 7200, "exp": int(START) + 3600}, "invalid_grant", "short-lived token"),
        ({"exp": None}, "invalid_grant", "short-lived token"),
        ({"scope": None}, "invalid_scope", "scope"),
        ({"scope": ""}, "invalid_scope", "scope"),
    ],
)
async def test_rejects_bad_assertions(client, emulator, make_assertion, overrides, error, fragment):
    response = await token_request(client, emulator, grant_type=JWT_GRANT, assertion=make_assertion(**overrides))
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert fragment in response.json()["error_description"]
    assert emulator.stats.oauth_tokens_issued == 0


async def test_rejects_wrong_signature(client, emulator, make_assertion):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = await token_request(client, emulator, grant_type=JWT_GRANT, assertion=make_assertion(key=stranger))
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}


async def test_rejects_wrong_grant_type_and_missing_assertion(client, emulator, make_assertion):
    response = await token_request(client, emulator, grant_type="client_credentials", assertion=make_assertion())
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")
    response = await token_request(client, emulator, grant_type=JWT_GRANT)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_assertion_expiry_follows_the_clock(client, emulator, make_assertion, emu_clock: FakeClock):
    assertion = make_assertion()
    emu_clock.advance(3600)
    response = await token_request(client, emulator, grant_type=JWT_GRANT, assertion=assertion)
    assert response.json()["error"] == "invalid_grant"


async def test_faults_never_touch_oauth(client, emulator, make_assertion):
    emulator.faults.error_rate = 1.0
    emulator.faults.reset_after = 1
    for _ in range(3):
        response = await token_request(client, emulator, grant_type=JWT_GRANT, assertion=make_assertion())
        assert response.status_code == 200
