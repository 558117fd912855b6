"""Counters tests and benchmarks read to check what the emulator saw."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Stats:
    """Request counters since start.

    Attributes:
        apns_requests: Requests to the APNs device API (any outcome).
        fcm_requests: Requests to the FCM send API (any outcome).
        oauth_tokens_issued: Access tokens issued by the OAuth endpoint.
        oauth_requests: Requests to the OAuth endpoint (any outcome).
        channel_requests: Requests to each channel handler's service (any
            outcome), by channel (:mod:`.handlers`); also read as
            ``<channel>_requests`` and listed so in :meth:`to_json`.
    """

    apns_requests: int = 0
    fcm_requests: int = 0
    oauth_tokens_issued: int = 0
    oauth_requests: int = 0
    channel_requests: dict[str, int] = dataclasses.field(default_factory=dict)

    def register(self, channel: str) -> None:
        """Start counting a channel handler's requests (at 0)."""
        self.channel_requests.setdefault(channel, 0)

    def count(self, channel: str) -> None:
        """One more request to a channel handler's service."""
        self.channel_requests[channel] = self.channel_requests.get(channel, 0) + 1

    def __getattr__(self, name: str) -> int:
        # `stats.<channel>_requests`: a channel's counter by the name to_json gives it.
        channel = name.removesuffix("_requests")
        requests = self.__dict__.get("channel_requests", {})
        if name.endswith("_requests") and channel in requests:
            return int(requests[channel])
        raise AttributeError(name)

    def to_json(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict, a channel's as ``<channel>_requests``."""
        counters = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "channel_requests"}
        return {**counters, **{f"{c}_requests": n for c, n in self.channel_requests.items()}}
