"""Conformance: independent, unmodified client libraries against the emulator.

- aioapns (HTTP/2 over TLS *without* ALPN) on the APNs port;
- google-auth with its default ``requests`` transport (HTTP/1.1) on the
  OAuth endpoint;
- firebase-admin's synchronous ``messaging.send`` (HTTP/1.1 through requests)
  on the FCM port.

Libraries that have to be redirected by patching their module run in a
subprocess (tests/emulator/peers/) and report JSON. The emulator uses the real
clock here, because the libraries sign their JWTs with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import google.auth.transport.requests
import httpx
import pytest
import requests
from google.oauth2 import service_account

from pushsvc.emulator import DemoCredentials, Emulator, EmulatorConfig, make_demo_credentials

from .conftest import FCM_SCOPE, hex_token, ssl_ctx_from

PEERS = Path(__file__).parent / "peers"
PEER_TIMEOUT_S = 60.0


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[Emulator, DemoCredentials]]:
    """An emulator on the real clock with the demo credentials `pushsvc emulator` writes."""
    async with Emulator(EmulatorConfig()) as emulator:
        credentials, apns_key, fcm_account = make_demo_credentials(
            tmp_path / "credentials", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        emulator.add_apns_key(apns_key)
        emulator.add_fcm_account(fcm_account)
        yield emulator, credentials


async def run_peer(script: str, config: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run peers/<script> with ``config`` as JSON on stdin; return its JSON output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PEERS / script),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        async with asyncio.timeout(PEER_TIMEOUT_S):
            stdout, stderr = await process.communicate(json.dumps(config).encode())
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)


def ca_session(credentials: DemoCredentials) -> requests.Session:
    """A requests session trusting the emulator's CA."""
    session = requests.Session()
    session.verify = str(credentials.ca_file)
    # Otherwise a REQUESTS_CA_BUNDLE in the environment overrides session.verify.
    session.trust_env = False
    return session


async def google_access_token(credentials: DemoCredentials) -> str:
    """An access token from the emulator, fetched by google-auth (requests transport)."""
    info = json.loads(credentials.fcm_service_account_file.read_text())
    google_credentials = service_account.Credentials.from_service_account_info(info, scopes=[FCM_SCOPE])
    with ca_session(credentials) as session:
        await asyncio.to_thread(google_credentials.refresh, google.auth.transport.requests.Request(session))
    return str(google_credentials.token)


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    return host, int(port)


# -- aioapns ------------------------------------------------------------------

APNS_MESSAGE = {"aps": {"alert": {"title": "Hello", "body": "from aioapns"}, "sound": "default"}, "k": "v"}


async def test_aioapns_without_alpn(live):
    emulator, credentials = live
    host, port = host_port(emulator.apns_url)
    ok, gone, bad = hex_token("ab"), hex_token("0410"), hex_token("0400")
    output = await run_peer(
        "aioapns_peer.py",
        {
            "host": host,
            "port": port,
            "ca_file": str(credentials.ca_file),
            "key_file": str(credentials.apns_key_file),
            "key_id": credentials.apns_key_id,
            "team_id": credentials.apns_team_id,
            "topic": credentials.apns_bundle_id,
            "tokens": [ok, gone, bad],
            "message": APNS_MESSAGE,
        },
    )
    assert output["alpn"] and set(output["alpn"]) == {None}  # really no ALPN
    results = {r["token"]: r for r in output["results"]}
    assert (results[ok]["status"], results[ok]["description"]) == ("200", None)
    assert (results[gone]["status"], results[gone]["description"]) == ("410", "Unregistered")
    assert isinstance(results[gone]["timestamp"], int) and results[gone]["timestamp"] > 0
    assert (results[bad]["status"], results[bad]["description"]) == ("400", "BadDeviceToken")
    [entry] = emulator.inbox.entries(platform="apns")
    assert (entry.token, entry.environment, entry.payload) == (ok, "production", APNS_MESSAGE)
    assert entry.message_id == results[ok]["notification_id"]
    assert entry.headers["apns-topic"] == credentials.apns_bundle_id
    assert emulator.stats.apns_requests == 3


# -- google-auth, requests transport ---------------------------------------------


