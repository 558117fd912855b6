"""HTTP/1.1 on the FCM + OAuth port, and ALPN handling on every port.

Byte-level tests with a raw TLS client (h1client); the same requests over
HTTP/2 go through httpx, and the answers must match.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
from hyperframe.frame import Frame, SettingsFrame

from pushsvc.emulator import Emulator
from pushsvc.emulator.http1 import MAX_BODY_BYTES

from .conftest import BUNDLE, JWT_GRANT, PROJECT, hex_token, ssl_ctx_from
from .h1client import RawH1Client, request_bytes
from .h2client import RawH2Client

SEND_PATH = f"/v1/projects/{PROJECT}/messages:send"
MESSAGE = {"token": "device-1", "notification": {"title": "Hello", "body": "over HTTP/1.1"}, "data": {"k": "v"}}


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}"), ("content-type", "application/json")]


def send_body(message: dict[str, object] = MESSAGE) -> bytes:
    return json.dumps({"message": message}).encode()


@pytest.fixture
async def h1(emulator: Emulator):
    raw = await RawH1Client.connect(emulator.fcm_url, emulator.ca_pem)
    yield raw
    await raw.close()


@pytest.mark.parametrize("alpn", [["http/1.1"], None], ids=["alpn-http1.1", "no-alpn"])
async def test_fcm_port_speaks_http1_with_keep_alive(emulator, alpn):
    raw = await RawH1Client.connect(emulator.fcm_url, emulator.ca_pem, alpn=alpn)
    try:
        assert raw.alpn == (None if alpn is None else "http/1.1")
        for _ in range(3):  # one connection, several requests
            response = await raw.request(request_bytes("GET", "/_emulator/stats"))
            assert (response.version, response.status, response.reason) == ("HTTP/1.1", 200, "OK")
            assert response.header("content-type") == "application/json"
            assert int(response.header("content-length")) == len(response.body)
            assert json.loads(response.body)["fcm_requests"] == 0
        assert response.header("connection") is None
    finally:
        await raw.close()


async def test_fcm_port_still_speaks_h2_with_alpn_h2(emulator):
    raw = await RawH2Client.connect(emulator.fcm_url, emulator.ca_pem, alpn=["h2", "http/1.1"])
    try:
        assert raw.alpn == "h2"
        response = await raw.request("GET", "/_emulator/stats", [])
        assert response.status == 200
    finally:
        await raw.close()


async def test_answers_match_http2_byte_for_byte(emulator, client, h1, access_token):
    """Every kind of answer is the same status, headers and body on both versions."""
    cases = [
        ("POST", SEND_PATH, [("content-type", "application/json")], send_body()),  # 401, no token
        ("POST", SEND_PATH, [("authorization", "Bearer nope")], send_body()),  # 401, bad token
        ("POST", SEND_PATH, bearer(access_token), b"{not json"),  # 400 INVALID_ARGUMENT
        ("POST", SEND_PATH, bearer(access_token), send_body({"token": "unregistered-x"})),  # 404
        ("POST", SEND_PATH, bearer(access_token), send_body({"token": "invalid-x"})),  # 400
        ("POST", "/v1/projects/other/messages:send", bearer(access_token), send_body()),  # 403
        ("GET", SEND_PATH, bearer(access_token), b""),  # 405
        ("POST", "/v1/nothing", [], b"{}"),  # 404
        ("POST", "/token", [("content-type", "application/x-www-form-urlencoded")], b"grant_type=x"),
        ("GET", "/token", [], b""),  # 405
        ("GET", "/_emulator/nope", [], b""),  # 404
        ("PUT", "/_emulator/faults", [], b"{}"),  # 405 with allow
        ("POST", "/_emulator/faults", [], b'{"error_rate": 7}'),  # 400
    ]
    for method, path, headers, body in cases:
        over_h2 = await client.request(method, emulator.fcm_url + path, headers=headers, content=body)
        over_h1 = await h1.request(request_bytes(method, path, headers, body))
        case = f"{method} {path}"
        assert over_h1.status == over_h2.status_code, case
        assert over_h1.body == over_h2.content, case
        h2_headers = [(k, v) for k, v in over_h2.headers.multi_items() if k != "content-length"]
        h1_headers = [(k, v) for k, v in over_h1.headers if k != "content-length"]
        assert h1_headers == h2_headers, case
        assert int(over_h1.header("content-length")) == len(over_h1.body), case
    assert over_h1.status == 400  # the connection survived every error


async def test_oauth_and_send_over_http1_reach_the_inbox_like_http2(emulator, client, h1, make_assertion):
    form = f"grant_type={JWT_GRANT}&assertion={make_assertion()}".encode()
    token_response = await h1.request(
        request_bytes("POST", "/token", [("content-type", "application/x-www-form-urlencoded")], form)
    )
    assert token_response.status == 200, token_response.body
    grant = json.loads(token_response.body)
    assert grant["token_type"] == "Bearer" and grant["access_token"]
    sent = await h1.request(request_bytes("POST", SEND_PATH, bearer(grant["access_token"]), send_body()))
    assert sent.status == 200
    name = json.loads(sent.body)["name"]
    assert name.startswith(f"projects/{PROJECT}/messages/0:")
    # The same message over HTTP/2, with the token HTTP/1.1 obtained.
    over_h2 = await client.post(
        emulator.fcm_url + SEND_PATH, headers=bearer(grant["access_token"]), content=send_body()
    )
    assert over_h2.status_code == 200
    inbox = (await client.get(emulator.fcm_url + "/_emulator/inbox?token=device-1")).json()
    assert [entry["message_id"] for entry in inbox] == [name, over_h2.json()["name"]]
    first, second = inbox
    assert first["payload"] == second["payload"] == MESSAGE
    assert first["headers"]["content-type"] == second["headers"]["content-type"] == "application/json"
    # HTTP/1.1's connection-specific headers and host (HTTP/2's :authority) are not kept.
    assert not {"host", "connection", "transfer-encoding", "authorization"} & first["headers"].keys()


async def test_chunked_request_body(emulator, h1, access_token):
    body = send_body()
    response = await h1.request(request_bytes("POST", SEND_PATH, bearer(access_token), body, chunk_size=7))
    assert response.status == 200, response.body
    [entry] = emulator.inbox.entries()
    assert entry.payload == MESSAGE
    assert "transfer-encoding" not in entry.headers


async def test_pipelined_requests_are_answered_in_order(emulator, h1, access_token):
    emulator.faults.latency_s = 0.2  # the first answer is late; the others must wait for it
    h1.write(
        request_bytes("POST", SEND_PATH, bearer(access_token), send_body())
        + request_bytes("GET", "/_emulator/stats")
        + request_bytes("DELETE", "/_emulator/inbox")
    )
    sent = await h1.read_response()
    stats = await h1.read_response()
    cleared = await h1.read_response()
    assert sent.status == 200 and "name" in json.loads(sent.body)
    assert json.loads(stats.body)["fcm_requests"] == 1
    assert json.loads(cleared.body) == {"cleared": 1}


async def test_client_connection_close_is_honoured(h1):
    response = await h1.request(request_bytes("GET", "/_emulator/stats", [("connection", "close")]))
    assert response.status == 200
    assert response.header("connection") == "close"
    assert await h1.read_to_eof() == b""


async def test_expect_100_continue(emulator, h1, access_token):
    body = send_body()
    head = request_bytes("POST", SEND_PATH, [*bearer(access_token), ("expect", "100-continue")], body)
    h1.write(head[: -len(body)])
    interim = await h1.read_response()
    assert (interim.status, interim.reason) == (100, "Continue")
    h1.write(body)
    final = await h1.read_response()
    assert final.status == 200
    assert len(emulator.inbox) == 1


async def test_malformed_request_gets_400_and_close(h1, caplog):
    caplog.set_level(logging.WARNING, logger="pushsvc.emulator")
    response = await h1.request(b"THIS IS NOT HTTP\r\n\r\n")
    assert response.status == 400
    assert response.header("connection") == "close"
    assert "error" in json.loads(response.body)
    assert await h1.read_to_eof() == b""
    assert caplog.records == []


async def test_oversized_body_gets_413_and_close(emulator, h1, access_token):
    headers = [*bearer(access_token), ("content-length", str(MAX_BODY_BYTES + 100))]
    head = f"POST {SEND_PATH} HTTP/1.1\r\nhost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    # One byte over the limit and no more, so nothing is left unread when the server closes.
    h1.write(head.encode() + b"\r\n" + b"x" * (MAX_BODY_BYTES + 1))
    response = await h1.read_response()
    assert response.status == 413
    assert response.header("connection") == "close"
    assert await h1.read_to_eof() == b""
    assert emulator.inbox.entries() == []


async def test_stop_closes_http1_connections(config):
    emulator = Emulator(config)
    await emulator.start()
    raw = await RawH1Client.connect(emulator.fcm_url, emulator.ca_pem)
    try:
        assert (await raw.request(request_bytes("GET", "/_emulator/stats"))).status == 200
        await emulator.stop()
        assert await raw.read_to_eof(timeout_s=2) == b""
    finally:
        await raw.close()


# -- faults over HTTP/1.1 ---------------------------------------------------


async def test_latency_delays_the_answer_after_the_inbox_entry(emulator, h1, access_token):
    emulator.faults.latency_s = 0.3
    started = time.monotonic()
    h1.write(request_bytes("POST", SEND_PATH, bearer(access_token), send_body()))
    await emulator.inbox.wait_for(1, timeout_s=2)  # accepted on arrival...
    assert time.monotonic() - started < 0.3
    response = await h1.read_response()  # ...answered latency_s later
    assert response.status == 200
    assert time.monotonic() - started >= 0.3


async def test_error_rate_gives_the_same_503_as_http2(emulator, client, h1, access_token):
    emulator.faults.error_rate = 1.0
    over_h1 = await h1.request(request_bytes("POST", SEND_PATH, bearer(access_token), send_body()))
    over_h2 = await client.post(emulator.fcm_url + SEND_PATH, headers=bearer(access_token), content=send_body())
    assert over_h1.status == over_h2.status_code == 503
    assert over_h1.body == over_h2.content
    assert json.loads(over_h1.body)["error"]["status"] == "UNAVAILABLE"
    assert emulator.inbox.entries() == []


async def test_goaway_after_closes_after_the_nth_answer(emulator, h1, access_token):
    emulator.faults.goaway_after = 2
    first = await h1.request(request_bytes("POST", SEND_PATH, bearer(access_token), send_body()))
    assert (first.status, first.header("connection")) == (200, None)
    # The second answer says goodbye; the request pipelined behind it is never processed.
    h1.write(
        request_bytes("POST", SEND_PATH, bearer(access_token), send_body())
        + request_bytes("POST", SEND_PATH, bearer(access_token), send_body())
    )
    second = await h1.read_response()
    assert (second.status, second.header("connection")) == (200, "close")
    assert await h1.read_to_eof() == b""
    assert len(emulator.inbox.entries()) == 2
    assert emulator.stats.fcm_requests == 2


async def test_reset_after_drops_the_socket_without_an_answer(emulator, h1, access_token):
    emulator.faults.reset_after = 1
    first = await h1.request(request_bytes("POST", SEND_PATH, bearer(access_token), send_body()))
    assert first.status == 200
    h1.write(request_bytes("POST", SEND_PATH, bearer(access_token), send_body()))
    assert await h1.read_to_eof() == b""  # no status line, nothing
    assert len(emulator.inbox.entries()) == 1


async def test_faults_never_touch_control_or_oauth_over_http1(emulator, h1, make_assertion):
    emulator.faults.update({"error_rate": 1.0, "reset_after": 1, "goaway_after": 1, "latency_s": 0.5})
    form = f"grant_type={JWT_GRANT}&assertion={make_assertion()}".encode()
    started = time.monotonic()
    for _ in range(3):
        stats = await h1.request(request_bytes("GET", "/_emulator/stats"))
        assert (stats.status, stats.header("connection")) == (200, None)
        token = await h1.request(
            request_bytes("POST", "/token", [("content-type", "application/x-www-form-urlencoded")], form)
        )
        assert token.status == 200
    assert time.monotonic() - started < 0.5


# -- the APNs ports are HTTP/2 only ---------------------------------------------


@pytest.mark.parametrize("port", ["apns_url", "apns_sandbox_url"])
async def test_apns_without_alpn_speaks_http2(emulator, make_jwt, port):
    raw = await RawH2Client.connect(getattr(emulator, port), emulator.ca_pem, alpn=None)
    try:
        assert raw.alpn is None
        headers = [("apns-topic", BUNDLE), ("authorization", f"bearer {make_jwt()}")]
        response = await raw.request("POST", f"/3/device/{hex_token()}", headers, b'{"aps":{"alert":"hi"}}')
        assert response.status == 200
        assert "apns-id" in response.headers
    finally:
        await raw.close()
    [entry] = emulator.inbox.entries()
    assert entry.environment == ("production" if port == "apns_url" else "sandbox")


async def test_apns_with_alpn_h2_still_works(emulator, make_jwt):
    raw = await RawH2Client.connect(emulator.apns_url, emulator.ca_pem)
    try:
        assert raw.alpn == "h2"
        headers = [("apns-topic", BUNDLE), ("authorization", f"bearer {make_jwt()}")]
        response = await raw.request("POST", f"/3/device/{hex_token()}", headers, b'{"aps":{}}')
        assert response.status == 200
    finally:
        await raw.close()


def _frames(data: bytes) -> list[Frame]:
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


@pytest.mark.parametrize("alpn", [["http/1.1"], None], ids=["alpn-http1.1", "no-alpn"])
async def test_apns_hangs_up_on_http1(emulator, make_jwt, alpn):
    """Apple requires HTTP/2 (protocols.md A.1): an HTTP/1.1 request is an invalid preface.

    RFC 9113 §3.4 makes that a connection error and lets the server omit the
    GOAWAY; the emulator sends its SETTINGS (on connect) and then closes.
    """
    raw = await RawH1Client.connect(emulator.apns_url, emulator.ca_pem, alpn=alpn)
    try:
        assert raw.alpn is None  # http/1.1 is not offered by the APNs ports
        headers = [("apns-topic", BUNDLE), ("authorization", f"bearer {make_jwt()}")]
        raw.write(request_bytes("POST", f"/3/device/{hex_token()}", headers, b'{"aps":{}}'))
        received = await raw.read_to_eof()
    finally:
        await raw.close()
    assert {type(f) for f in _frames(received)} == {SettingsFrame}  # no HTTP/1.1 answer
    assert emulator.inbox.entries() == []
    assert emulator.stats.apns_requests == 0


async def test_httpx_http1_works_on_fcm_and_fails_on_apns(emulator, access_token):
    async with httpx.AsyncClient(http2=False, verify=ssl_ctx_from(emulator.ca_pem)) as http1:
        response = await http1.post(emulator.fcm_url + SEND_PATH, headers=bearer(access_token), content=send_body())
        assert (response.http_version, response.status_code) == ("HTTP/1.1", 200)
        with pytest.raises(httpx.RemoteProtocolError):
            await http1.get(emulator.apns_url + "/_emulator/stats")


async def test_no_task_or_timer_left_after_client_vanishes(emulator, access_token):
    """A delayed answer whose client is gone is dropped quietly."""
    emulator.faults.latency_s = 0.2
    raw = await RawH1Client.connect(emulator.fcm_url, emulator.ca_pem)
    raw.write(request_bytes("POST", SEND_PATH, bearer(access_token), send_body()))
    await emulator.inbox.wait_for(1, timeout_s=2)
    await raw.close()
    await asyncio.sleep(0.3)
    emulator.faults.latency_s = 0
    again = await RawH1Client.connect(emulator.fcm_url, emulator.ca_pem)
    try:
        assert (await again.request(request_bytes("GET", "/_emulator/stats"))).status == 200
    finally:
        await again.close()
