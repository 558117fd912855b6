"""The bounded vocabulary of delivery reasons, for metric labels.

A receipt's `reason` is whatever the provider said: an APNs reason, an FCM
error code or google.rpc status, a transport failure's short name, or one of
the dispatcher's own. Most of it is a documented, fixed set, but an FCM
`ErrorInfo.reason` or an undocumented APNs reason is free text from the other
side of the network. A metric label must not grow with that text, so anything
outside the documented set is counted as "other".
"""

from __future__ import annotations

from pushsvc.providers import transport
from pushsvc.providers.aps import ApnsReason
from pushsvc.providers.fcm import FcmErrorCode

NONE = "none"
"""The label of a delivery without a reason (delivered at the first try)."""
OTHER = "other"
"""The label of any reason outside `KNOWN`."""

_GOOGLE_RPC_CODES = (
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)
"""google.rpc.Code names: FCM's `error.status` when its body carries no FcmError code."""

_TRANSPORT = (
    transport.TransportError, transport.ConnectFailed, transport.OutcomeUnknown,
    transport.ConnectionLost, transport.DeadlineExceeded, transport.TransportClosed, transport.QueueTimeout,
)

_OWN = ("NoCredentials", "NotAttempted", "NotificationFailed", "TtlExpired", "OAuthRefreshError", "OAuthTransportError", "OAuthTimeout")
"""Reasons the dispatcher and the adapters give themselves."""

KNOWN: frozenset[str] = frozenset(
    {*(r.value for r in ApnsReason), *(c.value for c in FcmErrorCode), *_GOOGLE_RPC_CODES,
     *(t.reason for t in _TRANSPORT), *_OWN}
)
"""Every reason that is counted under its own name."""


def label(reason: str) -> str:
    """The metric label of a reason: itself when known, "none" when empty, else "other"."""
    if not reason:
        return NONE
    return reason if reason in KNOWN else OTHER
