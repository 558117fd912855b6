"""Clocks: the system one, and a manual one for tests and simulations."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time for business decisions (leases, schedules, ttl, staleness)."""

    def now(self) -> datetime:
        """Current UTC time, timezone-aware, truncated to milliseconds (MongoDB's precision)."""
        ...


def _ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """See `Clock.now`."""
        return _ms(datetime.now(UTC))

    def time(self) -> float:
        """Seconds since the epoch, for code that wants a float clock."""
        return time.time()


class ManualClock:
    """A clock that moves only when told to; starts at the real time unless given one."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _ms(start or datetime.now(UTC))

    def now(self) -> datetime:
        """See `Clock.now`."""
        return self._now

    def time(self) -> float:
        """Seconds since the epoch."""
        return self._now.timestamp()

    def advance(self, seconds: float) -> None:
        """Moves the clock forward."""
        self._now = _ms(self._now + timedelta(seconds=seconds))
