"""The emulator's Web Push service, driven by pywebpush (an independent sender) and by hand-made requests."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush

from pushsvc.emulator import Emulator, EmulatorConfig


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    # Real time: pywebpush signs its JWT with the system clock.
    emu = Emulator(EmulatorConfig(), clock=time.time)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
def ca_file(emulator: Emulator, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_bytes(emulator.ca_pem)
    return str(path)


@pytest.fixture
def vapid() -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


def _server_key(vapid: Vapid02) -> str:
    return _b64(vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


async def _mint(emulator: Emulator, ca_file: str, **options: str) -> dict:
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file)) as client:
        reply = await client.post(f"{emulator.fcm_url}/_emulator/webpush/subscriptions", json=options)
    assert reply.status_code == 201, reply.text
    return reply.json()


def _pywebpush(subscription: dict, data: str, vapid: Vapid02, ca_file: str, **kw: object) -> requests.Response:
    session = requests.Session()
    session.verify = ca_file
    session.trust_env = False  # a CA bundle in the environment would win over session.verify
    return webpush(  # type: ignore[return-value]  # a Response unless curl=True
        subscription, data, vapid_private_key=vapid, vapid_claims={"sub": "mailto:ops@example.com"},
        ttl=60, requests_session=session, **kw,
    )


async def test_pywebpush_is_accepted_and_decrypted(emulator, ca_file, vapid) -> None:
    sub = await _mint(emulator, ca_file, applicationServerKey=_server_key(vapid))
    assert set(sub) == {"endpoint", "expirationTime", "keys"} and set(sub["keys"]) == {"p256dh", "auth"}
    assert len(base64.urlsafe_b64decode(sub["keys"]["p256dh"] + "=")) == 65
    payload = json.dumps({"title": "From pywebpush", "body": "independent sender"})
    reply = await asyncio.to_thread(_pywebpush, sub, payload, vapid, ca_file, headers={"Urgency": "high", "Topic": "t1"})
    assert reply.status_code == 201 and reply.headers["location"].startswith(f"{emulator.webpush_url}/m/")
    assert reply.headers["ttl"] == "60"
    [entry] = emulator.inbox.entries(platform="webpush", token=sub["endpoint"])
    assert entry.payload == {"title": "From pywebpush", "body": "independent sender"}
    assert entry.headers["urgency"] == "high" and entry.headers["topic"] == "t1"


async def test_a_plain_text_payload_is_shown_as_text(emulator, ca_file, vapid) -> None:
    sub = await _mint(emulator, ca_file)
    reply = await asyncio.to_thread(_pywebpush, sub, "just words", vapid, ca_file)
    assert reply.status_code == 201
    [entry] = emulator.inbox.entries(platform="webpush")
    assert entry.payload == {"text": "just words"}


@pytest.mark.parametrize(("outcome", "status", "prefix"), [
    ("410", 410, "gone-"), ("404", 404, "notfound-"), ("413", 413, "toolarge-"),
    ("429", 429, "ratelimit-"), ("500", 500, "error-"), ("503", 503, "unavailable-"),
])
async def test_test_outcomes_by_prefix(emulator, ca_file, vapid, outcome, status, prefix) -> None:
    sub = await _mint(emulator, ca_file, outcome=outcome)
    assert sub["endpoint"].startswith(f"{emulator.webpush_url}/wp/{prefix}")
    with pytest.raises(WebPushException) as info:
        await asyncio.to_thread(_pywebpush, sub, "x", vapid, ca_file)
    assert info.value.response.status_code == status
    if status in (429, 500, 503):
        assert info.value.response.headers["retry-after"] == "1"
    assert not emulator.inbox.entries(platform="webpush")


async def test_a_vapid_key_other_than_the_subscriptions_is_403(emulator, ca_file, vapid) -> None:
    other = Vapid02()
    other.generate_keys()
    sub = await _mint(emulator, ca_file, applicationServerKey=_server_key(other))
    with pytest.raises(WebPushException) as info:
        await asyncio.to_thread(_pywebpush, sub, "x", vapid, ca_file)
    assert info.value.response.status_code == 403 and info.value.response.json()["reason"] == "BadJwtToken"


async def test_bad_options_are_400(emulator, ca_file) -> None:
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file)) as client:
        url = f"{emulator.fcm_url}/_emulator/webpush/subscriptions"
        assert (await client.post(url, json={"outcome": "418"})).status_code == 400
        assert (await client.post(url, json={"applicationServerKey": "AAAA"})).status_code == 400
        assert (await client.get(url)).status_code == 405


def _jwt(key: ec.EllipticCurvePrivateKey, aud: str, *, exp_in_s: float = 3600, sub: str = "mailto:a@example.com") -> str:
    return jwt.encode({"aud": aud, "exp": int(time.time() + exp_in_s), "sub": sub}, key, algorithm="ES256")


async def test_the_request_checks(emulator, ca_file) -> None:
    sub = await _mint(emulator, ca_file)
    key = ec.generate_private_key(ec.SECP256R1())
    k = _b64(key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
    origin = emulator.webpush_url

    def auth(token: str) -> str:
        return f"vapid t={token},k={k}"

    good = {"ttl": "10", "authorization": auth(_jwt(key, origin))}
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file)) as client:
        post = client.post
        url = sub["endpoint"]
        assert (await post(url, headers=good)).status_code == 201  # no body: a tickle
        assert (await post(url, headers={"authorization": good["authorization"]})).status_code == 400  # no TTL
        assert (await post(url, headers={"ttl": "10"})).status_code == 401
        assert (await post(url, headers={**good, "urgency": "urgent"})).status_code == 400
        assert (await post(url, headers={**good, "topic": "x" * 33})).status_code == 400
        assert (await post(url, headers={**good, "authorization": auth(_jwt(key, origin + "/"))})).status_code == 403
        assert (await post(url, headers={**good, "authorization": auth(_jwt(key, origin, exp_in_s=90000))})).status_code == 403
        assert (await post(url, headers={**good, "authorization": auth(_jwt(key, origin, sub="ops"))})).status_code == 403
        assert (await post(url, headers=good, content=b"x" * 100)).status_code == 400  # body without aes128gcm
        big = {**good, "content-encoding": "aes128gcm"}
        assert (await post(url, headers=big, content=b"x" * 4097)).status_code == 413
        # A body that does not decrypt is still 201, as at real services; the inbox says why.
        assert (await post(url, headers=big, content=b"x" * 200)).status_code == 201
        assert (await post(url.rsplit("/", 1)[0] + "/unknown", headers=good)).status_code == 404
    entries = emulator.inbox.entries(platform="webpush")
    assert [e.payload for e in entries][0] == {}
    assert "decrypt_error" in entries[1].payload
    assert emulator.stats.webpush_requests == 12
