"""The FCM OAuth2 access token: fetched through google-auth, cached, refreshed early.

google-auth does the protocol (an RS256 assertion POSTed to the service
account's `token_uri`, so the emulator's endpoint works); this module adds what
an asyncio gateway needs on top:

- the blocking refresh runs in a worker thread, never on the event loop;
- one asyncio lock, so a burst of concurrent sends triggers one refresh;
- the token is refreshed `refresh_margin_s` before it expires (5 minutes, a
  little earlier than google-auth's own 3m45s), measured on an injected clock;
- `invalidate()` for an OAuth 401, so the next caller fetches a new token.

google-auth's HTTP calls go through `UrllibAuthRequest`, a small
`google.auth.transport.Request` over the standard library's urllib, so no
HTTP client dependency is needed and the emulator's CA can be trusted. Like
the push requests, it calls the token endpoint directly: no proxy from the
environment.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import logging
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport
from google.oauth2 import service_account

from pushsvc.metrics import NULL_METRICS, Metrics

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
"""The OAuth scope for FCM HTTP v1."""

_UNKNOWN_LIFETIME_S = 3600.0
"""Google's usual token lifetime, assumed when the token endpoint omits expires_in."""

log = logging.getLogger("pushsvc.providers.fcm")


class UrllibAuthResponse(google.auth.transport.Response):
    """A google-auth response: status, headers and the body, read in full."""

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status = status
        self._headers = headers
        self._data = data

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers."""
        return self._headers

    @property
    def data(self) -> bytes:
        """The response body."""
        return self._data


class _WrappedFirstConnection(http.client.HTTPSConnection):
    """An HTTPS connection whose socket is wrapped in TLS before it connects.

    The standard library connects a socket, then wraps it. Before Python 3.11.8
    and 3.12.2, a peer that reset the connection between the two (a token
    endpoint going down, a proxy refusing) left the wrapped socket open until
    the garbage collector found it (CPython gh-113280). Wrapped first, as in the
    ssl module's own client example, the socket stays in hands that close it.

    Args:
        host: The endpoint's host, also the name its certificate must carry.
        timeout: Seconds for the connection and for each read (urllib passes
            the one `UrllibAuthRequest` gives each request).
        tls: Which CAs are trusted, and the ALPN offered.
    """

    def __init__(self, host: str, *, timeout: float | None, tls: ssl.SSLContext) -> None:
        super().__init__(host, timeout=timeout, context=tls)
        self._tls = tls

    def connect(self) -> None:
        """Tries each address of the host in turn; the last failure is raised."""
        failure: OSError = OSError(f"no address for {self.host}")
        for family, kind, proto, _, address in socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM):
            plain = socket.socket(family, kind, proto)
            try:
                secure = self._tls.wrap_socket(plain, server_hostname=self.host)
            except BaseException:
                plain.close()
                raise
            try:
                secure.settimeout(self.timeout)
                secure.connect(address)  # TCP, then the TLS handshake
                secure.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                secure.close()
                failure = exc
                continue
            except BaseException:
                secure.close()
                raise
            self.sock = secure
            return
        raise failure


class _WrappedFirstHandler(urllib.request.HTTPSHandler):
    """urllib's HTTPS handler, opening `_WrappedFirstConnection`s."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        super().__init__(context=tls)
        self._tls = tls

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        """Opens `req` over a connection wrapped before it connects."""
        return self.do_open(functools.partial(_WrappedFirstConnection, tls=self._tls), req)


