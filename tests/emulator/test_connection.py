"""HTTP/2 connection behaviour: stream limits, faults, flow control, PING, resets."""

from __future__ import annotations

import asyncio
import json
import time

import h2.errors
import h2.events
import httpx
import pytest
import trustme

from pushsvc.emulator import Emulator, EmulatorConfig, InboxEntry

from .conftest import BUNDLE, PROJECT, hex_token, ssl_ctx_from
from .h2client import RawH2Client

PAYLOAD = b'{"aps":{"alert":"hi"}}'


def apns_headers(jwt_token: str | None) -> list[tuple[str, str]]:
    headers = [("apns-topic", BUNDLE)]
    if jwt_token is not None:
        headers.append(("authorization", f"bearer {jwt_token}"))
    return headers


async def settings_received(raw: RawH2Client) -> None:
    await raw.wait_for(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))


async def test_stream_limit_is_one_until_a_valid_jwt_then_1000(emulator, make_jwt):
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    try:
        await settings_received(raw)
        assert raw.max_concurrent_streams == 1
        # A rejected request does not raise the limit.
        rejected = await raw.request("POST", f"/3/device/{hex_token()}", apns_headers(None), PAYLOAD)
        assert rejected.status == 403
        await asyncio.sleep(0.05)
        assert raw.max_concurrent_streams == 1
        ok = await raw.request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
        assert ok.status == 200
        changed = await raw.wait_for(
            lambda e: isinstance(e, h2.events.RemoteSettingsChanged)
            and h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in e.changed_settings
            and e.changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 1000
        )
        assert changed is not None
        assert raw.max_concurrent_streams == 1000
    finally:
        await raw.close()


async def test_stream_over_the_limit_is_refused_not_the_connection(emulator, make_jwt):
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem, unlimited=True)
    emulator.faults.latency_s = 0.2  # keep the first stream open while the second arrives
    try:
        await settings_received(raw)
        first = raw.start_request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
        second = raw.start_request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
        refused = await raw.response(second)
        assert refused.reset_code == h2.errors.ErrorCodes.REFUSED_STREAM
        assert (await raw.response(first)).status == 200
        # The connection survives and now allows many streams.
        await raw.wait_for(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
        emulator.faults.latency_s = 0
        sids = [raw.start_request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD) for _ in range(20)]
        assert {(await raw.response(s)).status for s in sids} == {200}
    finally:
        await raw.close()


async def test_fcm_port_advertises_fcm_max_streams(emulator):
    raw = await RawH2Client.connect(emulator.fcm_url, emulator.ca_pem)
    try:
        await settings_received(raw)
        assert raw.max_concurrent_streams == 1000
    finally:
        await raw.close()


async def test_ping_is_answered(emulator):
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    try:
        raw.ping(b"12345678")
        ack = await raw.wait_for(lambda e: isinstance(e, h2.events.PingAckReceived))
        assert ack.ping_data == b"12345678"
    finally:
        await raw.close()


async def test_large_request_body_respects_flow_control(emulator, make_jwt):
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    try:
        await settings_received(raw)
        body = b'{"aps":{"alert":"' + b"x" * 300_000 + b'"}}'  # several times the 64 KiB window
        sid = raw.start_request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), end=False)
        await raw.send_large_body(sid, body)
        response = await raw.response(sid)
        assert (response.status, json.loads(response.body)) == (413, {"reason": "PayloadTooLarge"})
    finally:
        await raw.close()


async def test_large_response_body_respects_flow_control(emulator, client):
    for i in range(400):
        emulator.inbox.add(InboxEntry("fcm", f"t{i}", "", {}, {"data": {"k": "v" * 300}}, f"m{i}", 0.0))
    response = await client.get(emulator.apns_url + "/_emulator/inbox")
    assert len(response.content) > 65_535 * 2
    assert len(response.json()) == 400


async def test_client_reset_while_answer_is_delayed(emulator, make_jwt):
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    try:
        await settings_received(raw)
        ok = await raw.request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
        assert ok.status == 200
        emulator.faults.latency_s = 0.2
        sid = raw.start_request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
        await asyncio.sleep(0.05)
        raw.reset(sid)
        await asyncio.sleep(0.3)  # the delayed answer must not be sent on the reset stream
        assert not any(
            isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid for e in raw.events
        )
        emulator.faults.latency_s = 0
        again = await raw.request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
        assert again.status == 200
        assert not raw.closed.is_set()
    finally:
        await raw.close()


