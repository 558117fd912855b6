"""A minimal HTTP/2-over-TLS server built on asyncio and the ``h2`` state machine.

Why not Hypercorn: the fake APNs must control ``SETTINGS_MAX_CONCURRENT_STREAMS``
per connection (1 before the first valid JWT, 1000 after), send GOAWAY with JSON
debug data, and drop connections abruptly, and the emulator must not be the
bottleneck of the gateway's benchmarks. A plain :class:`asyncio.Protocol` around
:class:`h2.connection.H2Connection` does all of that, and by writing everything
h2 produced once per ``data_received`` call (or once per event-loop tick for
delayed answers) it serves several thousand requests per second per core.

The server knows nothing about push providers. A :class:`~.site.Site` is
told about each new connection (and chooses its initial SETTINGS) and is handed
each complete :class:`~.site.Request`; it answers synchronously with a
:class:`~.site.Response`, which may ask to be delayed or to be followed by a
GOAWAY, or with ``None`` after it has aborted the connection itself.

Protocol choice (:class:`Http2Server`): a connection whose TLS handshake
selected ALPN ``h2`` speaks HTTP/2. One that selected no protocol speaks
HTTP/2 too (the client is expected to open with the connection preface, as
aioapns does: it never sets ALPN) unless the server was built with
``http1=True``, in which case it, like one that selected ``http/1.1``, speaks
HTTP/1.1 (:mod:`.http1`). A client that sends anything but the preface on an
HTTP/2 connection (an HTTP/1.1 request, say) has the socket closed after the
server's SETTINGS, as by any HTTP/2-only server: RFC 9113 §3.4 makes an
invalid preface a connection error for which the GOAWAY may be omitted.

Concurrency limit: h2 treats a HEADERS frame beyond the advertised
``MAX_CONCURRENT_STREAMS`` as a connection error (``TooManyStreamsError``,
i.e. GOAWAY and the end of every stream on the connection). RFC 9113 §5.1.2
allows a stream error instead, which is the kinder, more common behaviour, so
:class:`_ServerH2Connection` disables h2's check and :class:`Connection`
refuses the excess stream itself with ``RST_STREAM(REFUSED_STREAM)``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from .http1 import Http1Connection
from .site import Request, Response, Site

# Request, Response and Site live in .site since HTTP/1.1 shares them; they
# stay importable from here, where they used to be defined.
__all__ = ["Connection", "Http2Server", "Request", "Response", "Site"]

_log = logging.getLogger(__name__)

# How long a connection that sent a graceful GOAWAY waits for its in-flight
# streams before it is closed anyway.
_GOAWAY_GRACE_S = 5.0
# After GOAWAY and the last answer, the socket stays open this long (RFC 9113
# §6.8: wait before closing) so that a request already on the wire is refused
# with REFUSED_STREAM, which clients retry elsewhere, rather than hitting a
# closed socket.
_GOAWAY_LINGER_S = 0.5
# Bytes of a read handed to h2 at a time; what they complete is answered before the rest is parsed.
_READ_SLICE = 65536


class _ServerH2Connection(h2.connection.H2Connection):
    """h2 connection whose own concurrent-stream check is disabled.

    :class:`Connection` enforces the limit per stream instead (module docstring).
    """

    _checks = 0

    @property
    def open_inbound_streams(self) -> int:
        # Reading the parent property also culls closed streams from
        # ``self.streams`` (memory stays bounded), but it walks every stream,
        # so do it on every 32nd new stream only.
        self._checks += 1
        if self._checks % 32 == 0:
            super().open_inbound_streams  # noqa: B018
        return 0


class _PlainEncoder(hpack.Encoder):
    """HPACK encoder that never Huffman-codes (RFC 7541 lets the sender choose).

    hpack's Huffman encoder is pure Python and costs ~15 µs per unique value
    such as a fresh ``apns-id``; on loopback a few more header bytes are free.
    """

    def encode(
        self,
        headers: Any,
        huffman: bool = True,
    ) -> bytes:
        return super().encode(headers, huffman=False)


# Clients send ``authorization`` (a ~300-byte JWT or access token) as a
# never-indexed, Huffman-coded literal on every request, as RFC 7541 §7.1.3
# advises for credentials, and hpack's pure-Python Huffman decoder spends a
# measurable share of the emulator's CPU on it. It is not remembered: hpack
# calls its module-level decoder directly, and replacing that would change
# hpack for every user in the process (pushsvc's own code included), which
# pushsvc never does to a third-party module.


@dataclasses.dataclass(slots=True)
class _Stream:
    """Per-stream state while a request is being received or answered."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytearray
    timer: asyncio.TimerHandle | None = None
    # Response body bytes still waiting for flow-control window.
    pending: bytes = b""


