"""Http2Transport's contract, over real TLS + HTTP/2 to a scriptable server.

The server is the emulator's own HTTP/2 stack (`Http2Server`) with a small
site per test, so each test controls exactly what the wire does: refused
streams, resets, GOAWAY, stream limits, silence, dropped connections.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import h2.errors
import h2.settings
import pytest

from pushsvc.emulator.http2 import Connection, Http2Server, Request, Response
from pushsvc.emulator.tls import ServerTls
from pushsvc.providers.transport import (
    NO_DEFAULT_HEADERS,
    SLOW_START,
    ConnectFailed,
    ConnectionLost,
    DeadlineExceeded,
    Http2Transport,
    OutcomeUnknown,
    QueueTimeout,
    TlsConfig,
    TransportClosed,
    TransportError,
    _Window,
)
from pushsvc.providers.transport import Response as TransportResponse

Behaviour = Callable[[Request, int], "Response | None"]


class _Site:
    """Answers every request through `behaviour(request, n)`, n counting from 1; records what arrived."""

    def __init__(self, behaviour: Behaviour | None = None, *, max_streams: int = 100) -> None:
        self.behaviour = behaviour or (lambda request, n: Response(200, [("x-n", str(n))], request.body))
        self.max_streams = max_streams
        self.seen: list[tuple[int, int, bytes]] = []
        """(connection id, stream id, body) per request received."""
        self.arrivals: list[float] = []

    def connection_made(self, connection: Connection) -> dict[int, int]:
        return {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams}

    def handle(self, request: Request) -> Response | None:
        self.seen.append((id(request.connection), request.stream_id, request.body))
        self.arrivals.append(asyncio.get_running_loop().time())
        return self.behaviour(request, len(self.seen))


@pytest.fixture(scope="module")
def tls() -> ServerTls:
    return ServerTls()


@pytest.fixture
async def serve(tls: ServerTls) -> AsyncIterator[Callable[..., object]]:
    """serve(site, **transport_kwargs) -> (server, transport), both stopped after the test."""
    opened: list[tuple[Http2Server, Http2Transport]] = []

    async def start(site: _Site, **kwargs: object) -> tuple[Http2Server, Http2Transport]:
        server = Http2Server(site, tls.server_context())
        await server.start("127.0.0.1", 0)
        kwargs.setdefault("request_timeout_s", 5.0)
        transport = Http2Transport(tls=TlsConfig(ca_pem=tls.ca_pem), **kwargs)  # type: ignore[arg-type]
        opened.append((server, transport))
        return server, transport

    yield start
    for server, transport in opened:
        await transport.aclose()
        await server.stop()


def _url(server: Http2Server, path: str = "/x") -> str:
    return f"https://localhost:{server.port}{path}"


async def test_status_headers_and_body_come_back(serve) -> None:
    def behaviour(request: Request, n: int) -> Response:
        return Response.json(400, {"reason": "BadDeviceToken", "echo": request.header("apns-topic")}, [("apns-id", "id-1")])

    server, transport = await serve(_Site(behaviour))
    response = await transport.post(_url(server, "/3/device/abc"), ["apns-topic: com.example", "apns-priority: 10"], b"{}")
    assert response.status == 400
    assert response.headers["apns-id"] == "id-1"
    assert response.headers["content-type"] == "application/json"
    assert response.body == b'{"reason":"BadDeviceToken","echo":"com.example"}'


async def test_request_headers_and_body_arrive_as_sent(serve) -> None:
    got: list[Request] = []

    def behaviour(request: Request, n: int) -> Response:
        got.append(request)
        return Response(200)

    server, transport = await serve(_Site(behaviour))
    body = b"x" * 100_000  # larger than the initial flow-control window
    await transport.post(_url(server, "/v1/projects/p/messages:send"), ["authorization: Bearer t", "x-a: 1"], body)
    [request] = got
    assert (request.method, request.path, request.body) == ("POST", "/v1/projects/p/messages:send", body)
    assert request.header("authorization") == "Bearer t"
    assert request.header("x-a") == "1"
    # libcurl's defaults that a provider does not want on every request are gone.
    assert request.header("accept") is None and request.header("expect") is None
    assert request.header("user-agent") == "pushsvc"


async def test_many_concurrent_requests_share_one_connection(serve) -> None:
    site = _Site()
    server, transport = await serve(site)
    results = await asyncio.gather(*(transport.post(_url(server), [], str(i).encode()) for i in range(300)))
    assert sorted(int(r.body) for r in results) == list(range(300))
    assert len({conn for conn, _, _ in site.seen}) == 1
    assert transport.stats().connections_opened == 1
    assert transport.stats().in_flight == 0


@pytest.fixture
def threaded_server(tls: ServerTls) -> Iterator[Http2Server]:
    """A server on its own event loop in another thread, so its answers race the client's tasks as a remote one's do."""
    loop = asyncio.new_event_loop()
    server = Http2Server(_Site(), tls.server_context())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def test_requests_in_waves_reuse_handles_and_none_is_lost(threaded_server, tls) -> None:
    # A bounded number in flight, many in all: a handle freed by one request
    # may carry the next one before the first caller has even resumed.
    transport = Http2Transport(tls=TlsConfig(ca_pem=tls.ca_pem), request_timeout_s=5.0)
    limit = asyncio.Semaphore(10)

    async def one(i: int) -> bytes:
        async with limit:
            return (await asyncio.wait_for(transport.post(_url(threaded_server), [], str(i).encode()), 10)).body

    try:
        bodies = await asyncio.gather(*(one(i) for i in range(3000)))
    finally:
        await transport.aclose()
    assert sorted(int(b) for b in bodies) == list(range(3000))


async def test_the_servers_stream_limit_is_honoured(serve) -> None:
    delay_s = 0.05
    site = _Site(lambda request, n: Response(200, delay_s=delay_s), max_streams=5)
    server, transport = await serve(site)
    results = await asyncio.gather(*(transport.post(_url(server), [], b"") for _ in range(40)))
    assert [r.status for r in results] == [200] * 40
    # Each response leaves delay_s after its request arrived; a new stream can
    # only start after one ended, so no more than 5 arrivals fall in any window.
    peak = max(sum(1 for b in site.arrivals if a - delay_s < b <= a) for a in site.arrivals)
    assert peak <= 5
    assert len(site.seen) == 40  # nothing was refused and re-sent


async def test_a_refused_stream_is_sent_again_transparently(serve) -> None:
    def behaviour(request: Request, n: int) -> Response | None:
        if n == 1:
            request.connection.reset_stream(request.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return None
        return Response(200, body=b"second")

    site = _Site(behaviour)
    server, transport = await serve(site)
    response = await transport.post(_url(server), [], b"payload")
    assert (response.status, response.body) == (200, b"second")
    assert [body for _, _, body in site.seen] == [b"payload", b"payload"]


async def test_refusals_are_retried_a_bounded_number_of_times(serve) -> None:
    def behaviour(request: Request, n: int) -> None:
        request.connection.reset_stream(request.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
        return None

    site = _Site(behaviour)
    server, transport = await serve(site)
    with pytest.raises(TransportError):
        await transport.post(_url(server), [], b"payload")
    assert 2 <= len(site.seen) <= 10


async def test_another_reset_is_an_unknown_outcome_and_not_sent_again(serve) -> None:
    # The server may have acted on the request before INTERNAL_ERROR.
    def behaviour(request: Request, n: int) -> None:
        request.connection.reset_stream(request.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        return None

    site = _Site(behaviour)
    server, transport = await serve(site)
    with pytest.raises(OutcomeUnknown):
        await transport.post(_url(server), [], b"payload")
    assert len(site.seen) == 1
    assert transport.stats().outcome_unknown == 1


async def test_graceful_goaway_loses_nothing_and_sends_nothing_twice(serve, caplog) -> None:
    # The 10th request's answer carries a GOAWAY while ~40 others are in flight:
    # those at or below last_stream_id get their real answers; later ones are
    # refused by the server and go out again on a new connection.
    def behaviour(request: Request, n: int) -> Response:
        return Response(
            200, body=request.body, delay_s=0.03, goaway_debug=b'{"reason":"Shutdown"}' if n % 10 == 0 else None
        )

    site = _Site(behaviour)
    server, transport = await serve(site)
    caplog.set_level(logging.INFO, logger="pushsvc.providers.transport")
    results = await asyncio.gather(*(transport.post(_url(server), [], str(i).encode()) for i in range(200)))
    # Whether the burst itself spilled onto a second connection depends on how
    # many streams were open when the first GOAWAY came; a request after it
    # must go on a new one.
    results.append(await transport.post(_url(server), [], b"200"))
    assert sorted(int(r.body) for r in results) == list(range(201))
    bodies = [body for _, _, body in site.seen]
    assert len(bodies) == len(set(bodies)) == 201  # each request processed exactly once
    assert len({conn for conn, _, _ in site.seen}) > 1
    lines = [r.getMessage() for r in caplog.records]
    assert any("reconnected" in line and "GOAWAY" in line for line in lines), lines


async def test_a_dropped_connection_is_an_unknown_outcome_and_the_next_request_reconnects(serve, caplog) -> None:
    def behaviour(request: Request, n: int) -> Response | None:
        if n == 1:
            request.connection.abort()
            return None
        return Response(200)

    site = _Site(behaviour)
    server, transport = await serve(site)
    caplog.set_level(logging.INFO, logger="pushsvc.providers.transport")
    with pytest.raises(ConnectionLost) as caught:
        await transport.post(_url(server, "/3/device/secret-token-path"), [], b"a")
    assert "outcome unknown" in caught.value.reason
    assert (await transport.post(_url(server), [], b"b")).status == 200
    assert transport.stats().connections_opened == 2
    # Logged by host, with the reconnect; never the path, where device tokens live.
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"localhost:{server.port}" in line and "ConnectionLost" in line for line in lines), lines
    assert any("reconnected" in line and "after a lost connection" in line for line in lines), lines
    assert not any("secret-token-path" in line for line in lines)


async def test_no_answer_in_time_is_a_deadline(serve) -> None:
    site = _Site(lambda request, n: Response(200, delay_s=30))
    server, transport = await serve(site, request_timeout_s=0.3)
    started = asyncio.get_running_loop().time()
    with pytest.raises(DeadlineExceeded):
        await transport.post(_url(server), [], b"")
    assert asyncio.get_running_loop().time() - started < 2.0


async def test_nothing_listening_is_connect_failed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = Http2Transport(request_timeout_s=2.0, connect_timeout_s=1.0)
    try:
        with pytest.raises(ConnectFailed) as caught:
            await transport.post(f"https://127.0.0.1:{port}/x", [], b"")
        assert caught.value.sent_maybe is False
    finally:
        await transport.aclose()


async def test_an_untrusted_certificate_is_connect_failed(tls) -> None:
    server = Http2Server(_Site(), tls.server_context())
    await server.start("127.0.0.1", 0)
    transport = Http2Transport(tls=TlsConfig(ca_pem=ServerTls().ca_pem), request_timeout_s=2.0)
    try:
        with pytest.raises(ConnectFailed):
            await transport.post(_url(server), [], b"")
    finally:
        await transport.aclose()
        await server.stop()


async def test_a_cancelled_request_is_withdrawn_and_the_transport_stays_usable(serve) -> None:
    site = _Site(lambda request, n: Response(200, delay_s=30) if n == 1 else Response(200))
    server, transport = await serve(site)
    slow = asyncio.create_task(transport.post(_url(server), [], b"slow"))
    while not site.seen:
        await asyncio.sleep(0.01)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert transport.stats().in_flight == 0
    assert (await transport.post(_url(server), [], b"next")).status == 200


async def test_close_fails_requests_in_flight_and_refuses_new_ones(serve) -> None:
    site = _Site(lambda request, n: Response(200, delay_s=30))
    server, transport = await serve(site)
    pending = asyncio.create_task(transport.post(_url(server), [], b""))
    while not site.seen:
        await asyncio.sleep(0.01)
    await transport.aclose()
    with pytest.raises(TransportClosed):
        await pending
    with pytest.raises(TransportClosed):
        await transport.post(_url(server), [], b"")


async def test_the_window_starts_small_and_grows_a_quarter_per_answer(serve) -> None:
    in_flight: list[int] = []
    arrived = answered = 0

    def behaviour(request: Request, n: int) -> Response | None:
        nonlocal arrived
        arrived += 1
        in_flight.append(arrived - answered)
        return Response(200, delay_s=0.005)

    server, transport = await serve(_Site(behaviour))
    assert transport.stats().window == 4

    async def post(i: int) -> None:
        nonlocal answered
        await transport.post(_url(server), [], str(i).encode())
        answered += 1

    await asyncio.gather(*(post(i) for i in range(100)))
    # 4, plus a quarter for each of the 100 answers; never more in flight than the window then allowed.
    assert transport.stats().window == 29
    assert max(in_flight[:4]) <= 4 and max(in_flight) <= 29, in_flight


async def test_connections_that_keep_dying_shrink_the_requests_in_flight_until_a_calm_spell(serve) -> None:
    dropping = True
    in_flight: list[int] = []
    arrived = 0

    def behaviour(request: Request, n: int) -> Response | None:
        nonlocal arrived
        arrived += 1
        in_flight.append(arrived - answered)
        if dropping and n % 40 == 0:
            request.connection.abort()  # the answers still on their way go with it
            return None
        return Response(200, delay_s=0.01)

    answered = 0
    server, transport = await serve(_Site(behaviour), calm_s=0.3)
    assert transport.stats().window == 4

    async def post(i: int) -> object:
        nonlocal answered
        try:
            return await transport.post(_url(server), [], str(i).encode())
        except TransportError as exc:
            return exc
        finally:
            answered += 1

    windows = []
    for _ in range(4):  # each round loses a connection with requests in flight
        results = await asyncio.gather(*(post(i) for i in range(100)))
        assert any(isinstance(r, ConnectionLost) for r in results)
        windows.append(transport.stats().window)
    # One in flight after each loss; a round at a window of one outlasts the calm spell and grows it a little.
    assert all(w <= 6 for w in windows), windows
    # Never a burst: the server saw a few requests at a time from the start.
    assert max(in_flight) <= 16 and max(in_flight[-50:]) <= 5, in_flight
    shrunk = windows[-1]

    dropping = False
    await asyncio.sleep(0.35)  # calm: the window grows by a quarter per answer
    await asyncio.gather(*(post(i) for i in range(50)))
    assert transport.stats().window >= shrunk + 12


def test_window_falls_to_its_floor_once_per_loss_and_regrows_after_calm() -> None:
    now = [0.0]
    window = _Window(1000, 2, 5.0, lambda: now[0])
    assert window.size == 4
    for _ in range(4):
        assert window.try_acquire()
    assert not window.try_acquire() and window.in_flight == 4
    for _ in range(4):
        window.release()
        window.answered()
    assert window.size == 5
    for _ in range(5):
        assert window.try_acquire()
    window.lost(number=7, started=9)
    assert window.size == 2  # straight to the floor
    window.size = 3.0
    window.lost(number=8, started=9)  # in flight at the same cut: the same loss, no second fall
    assert window.size == 3
    for _ in range(5):
        window.release()
        window.answered()  # within calm_s of the loss: no growth
    assert window.size == 3
    now[0] = 5.0
    window.answered()
    assert window.size == 3.25
    assert _Window(1000, 8, 5.0, lambda: 0.0).size == 8  # never below the floor
    assert _Window(2, 1, 5.0, lambda: 0.0).size == 2  # nor above the limit


async def test_a_request_waiting_for_room_in_flight_times_out_without_being_sent(serve) -> None:
    def behaviour(request: Request, n: int) -> Response | None:
        if n == 1:
            return Response(200)
        if n == 2:
            request.connection.abort()  # a loss with four requests in flight: the window shrinks to one
            return None
        return Response(200, delay_s=1.0)

    site = _Site(behaviour)
    server, transport = await serve(site, request_timeout_s=0.5)
    await transport.post(_url(server), [], b"first")
    lost = await asyncio.gather(*(transport.post(_url(server), [], b"a") for _ in range(4)), return_exceptions=True)
    assert any(isinstance(r, ConnectionLost) for r in lost) and transport.stats().window == 1, (lost, transport.stats())
    sent_before = len(site.seen)
    results = await asyncio.gather(*(transport.post(_url(server), [], b"b") for _ in range(3)), return_exceptions=True)
    waited = [r for r in results if isinstance(r, QueueTimeout)]
    # One request holds the only place (and times out on the wire); the others never left.
    assert len(waited) == 2 and not any(r.sent_maybe for r in waited), results
    assert len(site.seen) - sent_before == 1
    assert transport.stats().in_flight == 0


async def test_a_batch_is_posted_at_once_and_answered_in_order_through_one_future(serve, monkeypatch) -> None:
    site = _Site(lambda request, n: Response(200, [], request.body) if request.body != b"7" else Response(410, [], b"gone"))
    server, transport = await serve(site)
    await transport.post(_url(server), [], b"primer")  # the origin answers once: later batches go at once
    # A fresh connection starts with a few requests in flight (at most SLOW_START) and grows with each answer.
    assert 1 <= transport.stats().window <= SLOW_START
    warm = await transport.post_many([(_url(server), [], b"warm-up")] * 1000)
    assert all(isinstance(r, TransportResponse) and r.status == 200 for r in warm), {type(r).__name__ for r in warm}
    # Room for the whole batch below, so that no request of it waits on the window.
    assert transport.stats().window >= 200
    loop = asyncio.get_running_loop()
    futures = 0
    create_future = loop.create_future

    def counting() -> asyncio.Future[object]:
        nonlocal futures
        futures += 1
        return create_future()

    monkeypatch.setattr(loop, "create_future", counting)  # this test's loop only: counts the batch's futures
    results = await transport.post_many([(_url(server), list(NO_DEFAULT_HEADERS), str(i).encode()) for i in range(200)])
    monkeypatch.undo()
    assert futures == 1, "one future for the whole batch"
    assert [r.body for r in results if isinstance(r, TransportResponse)] == [
        str(i).encode() if i != 7 else b"gone" for i in range(200)
    ]
    assert results[7].status == 410 and transport.stats().in_flight == 0
    assert len({conn for conn, _, _ in site.seen}) == 1


async def test_a_batch_to_an_origin_not_yet_answered_sends_one_request_first(serve) -> None:
    order: list[bytes] = []
    site = _Site(lambda request, n: order.append(request.body) or Response(200))  # type: ignore[func-returns-value]  # records, then answers
    server, transport = await serve(site)
    results = await transport.post_many([(_url(server), [], str(i).encode()) for i in range(50)])
    assert all(isinstance(r, TransportResponse) and r.status == 200 for r in results)
    assert order[0] == b"0" and sorted(order) == sorted(str(i).encode() for i in range(50))
    assert transport.stats().connections_opened == 1


async def test_a_batch_reports_each_failure_in_its_place_and_never_raises() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = Http2Transport(connect_timeout_s=1, request_timeout_s=2)
    try:
        results = await transport.post_many([(f"https://127.0.0.1:{port}/x", [], b"") for _ in range(3)])
    finally:
        await transport.aclose()
    assert [type(r) for r in results] == [ConnectFailed] * 3
    assert all(not r.sent_maybe for r in results if isinstance(r, ConnectFailed))


async def test_a_cancelled_batch_is_withdrawn_whole(serve) -> None:
    site = _Site(lambda request, n: Response(200, delay_s=30) if request.body == b"slow" else Response(200))
    server, transport = await serve(site)
    await transport.post(_url(server), [], b"primer")
    window = transport.stats().window
    # More than the fresh connection's window: some are in flight, the rest wait for room.
    batch = asyncio.create_task(transport.post_many([(_url(server), [], b"slow")] * (SLOW_START + 10)))
    while len(site.seen) < 1 + window:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    # The window may hold a fraction more than stats() shows (it grows by fractions per answer).
    assert len(site.seen) - 1 <= window + 1 < SLOW_START + 10, "the rest of the batch waits for room in the window"
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert transport.stats().in_flight == 0
    assert (await transport.post(_url(server), [], b"next")).status == 200
