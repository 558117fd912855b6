"""Building the HTTP/2 client the provider adapters send through."""

from __future__ import annotations

import ssl

import httpx

from pushsvc.providers import h2transport


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
        fast: Use `H2Transport` (raw h2, several times cheaper per request)
            instead of httpx's own HTTP/2 stack.
        timeout_s: httpx's timeout for each phase of a request.
    """
    if ssl_context is None:
        ssl_context = ssl.create_default_context(cadata=ca_pem.decode("ascii") if ca_pem is not None else None)
    timeout = httpx.Timeout(timeout_s)
    if fast:
        return httpx.AsyncClient(
            transport=h2transport.H2Transport(ssl_context=ssl_context, default_timeout_s=timeout_s),
            timeout=timeout,
        )
    # http1=False: ALPN offers h2 only; no keep-alive expiry, because APNs
    # wants connections reused for hours and treats reconnect storms as abuse.
    return httpx.AsyncClient(
        http1=False,
        http2=True,
        verify=ssl_context,
        timeout=timeout,
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=None),
    )
