"""Huawei OAuth 2.0 client credentials: one access token per app, reused until shortly before it expires."""

from __future__ import annotations

import asyncio
import json
import urllib.parse

from pushsvc.clock import Clock
from pushsvc.providers import base
from pushsvc.providers.transport import Transport, TransportError

REFRESH_BEFORE_S = 300
"""A token is replaced this long before `expires_in` runs out (Huawei issues 3,600 s)."""


class TokenUnavailable(Exception):
    """No access token: the result every delivery of the batch gets."""

    def __init__(self, result: base.ProviderResult) -> None:
        super().__init__(result.reason)
        self.result = result


class HmsTokenSource:
    """Fetches and caches the app's access token; one fetch at a time."""

    def __init__(self, *, transport: Transport, token_url: str, client_id: str, client_secret: str, clock: Clock) -> None:
        self._transport = transport
        self._url = token_url
        self._form = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        ).encode()
        self._clock = clock
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def access_token(self) -> str:
        """The cached token, or a new one; raises TokenUnavailable."""
        if self._token and self._clock.time() < self._expires_at - REFRESH_BEFORE_S:
            return self._token
        async with self._lock:
            if self._token and self._clock.time() < self._expires_at - REFRESH_BEFORE_S:
                return self._token
            return await self._fetch()

    def invalidate(self, rejected: str) -> None:
        """Forgets a token Push Kit rejected (unless a newer one replaced it already)."""
        if self._token == rejected:
            self._token = ""

    async def _fetch(self) -> str:
        self.fetches += 1
        try:
            response = await self._transport.post(self._url, ["content-type: application/x-www-form-urlencoded"], self._form)
        except TransportError:
            raise TokenUnavailable(base.ProviderResult(outcome=base.Outcome.RETRYABLE, reason="OAuthTransportError")) from None
        try:
            body = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            body = None
        if response.status == 200 and isinstance(body, dict) and isinstance(body.get("access_token"), str):
            expires_in = body.get("expires_in")
            lifetime = float(expires_in) if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) else 3600.0
            self._token = body["access_token"]
            self._expires_at = self._clock.time() + lifetime
            return self._token
        # 400 error 1101 is a bad client id or secret; 5xx (503: over the quota) may pass.
        outcome = base.Outcome.RETRYABLE if response.status >= 500 or response.status == 429 else base.Outcome.CREDENTIALS_REJECTED
        raise TokenUnavailable(base.ProviderResult(outcome=outcome, provider_status=response.status, reason="OAuthRefreshError"))
