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
        webpush_requests: Requests to Web Push endpoints (any outcome).
        hms_requests: Requests to the fake Huawei Push Kit and its token endpoint (any outcome).
    """

    apns_requests: int = 0
    fcm_requests: int = 0
    oauth_tokens_issued: int = 0
    oauth_requests: int = 0
    webpush_requests: int = 0
    hms_requests: int = 0

    def to_json(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict."""
        return dataclasses.asdict(self)
