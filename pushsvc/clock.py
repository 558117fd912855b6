"""Clocks: the system one, and a manual one for tests and simulations.

There is one clock per process, injected everywhere (service, dispatcher,
receipt feed, providers and their credentials). It answers three questions:
`now()` for business decisions stored with data, `time()` for the same wall
time as epoch seconds (JWT iat, OAuth expiry, Retry-After dates), and
`monotonic()` for measuring intervals that must not jump with the wall clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall-clock and monotonic time, injected wherever time matters."""

    def now(self) -> datetime:
        """Current UTC time, timezone-aware, truncated to milliseconds (MongoDB's precision)."""
        ...

    def time(self) -> float:
        """The same wall time as `now()`, as seconds since the epoch (not truncated)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences mean anything."""
        ...


def _ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """See `Clock.now`."""
        return _ms(datetime.now(UTC))

    def time(self) -> float:
        """See `Clock.time`."""
        return time.time()

    def monotonic(self) -> float:
        """See `Clock.monotonic`."""
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; starts at the real time unless given one.

    Wall and monotonic time advance together, so code that mixes them sees a
    consistent world; a jump back moves wall time only, as on a real machine.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _ms(start or datetime.now(UTC))
        self._monotonic = 0.0

    def now(self) -> datetime:
        """See `Clock.now`."""
        return self._now

    def time(self) -> float:
        """See `Clock.time`."""
        return self._now.timestamp()

    def monotonic(self) -> float:
        """See `Clock.monotonic`."""
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Moves wall time by `seconds` (negative: a wall-clock jump back); monotonic time only ever forward."""
        self._now = _ms(self._now + timedelta(seconds=seconds))
        self._monotonic += max(0.0, seconds)
