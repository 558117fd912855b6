"""Proxy mode: an HTTP CONNECT proxy that *is* Apple's and Google's push hosts.

An unmodified client that honours ``HTTPS_PROXY`` asks the proxy for a tunnel
(``CONNECT fcm.googleapis.com:443 HTTP/1.1``). For the four hosts in
:data:`PROXY_HOSTS`, on port 443, the proxy answers ``200`` and then does not
dial anywhere: it terminates the tunnel's TLS itself, with a certificate for
the host signed by the emulator's CA, and hands the connection to the
emulator's own server for that host (APNs production or sandbox: HTTP/2 only;
FCM and OAuth: HTTP/2 or HTTP/1.1 by ALPN). The client must trust the CA
(``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``...).

Anything else is refused and the connection closed: ``CONNECT`` to another
host or port is ``403``; another method is ``405``; a malformed or oversized
request head is ``400``; a head not complete within
:data:`HEAD_TIMEOUT_S` is dropped. The proxy never opens a connection of its
own.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from typing import Protocol

_log = logging.getLogger(__name__)

PROXY_HOSTS: Mapping[str, str] = {
    "api.push.apple.com": "apns",
    "api.sandbox.push.apple.com": "apns-sandbox",
    "fcm.googleapis.com": "fcm",
    "oauth2.googleapis.com": "fcm",
}
"""Host names the proxy serves, and which emulator port serves each."""

HEAD_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 8192


class TunnelServer(Protocol):
    """An emulator server that takes over a tunnelled, TLS-wrapped connection."""

    def serve(self, transport: asyncio.Transport) -> None:
        """Serve ``transport`` (TLS done) as if it had been accepted by this server."""
        ...


class Route:
    """Where one host's tunnels go: the serving server and the TLS context to terminate with."""

    def __init__(self, server: TunnelServer, ssl_context: ssl.SSLContext) -> None:
        self.server = server
        self.ssl_context = ssl_context


class ProxyServer:
    """Listens for CONNECT requests and serves the allowed hosts itself.

    Args:
        routes: Per host name (lower-case), where its tunnels go.
    """

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes = dict(routes)
        self._server: asyncio.Server | None = None
        self._tunnels: set[_Tunnel] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("proxy not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        """Bind and start accepting proxy connections."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Tunnel(self), host, port, reuse_address=True, backlog=128
        )

    async def stop(self) -> None:
        """Stop listening; drop tunnels still negotiating (served ones belong to their server)."""
        if self._server is None:
            return
        self._server.close()
        for tunnel in list(self._tunnels):
            tunnel.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def _open(self, tunnel: _Tunnel, transport: asyncio.Transport, route: Route) -> None:
        task = asyncio.get_running_loop().create_task(self._upgrade(tunnel, transport, route))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _upgrade(self, tunnel: _Tunnel, transport: asyncio.Transport, route: Route) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                transport, tunnel, route.ssl_context, server_side=True, ssl_handshake_timeout=HEAD_TIMEOUT_S
            )
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            _log.debug("proxy: TLS handshake in the tunnel failed: %s", exc)
            transport.abort()
            return
        except asyncio.CancelledError:
            transport.abort()  # the proxy is stopping
            raise
        finally:
            self._tunnels.discard(tunnel)
        if tls is None:
            transport.abort()
            return
        route.server.serve(tls)
        # Bytes the client sent right after its handshake (the HTTP/2 preface,
        # say) reached the tunnel before the server's protocol took over.
        early = tunnel.take_early_data()
        if early:
            tls.get_protocol().data_received(early)  # type: ignore[attr-defined]  # the protocol installed on a TLS tunnel is always an asyncio.Protocol


class _Tunnel(asyncio.Protocol):
    """One client connection to the proxy, until its tunnel is handed over."""

    def __init__(self, proxy: ProxyServer) -> None:
        self._proxy = proxy
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._handed_over = False
        # Decrypted bytes that arrive between the end of the TLS handshake and
        # the hand-over (asyncio delivers them to this protocol first).
        self._early = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._proxy._tunnels.add(self)
        self._timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT_S, self.abort)

    def data_received(self, data: bytes) -> None:
        if self._handed_over:
            self._early += data
            return
        if self._transport is None:
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD_BYTES:
                self._refuse(400, "Bad Request")
            return
        if end + 4 != len(self._head):
            # TLS bytes sent before our 200: we cannot hand them to the TLS layer.
            self._refuse(400, "Bad Request")
            return
        self._on_head(bytes(self._head[:end]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None
        self._proxy._tunnels.discard(self)

    def take_early_data(self) -> bytes:
        """Return (and forget) what arrived over TLS before the hand-over."""
        early = bytes(self._early)
        self._early.clear()
        return early

    def abort(self) -> None:
        """Drop the connection."""
        if self._transport is not None:
            self._transport.abort()

    def _on_head(self, head: bytes) -> None:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._refuse(400, "Bad Request")
            return
        method, authority, _ = parts
        if method != "CONNECT":
            self._refuse(405, "Method Not Allowed", b"allow: CONNECT\r\n")
            return
        host, _, port = authority.rpartition(":")
        route = self._proxy._routes.get(host.lower()) if port == "443" else None
        if route is None:
            self._refuse(403, "Forbidden")
            return
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._handed_over = True
        # Nothing more may reach this protocol: the next bytes are the TLS
        # handshake, which start_tls reads once it has taken the transport.
        self._transport.pause_reading()
        self._transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._proxy._open(self, self._transport, route)

    def _refuse(self, status: int, reason: str, extra_headers: bytes = b"") -> None:
        if self._transport is None:
            return
        body = f"{status} {reason}: pushsvc emulator proxy serves only {', '.join(sorted(PROXY_HOSTS))} on port 443\n"
        self._transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n".encode()
            + extra_headers
            + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}".encode()
        )
        self._transport.close()
