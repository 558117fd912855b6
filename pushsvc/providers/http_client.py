"""Building the HTTP/2 client the provider adapters send through."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from pushsvc.providers import h2transport


class DirectPostClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` whose plain `post()` goes straight to its transport.

    httpx's client layer (URL merging, cookie extraction, the auth and redirect
    flows, event hooks) costs more per request than the whole HTTP/2 exchange
    over `H2Transport`, and providers use none of it: they send absolute URLs,
    want no cookies, never follow redirects (httpx's default) and carry their
    own authorization. So `post(url, content=..., headers=...)` builds the
    request and hands it to the transport; any other call, or `post` with other
    arguments, is ordinary httpx.

    Args:
        transport: The transport every request goes to.
        timeout: httpx's per-phase timeout, passed on to the transport.
    """

    def __init__(self, *, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout) -> None:
        super().__init__(transport=transport, timeout=timeout)
        self._direct_transport = transport

    async def post(  # type: ignore[override]
        self,
        url: httpx.URL | str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """POSTs `content` to an absolute `url`; see the class docstring."""
        if kwargs or self.is_closed:
            return await super().post(url, content=content, headers=headers, **kwargs)
        merged = httpx.Headers(self.headers)
        if headers:
            merged.update(headers)
        request = httpx.Request(
            "POST", url, content=content, headers=merged, extensions={"timeout": self.timeout.as_dict()}
        )
        response = await self._direct_transport.handle_async_request(request)
        response.request = request
        await response.aread()
        return response


def make_http_client(
    *,
    ca_pem: bytes | None = None,
    ssl_context: ssl.SSLContext | None = None,
    fast: bool = True,
    timeout_s: float = 10.0,
) -> httpx.AsyncClient:
    """Returns an HTTP/2 `httpx.AsyncClient` for one provider (one app's credentials).

    Args:
        ca_pem: CA certificates to trust instead of the system store (the
            emulator's CA). Ignored when `ssl_context` is given.
        ssl_context: A ready TLS context, e.g. from `apns_client_tls_context`
            for APNs certificate auth.
        fast: Use `H2Transport` (raw h2) behind a `DirectPostClient` instead of
            httpx's own HTTP/2 stack; several times cheaper per request.
        timeout_s: httpx's timeout for each phase of a request.
    """
    if ssl_context is None:
        ssl_context = ssl.create_default_context(cadata=ca_pem.decode("ascii") if ca_pem is not None else None)
    timeout = httpx.Timeout(timeout_s)
    client: httpx.AsyncClient
    if fast:
        client = DirectPostClient(
            transport=h2transport.H2Transport(ssl_context=ssl_context, default_timeout_s=timeout_s),
            timeout=timeout,
        )
    else:
        # http1=False: ALPN offers h2 only; no keep-alive expiry, because APNs
        # wants connections reused for hours and treats reconnect storms as abuse.
        client = httpx.AsyncClient(
            http1=False,
            http2=True,
            verify=ssl_context,
            timeout=timeout,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=None),
        )
    # Providers need none of httpx's browser-style defaults; each header costs
    # HPACK work on every request.
    for name in ("accept", "accept-encoding", "connection"):
        client.headers.pop(name, None)
    client.headers["user-agent"] = "pushsvc"
    return client
