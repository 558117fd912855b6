"""The bounded vocabulary of delivery reasons, for metric labels.

A receipt's `reason` is whatever the provider said: an APNs reason, an FCM
error code or google.rpc status, a transport failure's short name, or one of
the dispatcher's own. Each channel lists its vocabulary in the registry. Most of it is a documented, fixed set, but an FCM
`ErrorInfo.reason` or an undocumented APNs reason is free text from the other
side of the network. A metric label must not grow with that text, so anything
outside the documented set is counted as "other".
"""

from __future__ import annotations

from pushsvc.channels import registry
from pushsvc.providers import transport

NONE = "none"
"""The label of a delivery without a reason (delivered at the first try)."""
OTHER = "other"
"""The label of any reason outside `KNOWN`."""

_TRANSPORT = (
    transport.TransportError, transport.ConnectFailed, transport.OutcomeUnknown,
    transport.ConnectionLost, transport.DeadlineExceeded, transport.TransportClosed, transport.QueueTimeout,
)

_OWN = ("NoCredentials", "NotAttempted", "NotificationFailed", "TtlExpired", "OAuthRefreshError", "OAuthTransportError", "OAuthTimeout")
"""Reasons the dispatcher and the adapters give themselves."""

KNOWN: frozenset[str] = frozenset(
    {*(r for c in registry.CHANNELS for r in c.reasons), *(t.reason for t in _TRANSPORT), *_OWN}
)
"""Every reason that is counted under its own name."""


def label(reason: str) -> str:
    """The metric label of a reason: itself when known, "none" when empty, else "other"."""
    if not reason:
        return NONE
    return reason if reason in KNOWN else OTHER
