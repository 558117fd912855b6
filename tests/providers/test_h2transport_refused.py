"""H2Transport sends a request again only when the server provably did not process it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import h2.errors
import h2.settings
import httpx
import pytest

from pushsvc.emulator.http2 import Connection, Http2Server, Request, Response
from pushsvc.emulator.tls import ServerTls
from pushsvc.providers.h2transport import H2Transport


class _ResettingSite:
    """Resets the first `resets` streams with `code`, then answers 200."""

    def __init__(self, code: h2.errors.ErrorCodes, resets: int) -> None:
        self.code = code
        self.resets = resets
        self.seen: list[tuple[int, int]] = []  # (connection id, stream id)

    def connection_made(self, connection: Connection) -> dict[int, int]:
        return {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100}

    def handle(self, request: Request) -> Response | None:
        self.seen.append((id(request.connection), request.stream_id))
        if self.resets > 0:
            self.resets -= 1
            request.connection.reset_stream(request.stream_id, self.code)
            return None
        return Response(200, body=request.body)


@pytest.fixture
def tls() -> ServerTls:
    return ServerTls()


async def _serve(site: _ResettingSite, tls: ServerTls) -> AsyncIterator[tuple[Http2Server, H2Transport]]:
    server = Http2Server(site, tls.server_context())
    await server.start("127.0.0.1", 0)
    transport = H2Transport(ssl_context=ssl.create_default_context(cadata=tls.ca_pem.decode("ascii")), default_timeout_s=5)
    try:
        yield server, transport
    finally:
        await transport.aclose()
        await server.stop()


async def _post(server: Http2Server, transport: H2Transport) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.post(f"https://localhost:{server.port}/x", content=b"payload")


async def test_refused_stream_is_sent_again(tls) -> None:
    site = _ResettingSite(h2.errors.ErrorCodes.REFUSED_STREAM, resets=1)
    async for server, transport in _serve(site, tls):
        response = await _post(server, transport)
        assert (response.status_code, response.content) == (200, b"payload")
        [(conn_a, first), (conn_b, second)] = site.seen
        assert conn_a == conn_b and second > first  # same connection, a new stream


async def test_refusal_is_retried_a_bounded_number_of_times(tls) -> None:
    site = _ResettingSite(h2.errors.ErrorCodes.REFUSED_STREAM, resets=100)
    async for server, transport in _serve(site, tls):
        with pytest.raises(httpx.RemoteProtocolError):
            await _post(server, transport)
        assert len(site.seen) == 3


async def test_other_resets_are_not_sent_again(tls) -> None:
    # The server may have acted on the request before INTERNAL_ERROR: no retry.
    site = _ResettingSite(h2.errors.ErrorCodes.INTERNAL_ERROR, resets=1)
    async for server, transport in _serve(site, tls):
        with pytest.raises(httpx.RemoteProtocolError):
            await _post(server, transport)
        assert len(site.seen) == 1