class UrllibAuthRequest(google.auth.transport.Request):
    """google-auth's transport interface over the standard library's urllib (HTTP/1.1).

    One POST an hour needs no HTTP/2 and no connection pool; the standard
    library keeps the server's install free of an HTTP client of its own.

    Args:
        context: TLS settings: which CAs are trusted (None: the system store).
        default_timeout_s: Timeout when google-auth passes none.
    """

    def __init__(self, *, context: ssl.SSLContext | None = None, default_timeout_s: float = 30.0) -> None:
        context = context or ssl.create_default_context()
        context.set_alpn_protocols(["http/1.1"])
        # No proxy from the environment: the token endpoint is called directly, as the push services are.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _WrappedFirstHandler(context))
        self._default_timeout_s = default_timeout_s

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> UrllibAuthResponse:
        """Performs one request for google-auth.

        Raises:
            google.auth.exceptions.TransportError: The request failed on the network.
        """
        data = body.encode("utf-8") if isinstance(body, str) else body
        request = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)
        try:
            with self._opener.open(request, timeout=timeout if timeout is not None else self._default_timeout_s) as response:
                return UrllibAuthResponse(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            # An HTTP error status is an answer google-auth reads (invalid_grant, 5xx), not a transport failure.
            with exc:
                return UrllibAuthResponse(exc.code, dict(exc.headers), exc.read())
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            raise google.auth.exceptions.TransportError(type(exc).__name__) from exc

    def close(self) -> None:
        """Nothing to release: each request opens and closes its own connection."""


class FcmAccessTokenSource:
    """Caches one OAuth2 access token for FCM and refreshes it off the event loop.

    Args:
        credentials: google-auth credentials (normally service-account ones with
            the FCM scope).
        request: The transport google-auth refreshes through.
        clock: Epoch seconds; injected so tests can move time.
        refresh_margin_s: Refresh this long before the token expires.
        refresh_timeout_s: Deadline for one refresh.
        metrics: Counts each fetch (`kind="fcm_oauth"`) and whether it worked.
    """

    def __init__(
        self,
        credentials: google.auth.credentials.Credentials,
        *,
        request: google.auth.transport.Request,
        clock: Callable[[], float] = time.time,
        refresh_margin_s: float = 300.0,
        refresh_timeout_s: float = 30.0,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._credentials = credentials
        self._metrics = metrics
        self._request = request
        self._clock = clock
        self._refresh_margin_s = refresh_margin_s
        self._refresh_timeout_s = refresh_timeout_s
        self._token = ""
        self._expires_at = 0.0
        self._refresh_count = 0
        self._lock = asyncio.Lock()

    @classmethod
    def from_service_account_info(
        cls,
        info: Mapping[str, Any],
        *,
        ca_pem: bytes | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin_s: float = 300.0,
        refresh_timeout_s: float = 30.0,
        metrics: Metrics = NULL_METRICS,
    ) -> FcmAccessTokenSource:
        """Builds a source from parsed service-account JSON.

        Args:
            info: The service-account JSON; `client_email`, `private_key` and
                `token_uri` are required. `token_uri` is honoured.
            ca_pem: Extra CA certificates to trust for the token endpoint
                instead of the system store (the emulator's CA).
            clock: Epoch seconds.
            refresh_margin_s: Refresh this long before expiry.
            refresh_timeout_s: Deadline for one refresh.
            metrics: Counts the fetches.
        """
        credentials = service_account.Credentials.from_service_account_info(dict(info), scopes=[FCM_SCOPE])
        context = ssl.create_default_context(cadata=ca_pem.decode("ascii")) if ca_pem is not None else None
        # HTTP/1.1: Google's token endpoint and the emulator's both speak it.
        request = UrllibAuthRequest(context=context, default_timeout_s=refresh_timeout_s)
        return cls(
            credentials,
            request=request,
            clock=clock,
            refresh_margin_s=refresh_margin_s,
            refresh_timeout_s=refresh_timeout_s,
            metrics=metrics,
        )

    @classmethod
    def from_service_account_file(
        cls,
        path: Path,
        *,
        ca_pem: bytes | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin_s: float = 300.0,
        refresh_timeout_s: float = 30.0,
    ) -> FcmAccessTokenSource:
        """Builds a source from a service-account JSON file; see `from_service_account_info`."""
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_service_account_info(
            info,
            ca_pem=ca_pem,
            clock=clock,
            refresh_margin_s=refresh_margin_s,
            refresh_timeout_s=refresh_timeout_s,
        )

    @property
    def refresh_count(self) -> int:
        """How many tokens have been fetched; lets tests assert caching."""
        return self._refresh_count

    def cached(self) -> str | None:
        """The current access token if it is still fresh, else None (no I/O, no await)."""
        return self._token if self._fresh() else None

    async def access_token(self) -> str:
        """Returns a valid access token, fetching one only when needed.

        Raises:
            google.auth.exceptions.RefreshError: The token endpoint refused
                (`retryable` tells whether trying later may help).
            google.auth.exceptions.TransportError: The token endpoint was unreachable.
            TimeoutError: The refresh took longer than refresh_timeout_s.
        """
        if self._fresh():
            return self._token
        async with self._lock:
            # Another task may have refreshed while this one waited for the lock.
            if not self._fresh():
                try:
                    async with asyncio.timeout(self._refresh_timeout_s):
                        await asyncio.to_thread(self._refresh_blocking)
                except Exception:
                    self._metrics.credential_refreshed("fcm_oauth", ok=False)
                    raise
                self._metrics.credential_refreshed("fcm_oauth", ok=True)
            return self._token

    def invalidate(self, rejected: str | None = None) -> None:
        """Forgets the cached token after a 401, so the next call fetches a new one.

        Args:
            rejected: The token the server rejected. When the cache already holds
                a different one (someone else refreshed), nothing is forgotten.
        """
        if rejected is None or rejected == self._token:
            self._token = ""
            self._expires_at = 0.0

    def close(self) -> None:
        """Releases the token endpoint's HTTP client when this source owns one."""
        close = getattr(self._request, "close", None)
        if callable(close):
            close()

    def _fresh(self) -> bool:
        return bool(self._token) and self._clock() < self._expires_at - self._refresh_margin_s

    def _refresh_blocking(self) -> None:
        # Runs in a worker thread; the asyncio lock guarantees one at a time.
        self._credentials.refresh(self._request)
        token = self._credentials.token
        if not token:
            raise google.auth.exceptions.RefreshError("the token endpoint returned no access token")
        expiry = self._credentials.expiry
        if expiry is None:
            lifetime = _UNKNOWN_LIFETIME_S
        else:
            # google-auth keeps a naive UTC expiry computed on the real clock;
            # convert it to a lifetime and re-anchor it on the injected clock.
            lifetime = expiry.replace(tzinfo=UTC).timestamp() - time.time()
        self._token = str(token)
        self._expires_at = self._clock() + lifetime
        self._refresh_count += 1
        log.info("fetched an FCM access token, valid for %.0f s", lifetime)

    def __repr__(self) -> str:
        # Never include the token.
        return f"FcmAccessTokenSource(refreshes={self._refresh_count})"
