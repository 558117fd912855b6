"""Fault injection for provider send requests (never OAuth or control calls)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from .site import ClientConnection

# JSON debug data of the GOAWAY sent by ``goaway_after`` (Apple puts a JSON
# object with a ``reason`` key there, protocols.md A.11).
GOAWAY_DEBUG = b'{"reason":"Shutdown"}'


@dataclasses.dataclass
class Faults:
    """Faults applied to APNs and FCM send requests; mutable at runtime.

    Attributes:
        error_rate: Fraction of valid requests answered with a retryable error
            (APNs ``503 ServiceUnavailable``, FCM ``503 UNAVAILABLE``).
        latency_s: Delay added before every send response.
        goaway_after: If > 0, a GOAWAY (debug data ``{"reason":"Shutdown"}``,
            last stream id = highest stream received) follows the response to
            the N-th send request on a connection; streams already received
            are still answered, newer ones are refused.
        reset_after: If > 0, a connection serves N send requests; when the
            (N+1)-th arrives the TCP connection is dropped without an answer.
    """

    error_rate: float = 0.0
    latency_s: float = 0.0
    goaway_after: int = 0
    reset_after: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Set fields from a JSON object, validating every value first.

        Raises:
            ValueError: Unknown field or a value of the wrong type or range.
        """
        fields = {f.name: f.type for f in dataclasses.fields(self)}
        checked: dict[str, float | int] = {}
        for name, value in changes.items():
            if name not in fields:
                raise ValueError(f"unknown fault {name!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if value < 0:
                raise ValueError(f"{name} must not be negative")
            if name == "error_rate" and value > 1:
                raise ValueError("error_rate must be within [0, 1]")
            if name in ("goaway_after", "reset_after"):
                if value != int(value):
                    raise ValueError(f"{name} must be an integer")
                value = int(value)
            checked[name] = value
        for name, value in checked.items():
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        """The faults as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(slots=True)
class FaultPlan:
    """What to do to one send request, decided up front."""

    reset: bool = False
    goaway: bool = False
    fail: bool = False
    delay_s: float = 0.0


NO_FAULTS = FaultPlan()


def plan_faults(faults: Faults, connection: ClientConnection, rng: random.Random) -> FaultPlan:
    """Count a send request on ``connection`` and decide its faults."""
    connection.send_requests += 1
    count = connection.send_requests
    if not (faults.error_rate or faults.latency_s or faults.goaway_after or faults.reset_after):
        return NO_FAULTS
    return FaultPlan(
        reset=0 < faults.reset_after < count,
        goaway=faults.goaway_after == count,
        fail=faults.error_rate > 0 and rng.random() < faults.error_rate,
        delay_s=faults.latency_s,
    )