async def test_google_auth_requests_transport_gets_a_token_fcm_accepts(live):
    emulator, credentials = live
    info = json.loads(credentials.fcm_service_account_file.read_text())
    google_credentials = service_account.Credentials.from_service_account_info(info, scopes=[FCM_SCOPE])
    with ca_session(credentials) as session:
        # requests is synchronous and the emulator runs on this event loop.
        await asyncio.to_thread(google_credentials.refresh, google.auth.transport.requests.Request(session))
        assert google_credentials.valid
        assert google_credentials.token.startswith("ya29.")
        assert google_credentials.expiry is not None
        send_url = f"{emulator.fcm_url}/v1/projects/{credentials.fcm_project_id}/messages:send"
        message = {"message": {"token": "google-auth-device", "data": {"via": "http/1.1"}}}
        # The token works over HTTP/1.1 (requests)...
        over_h1 = await asyncio.to_thread(
            session.post, send_url, json=message, headers={"authorization": f"Bearer {google_credentials.token}"}
        )
    assert over_h1.status_code == 200, over_h1.text
    # ...and over HTTP/2.
    async with httpx.AsyncClient(http2=True, verify=ssl_ctx_from(emulator.ca_pem)) as client:
        over_h2 = await client.post(
            send_url, json=message, headers={"authorization": f"Bearer {google_credentials.token}"}
        )
    assert (over_h2.http_version, over_h2.status_code) == ("HTTP/2", 200)
    assert emulator.stats.oauth_tokens_issued == 1
    assert len(emulator.inbox.entries(token="google-auth-device")) == 2


# -- firebase-admin, synchronous messaging.send -------------------------------------

FIREBASE_MESSAGE = {"title": "Hello", "body": "from firebase-admin", "data": {"k": "v", "n": "1"}}


async def test_firebase_admin_sync_send(live):
    emulator, credentials = live
    tokens = ["firebase-device-1", "unregistered-firebase-1", "invalid-firebase-1"]
    output = await run_peer(
        "firebase_peer.py",
        {
            "service_account_file": str(credentials.fcm_service_account_file),
            "fcm_url": emulator.fcm_url,
            "messages": [{"token": token, **FIREBASE_MESSAGE} for token in tokens],
        },
        env={"REQUESTS_CA_BUNDLE": str(credentials.ca_file)},
    )
    project = credentials.fcm_project_id
    assert output["project_id"] == project
    sent, unregistered, invalid = output["results"]
    assert sent["name"].startswith(f"projects/{project}/messages/0:")
    assert (unregistered["error"], unregistered["code"], unregistered["http_status"]) == (
        "UnregisteredError",
        "NOT_FOUND",
        404,
    )
    assert (invalid["error"], invalid["code"], invalid["http_status"]) == (
        "InvalidArgumentError",
        "INVALID_ARGUMENT",
        400,
    )
    assert "not a valid FCM registration token" in invalid["message"]
    assert emulator.stats.oauth_tokens_issued >= 1

    # The same message over HTTP/2 lands in the inbox with the same content.
    expected = {
        "token": "firebase-device-1",
        "notification": {"title": FIREBASE_MESSAGE["title"], "body": FIREBASE_MESSAGE["body"]},
        "data": FIREBASE_MESSAGE["data"],
    }
    access_token = await google_access_token(credentials)
    async with httpx.AsyncClient(http2=True, verify=ssl_ctx_from(emulator.ca_pem)) as client:
        over_h2 = await client.post(
            f"{emulator.fcm_url}/v1/projects/{project}/messages:send",
            json={"message": expected},
            headers={"authorization": f"Bearer {access_token}"},
        )
        assert (over_h2.http_version, over_h2.status_code) == ("HTTP/2", 200)
    # Read the inbox the way a plain HTTP/1.1 client (curl without --http2) would.
    with ca_session(credentials) as session:
        inbox = await asyncio.to_thread(
            session.get, f"{emulator.fcm_url}/_emulator/inbox", params={"token": "firebase-device-1"}
        )
    assert inbox.status_code == 200
    via_h1, via_h2 = inbox.json()
    assert via_h1["message_id"] == sent["name"]
    assert via_h2["message_id"] == over_h2.json()["name"]
    assert via_h1["payload"] == via_h2["payload"] == expected
    assert via_h1["headers"]["x-goog-api-format-version"] == "2"
    assert via_h1["headers"]["x-firebase-client"].startswith("fire-admin-python/")
    assert via_h1["headers"]["content-type"] == "application/json"
    # Permanent test tokens are never accepted.
    assert emulator.inbox.entries(token="unregistered-firebase-1") == []
    assert emulator.inbox.entries(token="invalid-firebase-1") == []

