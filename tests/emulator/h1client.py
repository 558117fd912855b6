"""A small raw HTTP/1.1-over-TLS client for tests that need byte-level control.

Library clients hide pipelining, ``expect: 100-continue``, chunked uploads,
the exact bytes of malformed requests, and whether the server closed the
socket; these tests need all of that. Responses are parsed by hand (status
line, headers, ``content-length`` body), independently of the server's h11.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl


@dataclasses.dataclass
class H1Response:
    """One parsed response."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None


def request_bytes(
    method: str,
    path: str,
    headers: list[tuple[str, str]] = [],  # noqa: B006 - never mutated
    body: bytes = b"",
    *,
    chunk_size: int | None = None,
    host: str = "127.0.0.1",
) -> bytes:
    """Serialise a request; ``chunk_size`` sends the body chunked in pieces of that size."""
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if chunk_size is None:
        if body or method in ("POST", "PUT"):
            lines.append(f"content-length: {len(body)}")
        payload = body
    else:
        lines.append("transfer-encoding: chunked")
        pieces = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class RawH1Client:
    """One TLS connection, written and read by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(
        cls, url: str, ca_pem: bytes, *, alpn: list[str] | None = ["http/1.1"]  # noqa: B006
    ) -> RawH1Client:
        """Open a TLS connection to ``https://host:port`` offering ``alpn`` (None: no ALPN)."""
        host, port = url.removeprefix("https://").rsplit(":", 1)
        context = ssl.create_default_context(cadata=ca_pem.decode())
        if alpn is not None:
            context.set_alpn_protocols(alpn)
        reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
        return cls(reader, writer)

    @property
    def alpn(self) -> str | None:
        """The ALPN protocol the handshake selected, or None."""
        ssl_object: ssl.SSLObject = self._writer.get_extra_info("ssl_object")
        return ssl_object.selected_alpn_protocol()

    def write(self, data: bytes) -> None:
        """Send raw bytes."""
        self._writer.write(data)

    async def read_response(self, timeout_s: float = 5) -> H1Response:
        """Read one response (a 1xx comes back on its own, with an empty body)."""
        async with asyncio.timeout(timeout_s):
            head = await self._reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
            version, status, reason = (status_line.split(" ", 2) + [""])[:3]
            headers = []
            for line in header_lines:
                name, _, value = line.partition(":")
                headers.append((name.strip().lower(), value.strip()))
            response = H1Response(version, int(status), reason, headers, b"")
            length = response.header("content-length")
            if 100 <= response.status < 200 or length is None:
                return response
            response.body = await self._reader.readexactly(int(length))
            return response

    async def request(self, data: bytes, timeout_s: float = 5) -> H1Response:
        """Send one serialised request and read its response."""
        self.write(data)
        return await self.read_response(timeout_s)

    async def read_to_eof(self, timeout_s: float = 5) -> bytes:
        """Read until the server closes; what came before the close is returned.

        A reset (the server aborted) counts as a close.
        """
        chunks = []
        async with asyncio.timeout(timeout_s):
            try:
                while chunk := await self._reader.read(65536):
                    chunks.append(chunk)
            except (ConnectionError, ssl.SSLError):
                pass
        return b"".join(chunks)

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
