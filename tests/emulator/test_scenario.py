"""Scenario files: sequences, latency, GOAWAY and credential expiry, loaded at start or over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import h2.events
import httpx
import pytest

from pushsvc.emulator import Emulator
from pushsvc.emulator.scenario import ScenarioError, default_scenario, parse_scenario

from .conftest import BUNDLE, JWT_GRANT, PROJECT, hex_token, ssl_ctx_from
from .h2client import RawH2Client

PAYLOAD = b'{"aps":{"alert":"hi"}}'


async def load(client: httpx.AsyncClient, emulator: Emulator, toml: str) -> httpx.Response:
    return await client.post(
        emulator.fcm_url + "/_emulator/scenario", content=toml.encode(), headers={"content-type": "application/toml"}
    )


async def apns_push(client, emulator, token: str, jwt_token: str) -> httpx.Response:
    return await client.post(
        f"{emulator.apns_url}/3/device/{token}",
        headers={"apns-topic": BUNDLE, "authorization": f"bearer {jwt_token}"},
        content=PAYLOAD,
    )


async def fcm_send(client, emulator, access_token: str, message: dict, **extra) -> httpx.Response:
    return await client.post(
        f"{emulator.fcm_url}/v1/projects/{PROJECT}/messages:send",
        headers={"authorization": f"Bearer {access_token}"},
        json={"message": message, **extra},
    )


async def test_apns_429_twice_then_200_per_token(client, emulator, make_jwt):
    response = await load(
        client,
        emulator,
        """
        [[apns]]
        prefix = "CAFE"
        answers = [{ status = 429, reason = "TooManyRequests", retry_after_s = 3, times = 2 }]
        """,
    )
    assert response.status_code == 200, response.text
    first, second = hex_token("cafe01"), hex_token("cafe02")
    for _ in range(2):
        response = await apns_push(client, emulator, first, make_jwt())
        assert (response.status_code, response.json()["reason"]) == (429, "TooManyRequests")
        assert response.headers["retry-after"] == "3"
    assert (await apns_push(client, emulator, first, make_jwt())).status_code == 200
    # Each token has its own position in the sequence.
    assert (await apns_push(client, emulator, second, make_jwt())).status_code == 429
    assert [e.token for e in emulator.inbox.entries()] == [first]


async def test_fcm_sequence_then_forever_and_validate_only(client, emulator, access_token):
    response = await load(
        client,
        emulator,
        """
        [[fcm]]
        token = "phone-1"
        answers = [
          { status = 503, message = "down for {project_id}", error_code = "UNAVAILABLE" },
          { status = 200 },
          { status = 404, message = "Requested entity was not found.", error_code = "UNREGISTERED", forever = true },
        ]
        """,
    )
    assert response.status_code == 200, response.text
    # validate_only sees no transient step and does not advance the sequence.
    assert (await fcm_send(client, emulator, access_token, {"token": "phone-1"}, validate_only=True)).status_code == 200
    first = await fcm_send(client, emulator, access_token, {"token": "phone-1"})
    assert first.status_code == 503
    assert first.json()["error"]["message"] == f"down for {PROJECT}"
    assert first.json()["error"]["details"][0]["errorCode"] == "UNAVAILABLE"
    assert (await fcm_send(client, emulator, access_token, {"token": "phone-1"})).status_code == 200
    for _ in range(2):
        gone = await fcm_send(client, emulator, access_token, {"token": "phone-1"})
        assert (gone.status_code, gone.json()["error"]["status"]) == (404, "NOT_FOUND")
    # A forever step answers validate_only too.
    validate = await fcm_send(client, emulator, access_token, {"token": "phone-1"}, validate_only=True)
    assert validate.status_code == 404
    assert len(emulator.inbox.entries(token="phone-1")) == 1
    # Other tokens and the built-in test tokens are untouched.
    assert (await fcm_send(client, emulator, access_token, {"token": "phone-2"})).status_code == 200
    assert (await fcm_send(client, emulator, access_token, {"token": "unregistered-x"})).status_code == 404


async def test_latency_applies_to_matching_tokens_only(client, emulator, make_jwt):
    slow = hex_token("5104")
    response = await load(client, emulator, f'[[apns]]\ntoken = "{slow.upper()}"\nlatency_s = 0.4\n')
    assert response.status_code == 200, response.text
    started = time.monotonic()
    assert (await apns_push(client, emulator, slow, make_jwt())).status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    assert (await apns_push(client, emulator, hex_token("aa"), make_jwt())).status_code == 200
    assert time.monotonic() - started < 0.4


async def test_goaway_after_n_matching_requests_http2(client, emulator, make_jwt):
    assert (await load(client, emulator, '[[apns]]\nprefix = "ee"\ngoaway_after = 2\n')).status_code == 200
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    headers = [("apns-topic", BUNDLE), ("authorization", f"bearer {make_jwt()}")]
    try:
        # Non-matching requests are not counted.
        assert (await raw.request("POST", f"/3/device/{hex_token('aa')}", headers, PAYLOAD)).status == 200
        for _ in range(2):
            assert (await raw.request("POST", f"/3/device/{hex_token('ee')}", headers, PAYLOAD)).status == 200
        goaway = await raw.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
        assert goaway.last_stream_id == 5
        assert json.loads(goaway.additional_data) == {"reason": "Shutdown"}
    finally:
        await raw.close()


async def test_goaway_after_is_connection_close_over_http1(emulator, access_token):
    async with httpx.AsyncClient(verify=_ctx(emulator), timeout=10) as http1:
        assert (await load(http1, emulator, '[[fcm]]\nprefix = "bye-"\ngoaway_after = 1\n')).status_code == 200
        response = await fcm_send(http1, emulator, access_token, {"token": "bye-1"})
        assert response.http_version == "HTTP/1.1"
        assert response.status_code == 200
        assert response.headers["connection"] == "close"


async def test_apns_jwt_expires_after_n_requests_and_after_max_age(client, emulator, make_jwt, emu_clock):
    toml = "[credentials]\napns_jwt_max_requests = 2\napns_jwt_max_age_s = 60\n"
    assert (await load(client, emulator, toml)).status_code == 200
    token = make_jwt()
    for _ in range(2):
        assert (await apns_push(client, emulator, hex_token(), token)).status_code == 200
    expired = await apns_push(client, emulator, hex_token(), token)
    assert (expired.status_code, expired.json()["reason"]) == (403, "ExpiredProviderToken")
    # A fresh emulator connection with a fresh JWT works until it is 60 s old.
    async with httpx.AsyncClient(http2=True, verify=_ctx(emulator), timeout=10) as other:
        young = make_jwt()
        assert (await apns_push(other, emulator, hex_token(), young)).status_code == 200
        emu_clock.advance(61)
        old = await apns_push(other, emulator, hex_token(), young)
        assert (old.status_code, old.json()["reason"]) == (403, "ExpiredProviderToken")


async def test_oauth_token_lifetime_and_max_requests(client, emulator, make_assertion):
    toml = "[credentials]\noauth_token_lifetime_s = 120\noauth_token_max_requests = 1\n"
    assert (await load(client, emulator, toml)).status_code == 200
    grant = await client.post(emulator.token_uri, data={"grant_type": JWT_GRANT, "assertion": make_assertion()})
    assert grant.json()["expires_in"] == 119
    access_token = grant.json()["access_token"]
    assert (await fcm_send(client, emulator, access_token, {"token": "t"})).status_code == 200
    rejected = await fcm_send(client, emulator, access_token, {"token": "t"})
    assert (rejected.status_code, rejected.json()["error"]["status"]) == (401, "UNAUTHENTICATED")


async def test_defaults_false_drops_the_test_tokens_and_delete_restores_them(client, emulator, make_jwt):
    gone = hex_token("0410")
    assert (await load(client, emulator, "defaults = false\n")).status_code == 200
    assert (await client.get(emulator.apns_url + "/_emulator/scenario")).json()["apns"] == []
    assert (await apns_push(client, emulator, gone, make_jwt())).status_code == 200
    restored = await client.delete(emulator.apns_url + "/_emulator/scenario")
    assert {r["prefix"] for r in restored.json()["apns"]} == {"0410", "0400", "0403", "0429", "0503", "0500"}
    assert (await apns_push(client, emulator, gone, make_jwt())).status_code == 410


async def test_json_body_and_override_of_a_default_rule(client, emulator, access_token):
    scenario = {"fcm": [{"prefix": "quota-", "answers": [{"status": 500, "message": "boom", "times": 2}]}]}
    response = await client.post(emulator.fcm_url + "/_emulator/scenario", json=scenario)
    assert response.status_code == 200, response.text
    [rule] = [r for r in response.json()["fcm"] if r["prefix"] == "quota-"]
    assert rule["answers"] == [{"status": 500, "times": 2, "message": "boom"}]
    for _ in range(2):
        assert (await fcm_send(client, emulator, access_token, {"token": "quota-a"})).status_code == 500
    assert (await fcm_send(client, emulator, access_token, {"token": "quota-a"})).status_code == 200


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[[apns]]\nprefix = 'aa'\nanswers = [{ status = 42 }]\n", "apns[0].answers[0].status"),
        ("[[apns]]\nprefix = 'aa'\nanswers = [{ reason = 'x' }]\n", "apns[0].answers[0].status"),
        ("[[fcm]]\nprefix = 'a'\nanswers = [{ status = 400, reson = 'x' }]\n", "fcm[0].answers[0].reson"),
        ("[[fcm]]\nprefix = 'a'\nlatency = 1\n", "fcm[0].latency"),
        ("[[fcm]]\nanswers = []\n", "fcm[0]"),
        ("[[fcm]]\nprefix = 'a'\ntoken = 'b'\n", "fcm[0]"),
        ("[[fcm]]\nprefix = 'a'\n[[fcm]]\nprefix = 'a'\n", "fcm[1]"),
        ("[[fcm]]\nprefix = 'a'\nanswers = [{ status = 500, forever = true }, { status = 200 }]\n",
         "fcm[0].answers[0].forever"),
        ("[[apns]]\nprefix = 'a'\nanswers = [{ status = 500, times = 0 }]\n", "apns[0].answers[0].times"),
        ("[[apns]]\nprefix = 'a'\ngoaway_after = -1\n", "apns[0].goaway_after"),
        ("[credentials]\napns_jwt_max_age_s = 'long'\n", "credentials.apns_jwt_max_age_s"),
        ("[credentials]\njwt = 1\n", "credentials.jwt"),
        ("andriod = []\n", "andriod"),
        ("this is not toml", ""),
    ],
)
async def test_bad_scenarios_are_400_naming_the_key(client, emulator, toml, key, make_jwt):
    response = await load(client, emulator, toml)
    assert response.status_code == 400
    assert response.json()["key"] == key
    assert response.json()["error"].startswith(f"{key}: " if key else "not valid TOML")
    # Nothing changed: the test tokens still answer.
    assert (await apns_push(client, emulator, hex_token("0400"), make_jwt())).status_code == 400


def test_default_scenario_is_the_packaged_test_token_table():
    scenario = default_scenario()
    prefixes = {(r.platform, r.prefix) for r in scenario.rules}
    assert ("apns", "0410") in prefixes and ("fcm", "ratelimit-") in prefixes and len(prefixes) == 15
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("[[apns]]\ntoken = ''\n")
    assert caught.value.key == "apns[0].token"


async def test_scenario_at_start_from_config(config, make_jwt, emu_clock):
    config.scenario = parse_scenario("[[apns]]\nprefix = 'ab'\nanswers = [{ status = 503, reason = 'Shutdown' }]\n")
    async with Emulator(config, clock=emu_clock) as emulator:
        async with httpx.AsyncClient(http2=True, verify=_ctx(emulator), timeout=10) as client:
            first = await apns_push(client, emulator, hex_token(), make_jwt())
            assert (first.status_code, first.json()["reason"]) == (503, "Shutdown")


def test_cli_rejects_a_bad_scenario_file_before_binding(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[fcm]]\nprefix = 'x'\nanswers = [{ status = 'teapot' }]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pushsvc.emulator", "--scenario", str(bad), "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "fcm[0].answers[0].status" in result.stdout + result.stderr


def _ctx(emulator: Emulator):
    return ssl_ctx_from(emulator.ca_pem)


def test_exact_token_beats_prefix_and_longest_prefix_wins():
    from pushsvc.emulator.scenario import ScenarioPlayer

    player = ScenarioPlayer(
        parse_scenario(
            "[[fcm]]\nprefix = 'in'\n"
            "[[fcm]]\nprefix = 'invalid-x'\n"
            "[[fcm]]\ntoken = 'invalid-xyz'\n"
            "[[apns]]\nprefix = 'ABCD'\n"
        )
    )
    assert player.match("fcm", "invalid-xyz").token == "invalid-xyz"
    assert player.match("fcm", "invalid-xy").prefix == "invalid-x"
    assert player.match("fcm", "invalid-a").prefix == "invalid-"  # the default rule
    assert player.match("fcm", "inside").prefix == "in"
    assert player.match("fcm", "device-1") is None
    assert player.match("apns", "abcd" + "0" * 60).prefix == "abcd"  # APNs prefixes are lower-cased