async def test_error_rate_gives_retryable_errors(client, emulator, make_jwt, access_token):
    emulator.faults.error_rate = 1.0
    response = await client.post(
        f"{emulator.apns_url}/3/device/{hex_token()}", headers=apns_headers(make_jwt()), content=PAYLOAD
    )
    assert (response.status_code, response.json()["reason"]) == (503, "ServiceUnavailable")
    response = await client.post(
        f"{emulator.fcm_url}/v1/projects/{PROJECT}/messages:send",
        headers={"authorization": f"Bearer {access_token}"},
        json={"message": {"token": "t"}},
    )
    error = response.json()["error"]
    assert (response.status_code, error["status"], error["details"][0]["errorCode"]) == (503, "UNAVAILABLE", "UNAVAILABLE")
    assert emulator.inbox.entries() == []
    emulator.faults.error_rate = 0.0
    response = await client.post(
        f"{emulator.apns_url}/3/device/{hex_token()}", headers=apns_headers(make_jwt()), content=PAYLOAD
    )
    assert response.status_code == 200


async def test_latency_delays_answers(client, emulator, make_jwt):
    emulator.faults.latency_s = 0.3
    started = time.monotonic()
    response = await client.post(
        f"{emulator.apns_url}/3/device/{hex_token()}", headers=apns_headers(make_jwt()), content=PAYLOAD
    )
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_goaway_after_n_requests(emulator, make_jwt):
    emulator.faults.goaway_after = 2
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    try:
        for _ in range(2):
            response = await raw.request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
            assert response.status == 200
        goaway = await raw.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
        assert goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
        assert goaway.last_stream_id == 3
        assert json.loads(goaway.additional_data) == {"reason": "Shutdown"}
        await asyncio.wait_for(raw.closed.wait(), 2)
    finally:
        await raw.close()


async def test_goaway_lets_in_flight_streams_finish(emulator, access_token):
    emulator.faults.goaway_after = 1
    raw = await RawH2Client.connect(emulator.fcm_url, emulator.ca_pem)
    path = f"/v1/projects/{PROJECT}/messages:send"
    headers = [("authorization", f"Bearer {access_token}")]
    body = json.dumps({"message": {"token": "t"}}).encode()
    try:
        await settings_received(raw)
        first = raw.start_request("POST", path, headers, end=False)
        second = raw.start_request("POST", path, headers, end=False)
        raw.send_body(first, body)
        assert (await raw.response(first)).status == 200
        goaway = await raw.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
        assert goaway.last_stream_id == second  # received before the GOAWAY: still served
        raw.send_raw_body(second, body)
        await asyncio.wait_for(raw.closed.wait(), 3)
        assert len(emulator.inbox.entries()) == 2
        # h2's client state machine rejects the late answer (see h2client).
        assert raw.protocol_error is not None
    finally:
        await raw.close()


async def test_server_lingers_after_goaway_then_closes(emulator, make_jwt):
    emulator.faults.goaway_after = 1
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    try:
        first = await raw.request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
        assert first.status == 200
        await raw.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
        assert not raw.closed.is_set()  # the server lingers before closing
        await asyncio.wait_for(raw.closed.wait(), 2)
        assert len(emulator.inbox.entries()) == 1
    finally:
        await raw.close()


async def test_httpx_reconnects_after_goaway(client, emulator, make_jwt):
    emulator.faults.goaway_after = 1
    for _ in range(3):
        response = await client.post(
            f"{emulator.apns_url}/3/device/{hex_token()}", headers=apns_headers(make_jwt()), content=PAYLOAD
        )
        assert response.status_code == 200
    assert len(emulator.inbox.entries()) == 3


async def test_reset_after_n_requests(emulator, make_jwt):
    emulator.faults.reset_after = 2
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    try:
        for _ in range(2):
            response = await raw.request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
            assert response.status == 200
        sid = raw.start_request("POST", f"/3/device/{hex_token()}", apns_headers(make_jwt()), PAYLOAD)
        with pytest.raises(ConnectionError):
            await raw.response(sid)
        assert raw.closed.is_set()
        assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in raw.events)  # no GOAWAY
        assert len(emulator.inbox.entries()) == 2
    finally:
        await raw.close()


async def test_non_h2_clients_are_refused(emulator):
    async with httpx.AsyncClient(http2=False, verify=ssl_ctx_from(emulator.ca_pem)) as http1:
        with pytest.raises(httpx.TransportError):
            await http1.get(emulator.apns_url + "/_emulator/stats")


async def test_stop_closes_connections(config, make_jwt):
    emulator = Emulator(config)
    await emulator.start()
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    try:
        await settings_received(raw)
        await emulator.stop()
        await asyncio.wait_for(raw.closed.wait(), 2)
    finally:
        await raw.close()
    with pytest.raises(RuntimeError):
        emulator.apns_url  # noqa: B018


@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    return trustme.CA()