class Connection(asyncio.Protocol):
    """One server-side HTTP/2 connection.

    Attributes:
        context: Free slot for the :class:`Site`'s per-connection state.
        peer_cert: The verified TLS client certificate (``getpeercert()`` form),
            or None.
        send_requests: Count of provider send requests seen on this connection,
            maintained by the site for fault injection.
    """

    def __init__(self, site: Site, registry: set[Any]) -> None:
        self._site = site
        self._registry = registry
        self._loop = asyncio.get_running_loop()
        self._h2 = _ServerH2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding=None,
                # Per-character validation of every header costs ~10% of
                # the server's CPU; the sites check what they rely on.
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
                # Sites build well-formed, lower-case response headers.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self._h2.encoder = _PlainEncoder()
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._flush_scheduled = False
        self._goaway_last_stream: int | None = None
        self._goaway_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self.context: Any = None
        self.peer_cert: dict[str, Any] | None = None
        self.send_requests = 0

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._registry.add(self)
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.peer_cert = ssl_object.getpeercert() or None
        settings = self._site.connection_made(self)
        # h2's stubs want SettingCodes keys; the plain integers are the same codes.
        self._h2.local_settings = h2.settings.Settings(client=False, initial_values=settings)  # type: ignore[arg-type]
        self._h2.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        # asyncio hands over everything the socket held (up to 256 KiB, a few
        # hundred requests from a busy client), and h2 parses a whole chunk
        # before returning its events: answered in one piece, the first
        # request would wait for the last, and the client would sit idle
        # meanwhile, then get hundreds of answers at once. Slices of
        # _READ_SLICE bytes keep both ends busy (h2 buffers a frame cut in two).
        if len(data) <= _READ_SLICE:
            self._receive(data)
            return
        for start in range(0, len(data), _READ_SLICE):
            self._receive(data[start : start + _READ_SLICE])
            if self._transport is None:
                return

    def _receive(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            # h2 has queued a GOAWAY describing the error; send it and hang up.
            self._flush()
            self._close()
            return
        for event in events:
            handler = _EVENT_HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)
            if self._transport is None:
                return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        for stream in self._streams.values():
            if stream.timer is not None:
                stream.timer.cancel()
        self._streams.clear()
        for timer in (self._goaway_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._transport = None
        self._registry.discard(self)

    # -- for sites ----------------------------------------------------------

    @property
    def max_concurrent_streams(self) -> int:
        """The acknowledged local SETTINGS_MAX_CONCURRENT_STREAMS."""
        return self._h2.local_settings.max_concurrent_streams

    def update_max_concurrent_streams(self, value: int) -> None:
        """Advertise a new stream limit; it applies once the peer acknowledges it."""
        self._h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: value})
        self._schedule_flush()

    def abort(self) -> None:
        """Drop the TCP connection at once, without GOAWAY (a simulated reset).

        Answers already given go out first: a request that was answered got
        its answer, and only what is still open loses it. (Without this, the
        answers to every request read in the same batch would vanish with the
        connection although the inbox had recorded them.)
        """
        if self._transport is not None:
            self._flush()
            transport = self._transport
            # Forget the open streams now, so nothing read in the same batch is
            # processed; then close after what was written (a reset would make
            # the client's kernel discard answers it already holds).
            self.connection_lost(None)
            transport.close()

    def close(self) -> None:
        """Close gracefully: GOAWAY(NO_ERROR), flush, then close the socket."""
        if self._transport is None:
            return
        try:
            self._h2.close_connection()
        except h2.exceptions.ProtocolError:
            pass
        self._flush()
        self._close()

    # -- events --------------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if (self._goaway_last_stream is not None and sid > self._goaway_last_stream) or len(
            self._streams
        ) >= self._h2.local_settings.max_concurrent_streams:
            # Above our GOAWAY's last stream id, or over the acknowledged limit:
            # refuse without processing, so the client may send it again
            # (RFC 9113 §8.7).
            self._refuse(sid)
            return
        method = path = ""
        headers: list[tuple[str, str]] = []
        for raw_name, raw_value in event.headers or ():
            name = bytes(raw_name).decode("ascii", "replace")
            value = bytes(raw_value).decode("utf-8", "replace")
            if name.startswith(":"):
                if name == ":method":
                    method = value
                elif name == ":path":
                    path = value
            else:
                headers.append((name, value))
        self._streams[sid] = _Stream(method, path, headers, bytearray())

    def _refuse(self, sid: int) -> None:
        self.reset_stream(sid, ErrorCodes.REFUSED_STREAM)

    def reset_stream(self, stream_id: int, code: ErrorCodes) -> None:
        """Ends a stream with RST_STREAM instead of a response (a site returns None after calling it)."""
        try:
            self._h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            # The client's GOAWAY arrived in the same read: h2 is closed and
            # sends nothing more; the stream is not processed either way.
            return
        self._schedule_flush()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        # Hand the window back at once: bodies are small and buffered whole.
        if event.flow_controlled_length:
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self._streams.get(event.stream_id)
        if stream is not None and event.data:
            stream.body += event.data

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        sid = event.stream_id
        stream = self._streams.get(sid)
        if stream is None:
            return
        request = Request(sid, stream.method, stream.path, stream.headers, bytes(stream.body), self)
        try:
            response = self._site.handle(request)
        except Exception:
            _log.exception("emulator handler failed")
            response = Response.json(500, {"reason": "InternalServerError"})
        if response is None or self._transport is None:
            return
        if response.delay_s > 0:
            stream.timer = self._loop.call_later(response.delay_s, self._send_delayed, sid, response)
        else:
            self._send_response(sid, response)

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        stream = self._streams.pop(event.stream_id, None)
        if stream is not None and stream.timer is not None:
            stream.timer.cancel()
        self._maybe_finish_goaway()

    def _on_window_updated(self, event: h2.events.WindowUpdated) -> None:
        targets = (
            [sid for sid, s in self._streams.items() if s.pending]
            if event.stream_id == 0
            else [event.stream_id]
        )
        for sid in targets:
            stream = self._streams.get(sid)
            if stream is not None and stream.pending:
                self._send_body(sid, stream)

    def _on_terminated(self, event: h2.events.ConnectionTerminated) -> None:
        self._flush()
        self._close()

    # -- sending ---------------------------------------------------------------

    def _send_delayed(self, sid: int, response: Response) -> None:
        stream = self._streams.get(sid)
        if stream is None or self._transport is None:
            return
        stream.timer = None
        self._send_response(sid, response)
        self._schedule_flush()

    def _send_response(self, sid: int, response: Response) -> None:
        stream = self._streams.get(sid)
        if stream is None:
            return
        headers = [(":status", str(response.status)), *response.headers]
        try:
            if response.body:
                headers.append(("content-length", str(len(response.body))))
                self._h2.send_headers(sid, headers)
                stream.pending = response.body
                self._send_body(sid, stream)
            else:
                self._h2.send_headers(sid, headers, end_stream=True)
                del self._streams[sid]
        except h2.exceptions.ProtocolError:
            # The client reset the stream, or ended the connection, while the
            # answer was being prepared; there is nobody left to answer.
            self._streams.pop(sid, None)
        if response.goaway_debug is not None:
            self._send_goaway(response.goaway_debug)
        self._maybe_finish_goaway()

    def _send_body(self, sid: int, stream: _Stream) -> None:
        """Send as much of the pending body as flow control allows."""
        data = stream.pending
        try:
            while data:
                window = self._h2.local_flow_control_window(sid)
                size = min(window, self._h2.max_outbound_frame_size, len(data))
                if size <= 0:
                    break
                # END_STREAM rides on the last DATA frame: one frame less.
                self._h2.send_data(sid, data[:size], end_stream=size == len(data))
                data = data[size:]
            stream.pending = data
            if not data:
                del self._streams[sid]
        except h2.exceptions.ProtocolError:
            self._streams.pop(sid, None)

    def _send_goaway(self, debug: bytes) -> None:
        """Send a graceful GOAWAY; streams already received are still answered.

        h2's ``close_connection`` moves its state machine to CLOSED, after
        which it refuses to send anything, so the frame is written directly.
        """
        if self._goaway_last_stream is not None or self._transport is None:
            return
        last = self._h2.highest_inbound_stream_id
        self._goaway_last_stream = last
        frame = GoAwayFrame(0)
        frame.last_stream_id = last
        frame.error_code = ErrorCodes.NO_ERROR
        frame.additional_data = debug
        self._flush()
        self._transport.write(frame.serialize())
        self._goaway_timer = self._loop.call_later(_GOAWAY_GRACE_S, self._close)

    def _maybe_finish_goaway(self) -> None:
        if self._goaway_last_stream is not None and not self._streams and self._linger_timer is None:
            self._linger_timer = self._loop.call_later(_GOAWAY_LINGER_S, self._close)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._transport is None:
            return
        data = self._h2.data_to_send()
        if data:
            self._transport.write(data)

    def _close(self) -> None:
        if self._transport is not None:
            self._flush()
            self._transport.close()


