"""What a fake provider (a :class:`Site`) sees, whichever HTTP version carried it.

The servers in :mod:`.http2` and :mod:`.http1` turn wire traffic into
:class:`Request` objects and :class:`Response` objects back into wire traffic;
a :class:`Site` (APNs, FCM + OAuth) only ever deals in these, so an HTTP/1.1
request reaches exactly the handler an HTTP/2 request does and gets the same
status, headers and body.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any, Protocol


class ClientConnection(Protocol):
    """The connection a request arrived on, as a :class:`Site` may use it.

    Attributes:
        context: Free slot for the site's per-connection state.
        peer_cert: The verified TLS client certificate (``getpeercert()``
            form), or None.
        send_requests: Count of provider send requests seen on this
            connection, maintained by the site for fault injection.
    """

    context: Any
    peer_cert: dict[str, Any] | None
    send_requests: int

    def abort(self) -> None:
        """Drop the TCP connection at once, without a goodbye (a simulated reset)."""
        ...

    def update_max_concurrent_streams(self, value: int) -> None:
        """Advertise a new HTTP/2 stream limit (nothing to do over HTTP/1.1)."""
        ...


@dataclasses.dataclass(slots=True)
class Request:
    """One complete request.

    Attributes:
        stream_id: The HTTP/2 stream the request arrived on; over HTTP/1.1,
            the request's 1-based position on its connection.
        method: The method (HTTP/2 ``:method``).
        path: The request target (HTTP/2 ``:path``), query string included.
        headers: Regular headers in arrival order, names lower-case, repeats
            kept. Over HTTP/1.1 the connection-specific headers that HTTP/2
            forbids (``connection``, ``keep-alive``, ``transfer-encoding``...)
            and ``host`` (HTTP/2's ``:authority``) are left out, so a site sees
            the same headers whichever version the client spoke.
        body: The request body (de-chunked over HTTP/1.1).
        connection: The connection the request arrived on.
    """

    stream_id: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    connection: ClientConnection

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclasses.dataclass(slots=True)
class Response:
    """An answer to a :class:`Request`.

    Attributes:
        status: The HTTP status code.
        headers: Regular response headers (lower-case names).
        body: The response body; empty means HEADERS with END_STREAM only
            (``content-length: 0`` over HTTP/1.1).
        delay_s: Seconds to wait before sending (fault-injected latency).
        goaway_debug: If not None, the connection is wound down after this
            response: over HTTP/2 a graceful GOAWAY carrying these bytes as
            debug data follows it; over HTTP/1.1 the response carries
            ``connection: close`` and the socket is closed after it.
    """

    status: int
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    body: bytes = b""
    delay_s: float = 0.0
    goaway_debug: bytes | None = None

    @classmethod
    def json(
        cls,
        status: int,
        document: Any,
        headers: Iterable[tuple[str, str]] = (),
        *,
        content_type: str = "application/json",
    ) -> Response:
        """Build a response whose body is ``document`` as compact JSON."""
        body = json.dumps(document, separators=(",", ":")).encode()
        return cls(status, [("content-type", content_type), *headers], body)


class Site(Protocol):
    """What a server serves."""

    def connection_made(self, connection: ClientConnection) -> dict[int, int]:
        """Prepare per-connection state; return the initial local HTTP/2 SETTINGS.

        HTTP/1.1 connections are announced too; their SETTINGS are ignored.
        """
        ...

    def handle(self, request: Request) -> Response | None:
        """Answer a request, or return None after aborting the connection."""
        ...
