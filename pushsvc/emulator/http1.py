"""HTTP/1.1 over TLS for the emulator's FCM + OAuth port, on the ``h11`` state machine.

Google's endpoints speak HTTP/1.1 as well as HTTP/2, and the default clients
use it: google-auth's ``requests`` transport and firebase-admin's synchronous
``messaging.send``. :class:`Http1Connection` serves the same :class:`Site` as
:class:`~pushsvc.emulator.http2.Connection`: each complete request becomes a
:class:`~pushsvc.emulator.site.Request` and the site's
:class:`~pushsvc.emulator.site.Response` goes back with the same status,
headers and body (plus ``content-length``).

- Keep-alive: the connection serves requests one after another until either
  side says ``connection: close`` (or the client speaks HTTP/1.0 without
  keep-alive). Pipelined requests wait in order; reading pauses while a request
  is being answered, so a client cannot queue unbounded data.
- Bodies: ``content-length`` or ``transfer-encoding: chunked``; at most
  :data:`MAX_BODY_BYTES` (``413`` and close beyond). ``expect: 100-continue``
  gets ``100 Continue`` first.
- Malformed requests get the status h11 suggests (``400``, ``431``...) with a
  JSON ``{"error": ...}`` body and ``connection: close``.
- Faults (see :class:`~pushsvc.emulator.faults.Faults`): ``latency_s`` delays
  the answer; a response the site marks for GOAWAY carries
  ``connection: close`` and the socket is closed once it is written (requests
  pipelined behind it are never processed); a reset drops the socket without
  an answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import logging
import ssl
from typing import Any

import h11

from .site import Request, Response, Site

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
"""Largest request body accepted; provider requests are a few KiB."""

# Request headers longer than this (all together) are refused with 431.
_MAX_HEADER_BYTES = 64 * 1024
# Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2), and host,
# which HTTP/2 carries as :authority: dropped so sites see what an HTTP/2
# request of the same meaning would show them.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te", b"host"}
)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


@dataclasses.dataclass(slots=True)
class _Incoming:
    """The request being received."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytearray


class Http1Connection(asyncio.Protocol):
    """One server-side HTTP/1.1 connection (see the module docstring).

    Attributes:
        context: Free slot for the :class:`Site`'s per-connection state.
        peer_cert: The verified TLS client certificate, or None.
        send_requests: Count of provider send requests seen on this
            connection, maintained by the site for fault injection.
    """

    def __init__(self, site: Site, registry: set[Any]) -> None:
        self._site = site
        self._registry = registry
        self._loop = asyncio.get_running_loop()
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
        self._transport: asyncio.Transport | None = None
        self._incoming: _Incoming | None = None
        # True from a complete request until its answer is written.
        self._answering = False
        self._timer: asyncio.TimerHandle | None = None
        self._requests = 0
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
        self._site.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        self._registry.discard(self)

    # -- for sites ----------------------------------------------------------

    def abort(self) -> None:
        """Drop the TCP connection at once, without an answer (a simulated reset)."""
        if self._transport is not None:
            self._transport.abort()
            self.connection_lost(None)

    def close(self) -> None:
        """Close the connection (after the answer in progress, if one is being written)."""
        self._close()

    def update_max_concurrent_streams(self, value: int) -> None:
        """HTTP/1.1 has no streams: one request at a time. Nothing to do."""

    # -- receiving ------------------------------------------------------------

    def _process(self) -> None:
        """Handle every complete event h11 has buffered, up to the next request."""
        while self._transport is not None and not self._answering:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._start(event)
            elif isinstance(event, h11.Data):
                assert self._incoming is not None
                self._incoming.body += event.data
                if len(self._incoming.body) > MAX_BODY_BYTES:
                    self._refuse(413, "request body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    def _start(self, event: h11.Request) -> None:
        headers = [
            (name.decode("ascii", "replace"), value.decode("utf-8", "replace"))
            for name, value in event.headers
            if name not in _HOP_BY_HOP
        ]
        self._incoming = _Incoming(
            event.method.decode("ascii", "replace"),
            event.target.decode("utf-8", "replace"),
            headers,
            bytearray(),
        )
        if self._h11.they_are_waiting_for_100_continue:
            self._write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")))

    def _dispatch(self) -> None:
        incoming = self._incoming
        assert incoming is not None and self._transport is not None
        self._incoming = None
        self._answering = True
        # Pipelined requests wait in the socket, not in our buffer.
        self._transport.pause_reading()
        self._requests += 1
        request = Request(
            self._requests, incoming.method, incoming.target, incoming.headers, bytes(incoming.body), self
        )
        try:
            response = self._site.handle(request)
        except Exception:
            _log.exception("emulator handler failed")
            response = Response.json(500, {"reason": "InternalServerError"})
        if response is None or self._transport is None:
            return  # the site dropped the connection
        if response.delay_s > 0:
            self._timer = self._loop.call_later(response.delay_s, self._answer, response)
        else:
            self._answer(response)

    # -- sending ---------------------------------------------------------------

    def _answer(self, response: Response) -> None:
        self._timer = None
        if self._transport is None:
            return
        headers: list[tuple[str, str]] = [(name, value) for name, value in response.headers]
        headers.append(("content-length", str(len(response.body))))
        if response.goaway_debug is not None:
            headers.append(("connection", "close"))
        try:
            data = self._h11.send(
                h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status))
            )
            if response.body:
                data += self._h11.send(h11.Data(data=response.body))
            data += self._h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            _log.exception("emulator produced an invalid HTTP/1.1 response")
            self.abort()
            return
        self._write(data)
        if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
            self._close()  # connection: close from either side, or HTTP/1.0
            return
        self._h11.start_next_cycle()
        self._answering = False
        self._transport.resume_reading()
        self._process()

    def _refuse(self, status: int, message: str) -> None:
        """Answer a malformed request, then close."""
        body = Response.json(status, {"error": message}).body
        try:
            self._write(
                self._h11.send(
                    h11.Response(
                        status_code=status,
                        headers=[
                            ("content-type", "application/json"),
                            ("content-length", str(len(body))),
                            ("connection", "close"),
                        ],
                        reason=_reason(status),
                    )
                )
                + self._h11.send(h11.Data(data=body))
                + self._h11.send(h11.EndOfMessage())
            )
        except h11.LocalProtocolError:
            pass  # an answer is already under way; just hang up
        self._close()

    def _write(self, data: bytes | None) -> None:
        if data and self._transport is not None:
            self._transport.write(data)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()
