"""`WebhookPoster` over the providers' transport (libcurl): transport errors end here.

Why not an HTTP client library: the server already carries libcurl for the
push services, with HTTP/2 where offered and HTTP/1.1 otherwise, deadlines,
and its errors mapped to a few kinds; a second client (httpx brings httpcore,
h11 and anyio) would only add to the server's install for a few POSTs a second.
"""

from __future__ import annotations

from collections.abc import Mapping

from pushsvc.clock import Clock
from pushsvc.providers.transport import ConnectFailed, DeadlineExceeded, Http2Transport, QueueTimeout, TlsConfig, TransportError
from pushsvc.webhooks.poster import PostFailed


class TransportPoster:
    """POSTs through one `Http2Transport` per endpoint: the system trust store, or the endpoint's own CA instead."""

    def __init__(self, *, timeout_s: float, clock: Clock, ca_pem: bytes | None = None) -> None:
        self._transport = Http2Transport(
            tls=TlsConfig(ca_pem=ca_pem),
            clock=clock,
            request_timeout_s=timeout_s,
            connect_timeout_s=timeout_s,
            user_agent="pushsvc-webhooks",
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """See `WebhookPoster.post`; the response body is read and dropped."""
        try:
            response = await self._transport.post(url, [f"{name}: {value}" for name, value in headers.items()], body)
        except (DeadlineExceeded, QueueTimeout) as exc:
            raise PostFailed("timeout", type(exc).__name__) from None
        except ConnectFailed as exc:
            raise PostFailed("connect", str(exc)[:200]) from None
        except TransportError as exc:
            raise PostFailed("protocol", f"{type(exc).__name__}: {str(exc)[:200]}") from None
        return response.status

    async def aclose(self) -> None:
        """See `WebhookPoster.aclose`."""
        await self._transport.aclose()
