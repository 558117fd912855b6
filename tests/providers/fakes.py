"""Fakes for the adapters' unit tests: a settable clock, and an in-memory `Transport`.

The transport's handler sees an httpx.Request.

httpx's request and response types are only a convenient vocabulary here (the
handler is the test's fake provider); nothing goes through httpx's client.
A handler may raise a `TransportError` to simulate a network failure.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx

from pushsvc.providers.transport import NO_DEFAULT_HEADERS, Response, TransportClosed, TransportError


class FakeTransport:
    """Calls `handler(httpx.Request) -> httpx.Response` (sync or async) for every POST."""

    def __init__(self, handler: Callable[[httpx.Request], Any]) -> None:
        self._handler = handler
        self.closed = False

    async def post(self, url: str, headers: Iterable[str], body: bytes) -> Response:
        if self.closed:
            raise TransportClosed("closed")
        pairs = []
        for line in headers:
            name, _, value = line.partition(":")
            pairs.append((name.strip(), value.strip()))
        answer = self._handler(httpx.Request("POST", url, headers=pairs, content=body))
        if inspect.isawaitable(answer):
            answer = await answer
        assert isinstance(answer, httpx.Response)
        raw = [b"HTTP/2 %d\r\n" % answer.status_code] + [name + b": " + value + b"\r\n" for name, value in answer.headers.raw]
        return Response(answer.status_code, raw, answer.content)

    async def post_many(self, requests: Sequence[tuple[str, Sequence[str], bytes]]) -> list[Response | TransportError]:
        """Each request through `post`, in order; libcurl's directives (`NO_DEFAULT_HEADERS`) are not headers."""
        out: list[Response | TransportError] = []
        for url, headers, body in requests:
            try:
                out.append(await self.post(url, [h for h in headers if h not in NO_DEFAULT_HEADERS], body))
            except TransportError as exc:
                out.append(exc)
        return out

    async def aclose(self) -> None:
        self.closed = True


@dataclasses.dataclass
class FakeClock:
    """A settable epoch clock."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        """The `Clock.time()` the adapters read (this fake also serves as a plain callable)."""
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
