"""The emulator's Huawei Push Kit, by hand-made requests: the token endpoint and the send API's checks."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pushsvc.emulator import Emulator, EmulatorConfig
from pushsvc.emulator.hms import HmsClient

CLIENT = HmsClient(client_id="103456789", client_secret="s3cret", project_id="7364300792446")


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(), clock=time.time)
    await emu.start()
    emu.add_hms_client(CLIENT)
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def client(emulator) -> AsyncIterator[httpx.AsyncClient]:
    context = ssl.create_default_context(cadata=emulator.ca_pem.decode())
    async with httpx.AsyncClient(base_url=emulator.hms_url, verify=context) as c:
        yield c


async def _token(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    body = {"grant_type": "client_credentials", "client_id": CLIENT.client_id, "client_secret": CLIENT.client_secret, **form}
    return await client.post("/oauth2/v3/token", data=body)


async def test_the_token_endpoint(client) -> None:
    ok = await _token(client)
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    assert ok.json()["expires_in"] == 3600 and ok.json()["token_type"] == "Bearer"
    assert "/" in ok.json()["access_token"] or "+" in ok.json()["access_token"] or ok.json()["access_token"].endswith("==")
    for form, sub_error in (({"client_secret": "no"}, 12304), ({"client_id": "999"}, 20003), ({"client_id": "abc"}, 20002)):
        bad = await _token(client, **form)
        assert (bad.status_code, bad.json()["error"], bad.json()["sub_error"]) == (400, 1101, sub_error)


async def test_send_checks(client, emulator) -> None:
    token = (await _token(client)).json()["access_token"]
    auth = {"authorization": f"Bearer {token}"}
    url = f"/v2/{CLIENT.project_id}/messages:send"

    async def send(message: dict, headers: dict | None = None, **body: object) -> tuple[int, str, str]:
        reply = await client.post(url, json={"message": message, **body}, headers=headers or auth)
        return reply.status_code, reply.json()["code"], reply.json()["msg"]

    assert (await send({"token": ["a"]}, headers={"authorization": "Bearer nope"}))[:2] == (401, "80200001")
    assert (await client.post(f"/v1/{CLIENT.client_id}/messages:send", json={"message": {"token": ["a"]}}, headers=auth)).json()["code"] == "80000000"
    assert (await send({"token": ["a"], "topic": "t"}))[1] == "80100003"
    assert (await send({"token": []}))[1] == "80300010"
    assert (await send({"token": ["a"] * 1001}))[1] == "80300010"
    assert (await send({"token": ["a"], "data": {"k": "v"}}))[1] == "80100003"
    assert (await send({"token": ["a"], "android": {"urgency": "URGENT"}}))[1] == "80100003"
    assert (await send({"token": ["a"], "android": {"ttl": "1 day"}}))[1] == "80100003"
    assert (await send({"token": ["a"], "android": {"notification": {"title": "x"}}}))[1] == "80100003"
    assert (await send({"token": ["a"], "data": "x" * 4100}))[1] == "80300008"
    before = len(emulator.inbox.entries(platform="hms"))
    assert (await send({"token": ["a"], "data": "{}"}, validate_only=True))[1] == "80000000"
    assert len(emulator.inbox.entries(platform="hms")) == before
    status, code, msg = await send({"token": ["good", "invalid-x"], "data": "{}"})
    assert (status, code) == (200, "80100000")
    assert json.loads(msg) == {"success": 1, "failure": 1, "illegal_tokens": ["invalid-x"]}
    assert (await send({"token": ["invalid-y"]}))[1:] == ("80300007", "All the tokens are invalid")
    emulator.hms.expire_tokens()
    assert (await send({"token": ["a"]}))[:2] == (401, "80200003")


PEER = Path(__file__).parent / "peers" / "hms_go"


@pytest.mark.skipif(shutil.which("go") is None, reason="needs Go (scripts/install)")
async def test_go_hms_push_an_independent_client_is_served(emulator, tmp_path) -> None:
    binary = tmp_path / "hms-peer"
    build = await asyncio.create_subprocess_exec("go", "build", "-o", str(binary), ".", cwd=PEER,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(build.communicate(), 300)
    assert build.returncode == 0, out.decode()

    async def run(tokens: list[str]) -> dict:
        peer = await asyncio.create_subprocess_exec(str(binary), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        config = {"auth_url": f"{emulator.hms_url}/oauth2/v3/token", "push_url": emulator.hms_url,
                  "app_id": CLIENT.client_id, "app_secret": CLIENT.client_secret, "tokens": tokens}
        stdout, stderr = await asyncio.wait_for(peer.communicate(json.dumps(config).encode()), 60)
        assert peer.returncode == 0, stderr.decode()
        return json.loads(stdout)

    ok = await run(["peer-token-1", "peer/token+2"])
    assert (ok["code"], ok["error"]) == ("80000000", "") and ok["requestId"]
    entries = emulator.inbox.entries(platform="hms")
    assert sorted(e.token for e in entries) == ["peer-token-1", "peer/token+2"]
    assert entries[0].payload["android"]["notification"]["title"] == "From go-hms-push"
    partial = await run(["peer-token-3", "invalid-peer"])
    assert partial["code"] == "80100000" and json.loads(partial["msg"])["illegal_tokens"] == ["invalid-peer"]
