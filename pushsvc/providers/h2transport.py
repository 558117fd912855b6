"""A fast HTTP/2-only httpx transport over asyncio and `h2`.

httpx's own HTTP/2 stack (httpcore + anyio) costs about 1 ms of CPU per request
and tops out near 1k requests/s per core (reference/tooling.md §7). This
transport keeps httpx's client API, so providers don't change, and does the
HTTP/2 work directly:

- one (or a few) long-lived TLS connections per origin, ALPN h2 only;
- one future per stream, resolved from `asyncio.Protocol.data_received`;
- the server's SETTINGS_MAX_CONCURRENT_STREAMS is honoured by waiting: a new
  connection takes no request before the server's first SETTINGS arrives and
  assumes one stream until then (APNs allows one stream until a valid JWT);
  later changes resize the slot count and wake waiters, never poll;
- connections are opened single-flight: every request that needs a connection
  while one is being opened awaits that same attempt, and all of them resume in
  the same event-loop iteration. (They used to queue on a lock and leave it one
  per iteration: on a busy loop a burst of hundreds spent its whole deadline
  there, and the last ones were cancelled just after reaching the server, which
  had processed them; a duplicate.)
- a request the server provably did not process (RST_STREAM(REFUSED_STREAM),
  or a stream above a GOAWAY's last_stream_id, RFC 9113 §8.7) is sent again
  transparently, on the same or a new connection, at most
  `_MAX_ATTEMPTS` times in all;
- writes are coalesced: h2's output is flushed once per event-loop tick;
- a 16 MiB connection receive window, request bodies sent under flow control;
- every await has a deadline (httpx's timeouts, else `default_timeout_s`);
- GOAWAY: new requests go to a new connection; a lost connection fails its
  streams with `httpx.RemoteProtocolError` (the adapters read it as RETRYABLE),
  since the server may have processed them.

Known limit: h2 4.x closes its state machine on receiving GOAWAY and raises
ProtocolError for any later frame, so responses to streams *below*
last_stream_id that arrive after the GOAWAY cannot be read either; those
streams fail as RETRYABLE too (a possible duplicate, which at-least-once
delivery allows). httpx's own HTTP/2 stack, built on the same h2, behaves the
same way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ssl
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import httpx

_CONNECTION_WINDOW = 16 * 1024 * 1024
_STREAM_WINDOW = 1024 * 1024
_DEFAULT_WINDOW = 65_535
_HOP_BY_HOP = frozenset({b"host", b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})
_NEVER_INDEXED = frozenset({b":path", b"apns-id", b"apns-expiration"})
"""Headers kept out of the HPACK dynamic table, as Apple advises (protocols.md §A.2):
their values change per request, so indexing them only churns the table and
slows every lookup. `authorization` deviates from Apple's advice on purpose: the
JWT is the same for 50 minutes, and indexing it spares Huffman-coding ~250
bytes per request, which doubled the encoder's cost in measurements."""
_MAX_ATTEMPTS = 3
"""How often one request is tried in all. A request is only tried again when the
server provably did not process it (`_Unprocessed`), so it never arrives twice."""


class _Unprocessed(Exception):
    """The server did not process this request (RFC 9113 §8.7); it may be sent again."""


class _ConnectionUnusable(_Unprocessed):
    """The connection closed or went away before this request was sent; try another."""


class _StreamRefused(_Unprocessed):
    """The server refused the stream: RST_STREAM(REFUSED_STREAM), or above GOAWAY's last_stream_id."""


class _Stream:
    __slots__ = ("future", "status", "headers", "body")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()


