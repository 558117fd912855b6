"""The edge webhooks leave by: one POST to one endpoint (the port; `httpclient` is the adapter over the providers' transport)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class PostFailed(Exception):
    """No HTTP answer came back; `reason` is one of a fixed few ("timeout", "connect", "protocol")."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class WebhookPoster(Protocol):
    """Posts a body to one endpoint."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """Sends one POST; returns the HTTP status code.

        Raises:
            PostFailed: no answer (connection refused, timed out, broken).
        """
        ...

    async def aclose(self) -> None:
        """Closes its connections."""
        ...
