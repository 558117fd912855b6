"""Inbox, faults and stats over the /_emulator/ control endpoints, and the Inbox API."""

from __future__ import annotations

import asyncio

import pytest

from pushsvc.emulator import Inbox, InboxEntry

from .conftest import BUNDLE, PROJECT, hex_token


async def fill(client, emulator, make_jwt, access_token) -> None:
    for token in (hex_token("aa"), hex_token("bb")):
        response = await client.post(
            f"{emulator.apns_url}/3/device/{token}",
            headers={"apns-topic": BUNDLE, "authorization": f"bearer {make_jwt()}"},
            content=b'{"aps":{}}',
        )
        assert response.status_code == 200
    response = await client.post(
        f"{emulator.fcm_url}/v1/projects/{PROJECT}/messages:send",
        headers={"authorization": f"Bearer {access_token}"},
        json={"message": {"token": "fcm-1"}},
    )
    assert response.status_code == 200


async def test_inbox_over_http_on_every_port(client, emulator, make_jwt, access_token):
    await fill(client, emulator, make_jwt, access_token)
    for base in (emulator.apns_url, emulator.apns_sandbox_url, emulator.fcm_url):
        response = await client.get(base + "/_emulator/inbox")
        assert response.status_code == 200
        assert [e["token"] for e in response.json()] == [hex_token("aa"), hex_token("bb"), "fcm-1"]
    apns = (await client.get(emulator.apns_url + "/_emulator/inbox?platform=apns")).json()
    assert {e["platform"] for e in apns} == {"apns"} and len(apns) == 2
    one = (await client.get(emulator.fcm_url + "/_emulator/inbox", params={"token": "fcm-1"})).json()
    assert len(one) == 1
    assert set(one[0]) == {"platform", "token", "environment", "headers", "payload", "message_id", "received_at"}
    assert one[0]["payload"] == {"token": "fcm-1"}
    cleared = await client.delete(emulator.apns_sandbox_url + "/_emulator/inbox")
    assert cleared.json() == {"cleared": 3}
    assert (await client.get(emulator.apns_url + "/_emulator/inbox")).json() == []
    assert emulator.inbox.entries() == []


async def test_faults_over_http(client, emulator):
    assert (await client.get(emulator.fcm_url + "/_emulator/faults")).json() == {
        "error_rate": 0.0,
        "latency_s": 0.0,
        "goaway_after": 0,
        "reset_after": 0,
    }
    response = await client.post(emulator.apns_url + "/_emulator/faults", json={"error_rate": 0.5, "goaway_after": 10})
    assert response.status_code == 200
    assert response.json()["error_rate"] == 0.5
    assert (emulator.faults.error_rate, emulator.faults.goaway_after) == (0.5, 10)
    for bad in ({"error_rate": 2}, {"nope": 1}, {"latency_s": "slow"}, {"reset_after": 1.5}, {"goaway_after": -1}):
        response = await client.post(emulator.apns_url + "/_emulator/faults", json=bad)
        assert response.status_code == 400, bad
    assert emulator.faults.error_rate == 0.5  # rejected updates change nothing


async def test_stats_and_unknown_endpoints(client, emulator, make_jwt, access_token):
    await fill(client, emulator, make_jwt, access_token)
    stats = (await client.get(emulator.apns_url + "/_emulator/stats")).json()
    assert stats == {"apns_requests": 2, "fcm_requests": 1, "oauth_tokens_issued": 1, "oauth_requests": 1, "webpush_requests": 0, "hms_requests": 0}
    assert (await client.get(emulator.apns_url + "/_emulator/nothing")).status_code == 404
    assert (await client.put(emulator.apns_url + "/_emulator/inbox")).status_code == 405


async def test_control_endpoints_ignore_faults(client, emulator):
    emulator.faults.error_rate = 1.0
    emulator.faults.reset_after = 1
    for _ in range(3):
        assert (await client.get(emulator.apns_url + "/_emulator/stats")).status_code == 200


def entry(token: str, platform: str = "apns") -> InboxEntry:
    return InboxEntry(platform, token, "", {}, {}, token, 0.0)


async def test_wait_for_returns_when_enough_arrive():
    inbox = Inbox()

    async def deliver() -> None:
        for i in range(3):
            await asyncio.sleep(0.01)
            inbox.add(entry(f"t{i}"))

    task = asyncio.create_task(deliver())
    entries = await inbox.wait_for(3, timeout_s=2)
    assert [e.token for e in entries] == ["t0", "t1", "t2"]
    await task


async def test_wait_for_times_out():
    inbox = Inbox()
    inbox.add(entry("t0"))
    with pytest.raises(TimeoutError, match="1 entries"):
        await inbox.wait_for(2, timeout_s=0.05)


def test_inbox_is_bounded_and_filters():
    inbox = Inbox(limit=2)
    for token, platform in (("a", "apns"), ("b", "fcm"), ("c", "apns")):
        inbox.add(entry(token, platform))
    assert [e.token for e in inbox.entries()] == ["b", "c"]
    assert [e.token for e in inbox.entries(platform="apns")] == ["c"]
    assert inbox.entries(token="a") == []
    inbox.clear()
    assert len(inbox) == 0