class _H2Connection(asyncio.Protocol):
    """One client HTTP/2 connection: an asyncio protocol driving an h2 state machine."""

    def __init__(self, *, max_streams_cap: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                # Headers come from httpx, already lower-cased below; h2's
                # validation is a measurable share of the per-request cost.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
            )
        )
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._pending_bodies: dict[int, bytes] = {}
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._in_flight = 0
        self._max_streams = 1
        self._max_streams_cap = max_streams_cap
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._flush_scheduled = False
        self._closed = False
        self._going_away = False

    # --- state -----------------------------------------------------------

    @property
    def usable(self) -> bool:
        """True while new requests may be started on this connection."""
        return not self._closed and not self._going_away

    @property
    def load(self) -> int:
        """Streams in flight plus requests waiting for a slot."""
        return self._in_flight + len(self._waiters)

    @property
    def free_slots(self) -> int:
        """How many more streams the server allows right now."""
        return self._max_streams - self._in_flight - len(self._waiters)

    async def wait_ready(self) -> None:
        """Waits for the server's first SETTINGS frame (the caller bounds it)."""
        await self._ready

    # --- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65_536,
            },
        )
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(_CONNECTION_WINDOW - _DEFAULT_WINDOW)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._abort(httpx.RemoteProtocolError("HTTP/2 protocol error"))
            return
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                self._on_response(event)
            elif isinstance(event, h2.events.DataReceived):
                self._on_data(event)
            elif isinstance(event, h2.events.StreamEnded):
                self._finish(event.stream_id, None)
            elif isinstance(event, h2.events.StreamReset):
                error: Exception
                if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                    error = _StreamRefused("stream refused by server (REFUSED_STREAM)")
                else:
                    error = httpx.RemoteProtocolError(f"stream reset by server ({event.error_code!r})")
                self._finish(event.stream_id, error)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._on_settings()
            elif isinstance(event, h2.events.WindowUpdated):
                self._send_pending_bodies()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._on_goaway(event)
        self._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        error = httpx.RemoteProtocolError("connection lost")
        if not self._ready.done():
            self._ready.set_exception(httpx.ConnectError("connection closed before HTTP/2 SETTINGS"))
            self._ready.exception()  # mark retrieved: nobody may be waiting any more
        for stream_id in list(self._streams):
            self._finish(stream_id, error)
        self._fail_waiters()

    # --- requests --------------------------------------------------------

    async def request(self, request: httpx.Request, *, pool_timeout_s: float, read_timeout_s: float) -> httpx.Response:
        """Sends one request on this connection and waits for its response.

        Raises:
            _ConnectionUnusable: The connection went away before the request was sent.
            _StreamRefused: The server refused the stream without processing it.
            httpx.PoolTimeout: No stream slot became free in time.
            httpx.ReadTimeout: The response did not complete in time.
            httpx.RemoteProtocolError: The stream or the connection failed.
        """
        await self._acquire_slot(pool_timeout_s)
        if not self.usable:
            # A GOAWAY or a lost connection came between the wake-up and now.
            self._release_slot()
            raise _ConnectionUnusable
        try:
            stream_id = self._h2.get_next_available_stream_id()
        except h2.exceptions.NoAvailableStreamIDError:
            self._going_away = True
            self._release_slot()
            self._fail_waiters()
            raise _ConnectionUnusable from None
        body = request.content
        url = request.url
        headers: list[tuple[bytes, bytes] | hpack.HeaderTuple] = [
            (b":method", request.method.encode()),
            (b":scheme", b"https"),
            (b":authority", url.netloc),
            hpack.NeverIndexedHeaderTuple(b":path", url.raw_path),
        ]
        for name, value in request.headers.raw:
            lowered = name.lower()
            if lowered in _NEVER_INDEXED:
                headers.append(hpack.NeverIndexedHeaderTuple(lowered, value))
            elif lowered not in _HOP_BY_HOP and not (lowered == b"te" and value.lower() != b"trailers"):
                headers.append((lowered, value))
        stream = _Stream(self._loop.create_future())
        self._streams[stream_id] = stream
        try:
            self._h2.send_headers(stream_id, headers, end_stream=not body)
        except h2.exceptions.ProtocolError as exc:
            self._finish(stream_id, None)
            raise httpx.LocalProtocolError(type(exc).__name__) from exc
        if body:
            self._pending_bodies[stream_id] = body
            self._send_pending_bodies()
        self._schedule_flush()
        try:
            async with asyncio.timeout(read_timeout_s):
                await stream.future
        except BaseException as exc:
            # Timeout or cancellation: give the slot back and tell the server.
            if stream_id in self._streams:
                self._reset(stream_id)
            if isinstance(exc, TimeoutError):
                raise httpx.ReadTimeout("no HTTP/2 response in time") from None
            raise
        return httpx.Response(
            stream.status,
            headers=stream.headers,
            content=bytes(stream.body),
            extensions={"http_version": b"HTTP/2", "stream_id": stream_id},
        )

    def close(self) -> None:
        """Sends GOAWAY and closes the socket; in-flight requests fail."""
        if self._closed or self._transport is None:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection()
        self._flush()
        self._transport.close()

    # --- stream slots ----------------------------------------------------

    async def _acquire_slot(self, timeout_s: float) -> None:
        if not self.usable:
            raise _ConnectionUnusable
        if self._in_flight < self._max_streams and not self._waiters:
            self._in_flight += 1
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except BaseException as exc:
            if not waiter.done():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            elif not waiter.cancelled() and waiter.exception() is None:
                # The slot was handed over just as this task gave up.
                self._release_slot()
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("no HTTP/2 stream slot in time") from None
            raise

    def _release_slot(self) -> None:
        self._in_flight -= 1
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        while self._waiters and self._in_flight < self._max_streams:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def _fail_waiters(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_ConnectionUnusable())

    # --- events ----------------------------------------------------------

    def _on_settings(self) -> None:
        advertised = self._h2.remote_settings.max_concurrent_streams
        self._max_streams = max(1, min(advertised, self._max_streams_cap))
        if not self._ready.done():
            self._ready.set_result(None)
        self._wake_waiters()
        # A larger INITIAL_WINDOW_SIZE may unblock request bodies.
        self._send_pending_bodies()

    def _on_response(self, event: h2.events.ResponseReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        for name, value in event.headers or ():
            if name == b":status":
                stream.status = int(value)
            elif not name.startswith(b":"):
                stream.headers.append((name, value))

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None and event.data:
            stream.body += event.data
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        self._going_away = True
        last = event.last_stream_id if event.last_stream_id is not None else 0
        # Streams above last_stream_id were not processed (RFC 9113 §6.8).
        error = _StreamRefused(f"stream above GOAWAY's last_stream_id ({event.error_code!r})")
        for stream_id in [sid for sid in self._streams if sid > last]:
            self._finish(stream_id, error)
        self._fail_waiters()
        self._close_if_idle()

    def _finish(self, stream_id: int, error: Exception | None) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        if self._pending_bodies.pop(stream_id, None) is not None and not self._closed:
            # The server answered before reading the whole body (a 413, say):
            # close our half too, or h2 keeps counting the stream as open.
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
            self._schedule_flush()
        if not stream.future.done():
            if error is None:
                stream.future.set_result(None)
            else:
                stream.future.set_exception(error)
        self._release_slot()
        self._close_if_idle()

    def _reset(self, stream_id: int) -> None:
        if not self._closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            self._schedule_flush()
        stream = self._streams.get(stream_id)
        if stream is not None and not stream.future.done():
            stream.future.cancel()
        self._finish(stream_id, None)

    def _close_if_idle(self) -> None:
        if self._going_away and not self._streams and self._transport is not None and not self._closed:
            self._flush()
            self._transport.close()

    def _abort(self, error: Exception) -> None:
        self._going_away = True
        for stream_id in list(self._streams):
            self._finish(stream_id, error)
        self._fail_waiters()
        if self._transport is not None:
            self._transport.abort()

    # --- output ----------------------------------------------------------

    def _send_pending_bodies(self) -> None:
        for stream_id in list(self._pending_bodies):
            data = self._pending_bodies[stream_id]
            try:
                while data:
                    window = self._h2.local_flow_control_window(stream_id)
                    if window <= 0:
                        break
                    size = min(window, len(data), self._h2.max_outbound_frame_size)
                    self._h2.send_data(stream_id, data[:size])
                    data = data[size:]
                if data:
                    self._pending_bodies[stream_id] = data
                else:
                    del self._pending_bodies[stream_id]
                    self._h2.end_stream(stream_id)
            except h2.exceptions.ProtocolError:
                # The server reset the stream meanwhile; its error arrives as an event.
                self._pending_bodies.pop(stream_id, None)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


class H2Transport(httpx.AsyncBaseTransport):
    """An HTTP/2-only (ALPN h2, https) `httpx.AsyncBaseTransport` over asyncio and h2.

    Args:
        ssl_context: TLS settings (CA, client certificate); ALPN is set to h2 on
            it. Defaults to the system trust store.
        connections_per_origin: Connections opened per origin before requests
            queue for stream slots instead.
        max_streams_per_connection: Upper bound on concurrent streams even when
            the server allows more.
        default_timeout_s: Deadline for any phase httpx gives no timeout for.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connections_per_origin: int = 1,
        max_streams_per_connection: int = 1000,
        default_timeout_s: float = 30.0,
    ) -> None:
        if connections_per_origin < 1:
            raise ValueError("connections_per_origin must be at least 1")
        self._ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._ssl_context.set_alpn_protocols(["h2"])
        self._connections_per_origin = connections_per_origin
        self._max_streams = max_streams_per_connection
        self._default_timeout_s = default_timeout_s
        self._pools: dict[tuple[str, int], list[_H2Connection]] = {}
        self._connecting: dict[tuple[str, int], asyncio.Future[_H2Connection]] = {}
        """The connection being opened per origin, awaited by every request that needs it."""
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Sends one request on a pooled HTTP/2 connection."""
        if request.url.scheme != "https":
            raise httpx.UnsupportedProtocol("H2Transport speaks HTTP/2 over TLS (https) only")
        if self._closed:
            raise httpx.ConnectError("transport is closed")
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        connect_s = self._timeout(timeouts, "connect")
        pool_s = self._timeout(timeouts, "pool")
        read_s = self._timeout(timeouts, "read")
        await request.aread()
        origin = (request.url.host, request.url.port or 443)
        unprocessed: _Unprocessed | None = None
        for _ in range(_MAX_ATTEMPTS):
            connection = await self._connection(origin, connect_s)
            try:
                return await connection.request(request, pool_timeout_s=pool_s, read_timeout_s=read_s)
            except _Unprocessed as exc:
                unprocessed = exc
        if isinstance(unprocessed, _StreamRefused):
            raise httpx.RemoteProtocolError(str(unprocessed))
        raise httpx.ConnectError("no usable HTTP/2 connection")

    async def aclose(self) -> None:
        """Closes every connection; in-flight requests fail."""
        self._closed = True
        for attempt in list(self._connecting.values()):
            attempt.cancel()
        for connections in self._pools.values():
            for connection in connections:
                connection.close()
        self._pools.clear()

    def _timeout(self, timeouts: dict[str, Any], phase: str) -> float:
        value = timeouts.get(phase)
        return float(value) if value is not None else self._default_timeout_s

    async def _connection(self, origin: tuple[str, int], connect_timeout_s: float) -> _H2Connection:
        best = self._pick(origin)
        if best is not None and (best.free_slots > 0 or len(self._pools[origin]) >= self._connections_per_origin):
            return best
        # Single flight: the first request starts the attempt, and every request
        # arriving before it completes awaits the same one (module docstring).
        attempt = self._connecting.get(origin)
        if attempt is None:
            attempt = asyncio.ensure_future(self._open_pooled(origin, connect_timeout_s))
            self._connecting[origin] = attempt
            attempt.add_done_callback(functools.partial(self._attempt_done, origin))
        try:
            async with asyncio.timeout(connect_timeout_s):
                # Shielded: a waiter that gives up must not cancel the others' attempt.
                return await asyncio.shield(attempt)
        except TimeoutError:
            host, port = origin
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except httpx.TransportError as exc:
            # The attempt's exception is shared by its waiters; give each its own.
            raise type(exc)(str(exc)) from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if attempt.cancelled() and task is not None and not task.cancelling():
                # aclose() stopped the attempt; this task itself was not cancelled.
                raise httpx.ConnectError("transport is closed") from None
            raise

    def _attempt_done(self, origin: tuple[str, int], attempt: asyncio.Future[_H2Connection]) -> None:
        if self._connecting.get(origin) is attempt:
            del self._connecting[origin]
        if not attempt.cancelled():
            attempt.exception()  # retrieved: every waiter got it already (or gave up)

    async def _open_pooled(self, origin: tuple[str, int], timeout_s: float) -> _H2Connection:
        """Opens a connection and adds it to the pool (even if every waiter gave up)."""
        connection = await self._open(origin, timeout_s)
        if self._closed:
            connection.close()
            raise httpx.ConnectError("transport is closed")
        self._pools.setdefault(origin, []).append(connection)
        return connection

    def _pick(self, origin: tuple[str, int]) -> _H2Connection | None:
        connections = self._pools.get(origin)
        if not connections:
            return None
        live = [connection for connection in connections if connection.usable]
        if len(live) != len(connections):
            self._pools[origin] = live
        if not live:
            return None
        return max(live, key=lambda connection: connection.free_slots)

    async def _open(self, origin: tuple[str, int], timeout_s: float) -> _H2Connection:
        host, port = origin
        loop = asyncio.get_running_loop()
        transport: asyncio.BaseTransport | None = None
        try:
            async with asyncio.timeout(timeout_s):
                transport, connection = await loop.create_connection(
                    lambda: _H2Connection(max_streams_cap=self._max_streams),
                    host,
                    port,
                    ssl=self._ssl_context,
                    server_hostname=host,
                )
                ssl_object = transport.get_extra_info("ssl_object")
                if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
                    raise httpx.ConnectError(f"{host}:{port} did not negotiate HTTP/2 (ALPN h2)")
                await connection.wait_ready()
        except BaseException as exc:
            if transport is not None:
                transport.close()
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
            if isinstance(exc, OSError):
                raise httpx.ConnectError(f"connecting to {host}:{port} failed: {type(exc).__name__}") from exc
            raise
        return connection