_EVENT_HANDLERS: dict[type, Any] = {
    h2.events.RequestReceived: Connection._on_request,
    h2.events.DataReceived: Connection._on_data,
    h2.events.StreamEnded: Connection._on_stream_ended,
    h2.events.StreamReset: Connection._on_stream_reset,
    h2.events.WindowUpdated: Connection._on_window_updated,
    h2.events.ConnectionTerminated: Connection._on_terminated,
}


class _Negotiation(asyncio.Protocol):
    """Picks HTTP/2 or HTTP/1.1 once the TLS handshake is done, then steps aside.

    asyncio calls ``connection_made`` after the handshake, when the ALPN
    choice is known; the transport is handed to the chosen protocol, so the
    HTTP/2 hot path pays nothing for the choice.
    """

    def __init__(self, site: Site, registry: set[Any], *, http1: bool) -> None:
        self._site = site
        self._registry = registry
        self._http1 = http1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        protocol: asyncio.Protocol
        if alpn == "h2" or (alpn is None and not self._http1):
            protocol = Connection(self._site, self._registry)
        elif self._http1 and alpn in (None, "http/1.1"):
            protocol = Http1Connection(self._site, self._registry)
        else:
            transport.abort()  # not offered by our TLS context; cannot happen
            return
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


class Http2Server:
    """A listening socket serving one :class:`~.site.Site` over TLS + HTTP/2.

    Args:
        site: What to serve.
        ssl_context: The server TLS context; it should offer ALPN ``h2`` (and
            ``http/1.1`` when ``http1`` is set). None serves plain TCP, which
            with ``http1`` is plain HTTP/1.1 (the control port).
        http1: Also speak HTTP/1.1, to clients that select ALPN ``http/1.1``
            or no ALPN at all (module docstring). Without it, a client that
            selects no ALPN is spoken to in HTTP/2.
    """

    def __init__(self, site: Site, ssl_context: ssl.SSLContext | None, *, http1: bool = False) -> None:
        self._site = site
        self._ssl = ssl_context
        self._http1 = http1
        self._server: asyncio.Server | None = None
        self._connections: set[Any] = set()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        """Number of open connections (both HTTP versions)."""
        return len(self._connections)

    async def start(self, host: str, port: int) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Negotiation(self._site, self._connections, http1=self._http1),
            host,
            port,
            ssl=self._ssl,
            reuse_address=True,
            backlog=256,
        )

    def serve(self, transport: asyncio.Transport) -> None:
        """Serve a TLS connection accepted elsewhere (a proxy tunnel) like one of ours.

        The protocol is chosen by the transport's ALPN as for a connection
        accepted here, and :meth:`stop` drops it with the others.
        """
        _Negotiation(self._site, self._connections, http1=self._http1).connection_made(transport)

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._connections):
            connection.abort()
        await self._server.wait_closed()
        self._server = None