async def test_certificate_auth(config: EmulatorConfig, client_ca: trustme.CA, tmp_path):
    config.apns_client_ca_pem = client_ca.cert_pem.bytes()
    leaf = client_ca.issue_cert("client.example", common_name="Apple Push Services: com.example.cert")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    async with Emulator(config) as emulator:
        raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem, cert_chain=(str(cert_file), str(key_file)))
        try:
            await settings_received(raw)
            assert raw.max_concurrent_streams == 1000  # no JWT needed to lift the limit
            ok = await raw.request("POST", f"/3/device/{hex_token()}", [], PAYLOAD)  # topic defaults
            assert ok.status == 200
            voip = await raw.request(
                "POST", f"/3/device/{hex_token()}", [("apns-topic", "com.example.cert.voip")], PAYLOAD
            )
            assert voip.status == 200
            bad = await raw.request("POST", f"/3/device/{hex_token()}", [("apns-topic", BUNDLE)], PAYLOAD)
            assert (bad.status, json.loads(bad.body)["reason"]) == (400, "BadTopic")
            location = await raw.request(
                "POST",
                f"/3/device/{hex_token()}",
                [("apns-topic", "com.example.cert.location-query"), ("apns-push-type", "location")],
                PAYLOAD,
            )
            assert (location.status, json.loads(location.body)["reason"]) == (400, "TopicDisallowed")
            assert emulator.inbox.entries()[0].headers.get("apns-topic") is None
        finally:
            await raw.close()
        # Without a certificate the same port still wants a JWT.
        raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
        try:
            response = await raw.request("POST", f"/3/device/{hex_token()}", [("apns-topic", BUNDLE)], PAYLOAD)
            assert (response.status, json.loads(response.body)["reason"]) == (403, "MissingProviderToken")
        finally:
            await raw.close()


# -- the fault ordering documented on Faults ------------------------------------


async def test_reset_loses_the_delayed_answers_of_accepted_requests(emulator, access_token):
    """Accepted (in the inbox) on arrival; the answer is lost when reset_after drops the connection."""
    emulator.faults.update({"reset_after": 1, "latency_s": 0.5})
    raw = await RawH2Client.connect(emulator.fcm_url, emulator.ca_pem)
    path = f"/v1/projects/{PROJECT}/messages:send"
    headers = [("authorization", f"Bearer {access_token}")]
    body = json.dumps({"message": {"token": "accepted-then-lost"}}).encode()
    try:
        first = raw.start_request("POST", path, headers, body)
        await emulator.inbox.wait_for(1, timeout_s=2)
        second = raw.start_request("POST", path, headers, body)
        for sid in (first, second):
            with pytest.raises(ConnectionError):
                await raw.response(sid)
    finally:
        await raw.close()
    assert len(emulator.inbox.entries(token="accepted-then-lost")) == 1
    assert emulator.stats.fcm_requests == 2


async def test_goaway_after_still_serves_requests_received_during_the_nth_latency(emulator, access_token):
    emulator.faults.update({"goaway_after": 1, "latency_s": 0.3})
    raw = await RawH2Client.connect(emulator.fcm_url, emulator.ca_pem)
    path = f"/v1/projects/{PROJECT}/messages:send"
    headers = [("authorization", f"Bearer {access_token}")]
    body = json.dumps({"message": {"token": "t"}}).encode()
    try:
        await settings_received(raw)
        first = raw.start_request("POST", path, headers, body)
        await emulator.inbox.wait_for(1, timeout_s=2)
        # Before the GOAWAY, and late enough that its answer comes in a later
        # read than the first answer (h2client's h2 drops a read's events
        # when it rejects an answer after GOAWAY).
        await asyncio.sleep(0.15)
        second = raw.start_request("POST", path, headers, body)
        await emulator.inbox.wait_for(2, timeout_s=2)  # accepted, though the GOAWAY is due
        assert (await raw.response(first)).status == 200
        goaway = await raw.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
        assert goaway.last_stream_id == second
        await asyncio.wait_for(raw.closed.wait(), 3)
        assert raw.protocol_error is not None  # the answer to `second` came after the GOAWAY
    finally:
        await raw.close()
    assert len(emulator.inbox.entries()) == 2


async def test_error_rate_does_not_use_up_a_test_tokens_first_attempt(client, emulator, make_jwt):
    url = f"{emulator.apns_url}/3/device/{hex_token('0429')}"
    emulator.faults.error_rate = 1.0
    response = await client.post(url, headers=apns_headers(make_jwt()), content=PAYLOAD)
    assert (response.status_code, response.json()["reason"]) == (503, "ServiceUnavailable")
    emulator.faults.error_rate = 0.0
    response = await client.post(url, headers=apns_headers(make_jwt()), content=PAYLOAD)
    assert (response.status_code, response.json()["reason"]) == (429, "TooManyRequests")
    response = await client.post(url, headers=apns_headers(make_jwt()), content=PAYLOAD)
    assert response.status_code == 200
    assert len(emulator.inbox.entries(token=hex_token("0429"))) == 1
