"""`WebhookPoster` over httpx: one client (and connection pool) per endpoint; httpx errors end here."""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import httpx

from pushsvc.webhooks.poster import PostFailed


class HttpxPoster:
    """POSTs with httpx, HTTP/1.1, the system trust store plus an optional extra CA."""

    def __init__(self, *, timeout_s: float, ca_pem: bytes | None = None) -> None:
        context = ssl.create_default_context()
        if ca_pem is not None:
            context.load_verify_locations(cadata=ca_pem.decode())
        self._client = httpx.AsyncClient(
            verify=context, timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """See `WebhookPoster.post`; the response body is read and dropped."""
        try:
            response = await self._client.post(url, content=body, headers=dict(headers))
        except httpx.TimeoutException as exc:
            raise PostFailed("timeout", type(exc).__name__) from None
        except (httpx.ConnectError, OSError) as exc:
            raise PostFailed("connect", str(exc)[:200]) from None
        except httpx.HTTPError as exc:
            raise PostFailed("protocol", f"{type(exc).__name__}: {str(exc)[:200]}") from None
        return response.status_code

    async def aclose(self) -> None:
        """See `WebhookPoster.aclose`."""
        await self._client.aclose()
