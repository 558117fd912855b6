"""The domain error hierarchy. Each transport maps it to its own status codes.

    PushError
    ├── InvalidArgument        bad input; carries one violation per bad field
    ├── NotFound               unknown notification
    ├── FailedPrecondition     e.g. the app has no credentials for a targeted platform
    ├── ResourceExhausted      back-pressure: the queue is full
    ├── PermissionDenied       the caller may not act on this app
    ├── Unauthenticated        the caller did not prove who it is
    ├── StoreUnavailable       the store cannot be reached
    └── ShuttingDown           this replica is draining; retry on another

Domain errors never carry gRPC or HTTP codes; `pushsvc.rpc.status` holds the
single mapping table.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field, named by its path in the request message (e.g. `target.devices[2].token`)."""

    field: str
    description: str


class PushError(Exception):
    """Base of every error pushsvc reports to a caller."""


class InvalidArgument(PushError):
    """The request is malformed; `violations` names each bad field."""

    def __init__(self, violations: list[FieldViolation] | FieldViolation) -> None:
        if isinstance(violations, FieldViolation):
            violations = [violations]
        self.violations: tuple[FieldViolation, ...] = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations[:5])
        more = len(self.violations) - 5
        if more > 0:
            summary += f" (and {more} more)"
        super().__init__(f"invalid request: {summary}")


class NotFound(PushError):
    """The named object does not exist (for this app)."""


class FailedPrecondition(PushError):
    """The request is valid but the system is not in a state to serve it."""


class ResourceExhausted(PushError):
    """Back-pressure: the caller should retry later."""


class PermissionDenied(PushError):
    """The caller is authenticated but may not do this."""


class Unauthenticated(PushError):
    """The caller did not authenticate."""


class StoreUnavailable(PushError):
    """The store cannot be reached; the request may be retried."""


class ShuttingDown(PushError):
    """This replica is draining; the caller should retry (or resume a stream) elsewhere."""
