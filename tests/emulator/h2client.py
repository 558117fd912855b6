"""A small raw HTTP/2 client for tests that need frame-level control.

httpx hides SETTINGS, GOAWAY, RST_STREAM and PING; these tests need to see
them, and to break the rules (open more streams than allowed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import DataFrame


class _UnlimitedClientConnection(h2.connection.H2Connection):
    """Client that ignores the server's stream limit, to test the server's refusal."""

    @property
    def open_outbound_streams(self) -> int:
        return 0


@dataclasses.dataclass
class RawResponse:
    """What came back on one stream."""

    status: int = 0
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    reset_code: int | None = None


class RawH2Client:
    """One HTTP/2 connection driven by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, unlimited: bool) -> None:
        cls = _UnlimitedClientConnection if unlimited else h2.connection.H2Connection
        self.conn = cls(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self._reader = reader
        self._writer = writer
        self.events: list[h2.events.Event] = []
        self._responses: dict[int, RawResponse] = {}
        self._done: dict[int, asyncio.Future[RawResponse]] = {}
        self._changed = asyncio.Event()
        self.closed = asyncio.Event()
        # h2 as a client moves to CLOSED on GOAWAY and then rejects the answers
        # to streams the server is still finishing; the error is kept here.
        self.protocol_error: h2.exceptions.ProtocolError | None = None
        self.conn.initiate_connection()
        self._flush()
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(
        cls,
        url: str,
        ca_pem: bytes,
        *,
        unlimited: bool = False,
        cert_chain: tuple[str, str] | None = None,
        alpn: list[str] | None = ["h2"],  # noqa: B006 - never mutated
    ) -> RawH2Client:
        """Open a TLS + h2 connection to ``https://host:port``.

        ``alpn=None`` offers no ALPN at all and speaks HTTP/2 anyway (prior
        knowledge), as aioapns does.
        """
        host, port = url.removeprefix("https://").rsplit(":", 1)
        context = ssl.create_default_context(cadata=ca_pem.decode())
        if alpn is not None:
            context.set_alpn_protocols(alpn)
        if cert_chain is not None:
            context.load_cert_chain(*cert_chain)
        reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
        return cls(reader, writer, unlimited=unlimited)

    @property
    def alpn(self) -> str | None:
        """The ALPN protocol the handshake selected, or None."""
        ssl_object: ssl.SSLObject = self._writer.get_extra_info("ssl_object")
        return ssl_object.selected_alpn_protocol()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    self._on_event(event)
                self._flush()
                self._changed.set()
        except (ConnectionError, ssl.SSLError):
            pass
        except h2.exceptions.ProtocolError as exc:
            self.protocol_error = exc
        finally:
            self.closed.set()
            self._changed.set()
            for future in self._done.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))

    def _on_event(self, event: h2.events.Event) -> None:
        self.events.append(event)
        sid = getattr(event, "stream_id", None)
        response = self._responses.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and response is not None:
            response.headers = dict(event.headers)
            response.status = int(response.headers[":status"])
        elif isinstance(event, h2.events.DataReceived) and response is not None:
            response.body += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and response is not None:
            self._finish(sid)
        elif isinstance(event, h2.events.StreamReset) and response is not None:
            response.reset_code = event.error_code
            self._finish(sid)

    def _finish(self, sid: int) -> None:
        future = self._done.get(sid)
        if future is not None and not future.done():
            future.set_result(self._responses[sid])

    def start_request(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"", *, end: bool = True
    ) -> int:
        """Send a request; return its stream id (see :meth:`response`)."""
        sid = self.conn.get_next_available_stream_id()
        self._responses[sid] = RawResponse()
        self._done[sid] = asyncio.get_running_loop().create_future()
        pseudo = [(":method", method), (":path", path), (":scheme", "https"), (":authority", "127.0.0.1")]
        self.conn.send_headers(sid, pseudo + headers, end_stream=not body and end)
        if body:
            self._send_body(sid, body, end)
        self._flush()
        return sid

    def _send_body(self, sid: int, body: bytes, end: bool) -> None:
        # Bodies larger than the window are sent by send_large_body().
        self.conn.send_data(sid, body, end_stream=end)

    def send_body(self, sid: int, body: bytes) -> None:
        """Send ``body`` and END_STREAM on an open stream (fits the window)."""
        self.conn.send_data(sid, body, end_stream=True)
        self._flush()

    def send_raw_body(self, sid: int, body: bytes) -> None:
        """Write a DATA frame with END_STREAM behind h2's back.

        After a GOAWAY h2 refuses to send anything, even on streams the server
        promised to finish; the real peer still accepts them.
        """
        frame = DataFrame(sid, body)
        frame.flags.add("END_STREAM")
        self._writer.write(frame.serialize())

    async def send_large_body(self, sid: int, body: bytes, timeout_s: float = 5) -> None:
        """Send ``body`` on ``sid`` honouring flow control, then END_STREAM."""
        async with asyncio.timeout(timeout_s):
            while body:
                window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                if window <= 0:
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                self.conn.send_data(sid, body[:window])
                body = body[window:]
                self._flush()
            self.conn.end_stream(sid)
            self._flush()

    async def response(self, sid: int, timeout_s: float = 5) -> RawResponse:
        """Wait for the complete answer on ``sid``."""
        return await asyncio.wait_for(self._done[sid], timeout_s)

    async def request(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> RawResponse:
        """Send a request and wait for its answer."""
        return await self.response(self.start_request(method, path, headers, body))

    def reset(self, sid: int) -> None:
        """Cancel a stream (RST_STREAM CANCEL)."""
        self.conn.reset_stream(sid)
        self._flush()

    def ping(self, data: bytes) -> None:
        """Send a PING."""
        self.conn.ping(data)
        self._flush()

    async def wait_for(self, predicate: Callable[[h2.events.Event], bool], timeout_s: float = 5) -> h2.events.Event:
        """Wait until an event matching ``predicate`` has been received."""
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                if self.closed.is_set():
                    raise ConnectionError("connection closed")
                self._changed.clear()
                await self._changed.wait()

    @property
    def max_concurrent_streams(self) -> int:
        """The server's acknowledged SETTINGS_MAX_CONCURRENT_STREAMS."""
        return self.conn.remote_settings.max_concurrent_streams

    async def close(self) -> None:
        """Close the connection and stop reading."""
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
