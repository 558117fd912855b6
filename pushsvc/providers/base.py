"""The provider port: send a batch of deliveries to APNs or FCM and classify each answer.

Every provider adapter conforms to `Provider`. A batch crosses the port as one
call and its results come back as one list, in order: the dispatcher hands a
provider all of a batch's targets of its platform at once, and the adapter
hands them to the transport at once (no task or future per token). Adapters
never retry on their
own (except the protocol-mandated cases documented on each adapter, such as
APNs ExpiredProviderToken): retry policy lives in the dispatcher, which acts
only on `Outcome`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pushsvc import models


class Outcome(enum.Enum):
    """How the dispatcher must treat a provider answer."""

    DELIVERED = "delivered"
    """Accepted by the provider."""
    RETRYABLE = "retryable"
    """429, 5xx, connection loss: try again later (honour retry_after_s)."""
    TOKEN_INVALID = "token_invalid"
    """The token is dead: remove it from the registry."""
    CREDENTIALS_REJECTED = "credentials_rejected"
    """The app's credentials are rejected: fail the whole notification."""
    PERMANENT = "permanent"
    """Any other failure: do not retry."""


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderResult:
    """The classified answer to one delivery attempt."""

    outcome: Outcome
    provider_status: int = 0
    """HTTP status; 0 when no response was received."""
    reason: str = ""
    """APNs reason, FCM error code, or a short transport error name."""
    provider_message_id: str = ""
    """apns-id, or the FCM message name."""
    retry_after_s: float | None = None
    """The provider's Retry-After, when it sent one."""
    invalid_since: datetime | None = None
    """APNs 410 timestamp: when Apple learned the token was invalid (UTC)."""
    credential_stale: bool = False
    """The provider rejected the credential as stale (APNs ExpiredProviderToken,
    an FCM OAuth 401): one refresh and resend may succeed (`credentials.send_authorized`)."""
    outcome_unknown: bool = False
    """No answer came back after the request may have reached the provider (a lost
    connection, a deadline): it may have been accepted."""


@dataclasses.dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A message rendered once per notification for one platform.

    `body` is JSON-compatible and is what gets persisted with the notification,
    so that any replica can send it without re-rendering.
    """

    platform: models.Platform
    body: Mapping[str, Any]
    """APNs: {"headers": {...}, "payload": "<json text>"}; FCM: the `message` object without a target."""
    size_bytes: int
    """The size the provider limits (APNs payload bytes; FCM message bytes)."""
    limit_bytes: int
    """The provider's limit for this message."""


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One token's share of a notification."""

    token: str
    rendered: RenderedMessage
    apns_environment: models.ApnsEnvironment = models.ApnsEnvironment.PRODUCTION
    expires_at: datetime | None = None
    """The notification's expiry; APNs gets it as apns-expiration, FCM as ttl."""


class Provider(Protocol):
    """Sends deliveries to one provider for one app, a batch at a time."""

    @property
    def platform(self) -> models.Platform:
        """The platform this provider serves."""
        ...

    async def send_batch(self, deliveries: Sequence[Delivery]) -> list[ProviderResult]:
        """Sends every delivery and classifies each answer; the results are in the deliveries' order.

        Never raises for provider or network errors. Cancelling the call
        withdraws the requests still in flight.
        """
        ...

    async def aclose(self) -> None:
        """Closes connections; the provider is unusable afterwards."""
        ...
