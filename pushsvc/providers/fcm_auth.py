"""The FCM OAuth2 access token: fetched through google-auth, cached, refreshed early.

google-auth does the protocol (an RS256 assertion POSTed to the service
account's `token_uri`, so the emulator's endpoint works); this module adds what
an asyncio gateway needs on top:

- the blocking refresh runs in a worker thread, never on the event loop;
- one asyncio lock, so a burst of concurrent sends triggers one refresh;
- the token is refreshed `refresh_margin_s` before it expires (5 minutes, a
  little earlier than google-auth's own 3m45s), measured on an injected clock;
- `invalidate()` for an OAuth 401, so the next caller fetches a new token.

google-auth's HTTP calls go through `HttpxAuthRequest`, a small
`google.auth.transport.Request` over a synchronous `httpx.Client`, so no
`requests` dependency is needed and the emulator's CA can be trusted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport
import httpx
from google.oauth2 import service_account

from pushsvc.metrics import NULL_METRICS, Metrics

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
"""The OAuth scope for FCM HTTP v1."""

_UNKNOWN_LIFETIME_S = 3600.0
"""Google's usual token lifetime, assumed when the token endpoint omits expires_in."""

log = logging.getLogger("pushsvc.providers.fcm")


class HttpxAuthResponse(google.auth.transport.Response):
    """A google-auth response backed by an `httpx.Response`."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers."""
        return self._response.headers

    @property
    def data(self) -> bytes:
        """The response body."""
        return self._response.content


class HttpxAuthRequest(google.auth.transport.Request):
    """google-auth's transport interface over a synchronous `httpx.Client`.

    Args:
        client: The client to use; its TLS settings decide which CAs are trusted.
        default_timeout_s: Timeout when google-auth passes none.
    """

    def __init__(self, client: httpx.Client, *, default_timeout_s: float = 30.0) -> None:
        self._client = client
        self._default_timeout_s = default_timeout_s

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> HttpxAuthResponse:
        """Performs one request for google-auth.

        Raises:
            google.auth.exceptions.TransportError: The request failed on the network.
        """
        try:
            response = self._client.request(
                method,
                url,
                content=body,
                headers=dict(headers or {}),
                timeout=timeout if timeout is not None else self._default_timeout_s,
            )
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(type(exc).__name__) from exc
        return HttpxAuthResponse(response)

    def close(self) -> None:
        """Closes the underlying client."""
        self._client.close()


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
        verify: ssl.SSLContext | bool = True
        if ca_pem is not None:
            verify = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
        # http2: the emulator's token endpoint speaks HTTP/2 only; Google's speaks both.
        request = HttpxAuthRequest(httpx.Client(verify=verify, http2=True), default_timeout_s=refresh_timeout_s)
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
