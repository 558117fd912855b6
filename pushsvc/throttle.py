"""LogThrottle: at most one log line per key per interval, with a count of the rest.

Some log lines are caused by callers or by providers, not by the server:
anyone can send a malformed request, and a provider in trouble answers every
request with an error; a line each would let either fill the log.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from pushsvc.clock import Clock


@dataclasses.dataclass
class _Window:
    started_at: float
    suppressed: int = 0


class LogThrottle:
    """Logs the first WARNING per key in each interval and counts the others.

    The next line that gets through says how many were suppressed before it.
    Keys must come from a fixed set (such as method names), never from input,
    so the table stays small.
    """

    def __init__(self, log: logging.Logger, clock: Clock, *, interval_s: float = 1.0) -> None:
        self._log = log
        self._clock = clock
        self._interval_s = interval_s
        self._windows: dict[str, _Window] = {}

    def warning(self, key: str, msg: str, *args: object, extra: Mapping[str, Any] | None = None) -> bool:
        """Logs `msg % args` at WARNING unless `key` was logged less than interval_s ago; returns whether it logged."""
        return self.log(logging.WARNING, key, msg, *args, extra=extra)

    def log(self, level: int, key: str, msg: str, *args: object, extra: Mapping[str, Any] | None = None) -> bool:
        """Logs `msg % args` at `level` unless `key` was logged less than interval_s ago; returns whether it logged.

        `extra` is the log call's (structured fields: `pushsvc.logs.fields`).
        """
        now = self._clock.monotonic()
        window = self._windows.get(key)
        if window is not None and now - window.started_at < self._interval_s:
            window.suppressed += 1
            return False
        suppressed = window.suppressed if window is not None else 0
        self._windows[key] = _Window(started_at=now)
        if suppressed:
            self._log.log(level, msg + " (%d more suppressed)", *args, suppressed, extra=extra)
        else:
            self._log.log(level, msg, *args, extra=extra)
        return True
