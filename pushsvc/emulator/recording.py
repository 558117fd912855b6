"""Recorded runs: the inbox as JSON lines, loaded back to check a team's assertions offline.

Record during a test run, then keep the file::

    curl -s --cacert ca.pem "https://127.0.0.1:8443/_emulator/inbox?format=jsonl&rejected=1" > run.jsonl

Each line is one inbox entry (``platform``, ``token``, ``environment``,
``headers``, ``payload``, ``message_id``, ``received_at``) plus ``status``
and ``reason``: 200 and "" for accepted notifications; with ``rejected=1``
the scenario's error answers (test tokens included) are there too, in
arrival order.

Check it later, with no emulator running, from Python::

    from pushsvc.emulator import recording

    run = recording.load("run.jsonl")
    run.expect(token="quota-alice-pixel", status=429, count=1)
    run.expect(platform="apns", title="Hello", at_least=1)

or from the shell, with the expectations in TOML (exit status 1 if any fails)::

    pushsvc emulator replay run.jsonl --expect expectations.toml

    # expectations.toml
    [[expect]]
    token = "quota-alice-pixel"
    status = 200
    count = 1

An expectation selects records by any of ``platform``, ``token``, ``prefix``
(of the token), ``app`` (APNs topic or FCM project), ``environment``,
``status``, ``reason`` and the displayed ``title``, ``subtitle``, ``body``,
``badge``, ``sound``, ``image``, ``category``, and pushsvc's
``notification_id`` (see :mod:`.display`), and
bounds how many there are: ``count`` (exactly), ``at_least``, ``at_most``;
with no bound, at least one.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .display import Display, display_of

SELECTORS = frozenset({"platform", "token", "prefix", "app", "environment", "status", "reason"})
DISPLAY_SELECTORS = frozenset({"title", "subtitle", "body", "badge", "sound", "image", "category", "notification_id"})
BOUNDS = frozenset({"count", "at_least", "at_most"})


class RecordingError(ValueError):
    """A recording or an expectations file that cannot be read (says where)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One recorded request: an inbox entry and the status it was answered with."""

    platform: str
    token: str
    environment: str
    headers: dict[str, str]
    payload: dict[str, Any]
    message_id: str
    received_at: float
    status: int = 200
    reason: str = ""

    @property
    def display(self) -> Display:
        """What a phone would show for it."""
        return display_of(self.platform, self.headers, self.payload, self.message_id)

    def matches(self, selectors: Mapping[str, Any]) -> bool:
        """True if every selector (expectation keys other than bounds) holds."""
        display: Display | None = None
        for key, wanted in selectors.items():
            if key == "prefix":
                if not self.token.startswith(str(wanted)):
                    return False
            elif key == "app" or key in DISPLAY_SELECTORS:
                display = display or self.display
                if getattr(display, key) != wanted:
                    return False
            elif getattr(self, key) != wanted:
                return False
        return True


class Recording:
    """The records of one run, in arrival order."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def select(self, **selectors: Any) -> list[Record]:
        """The records every given selector matches (module docstring)."""
        _check_keys(selectors, SELECTORS | DISPLAY_SELECTORS, "selector")
        return [r for r in self.records if r.matches(selectors)]

    def check(self, **expectation: Any) -> str | None:
        """Check one expectation; return why it fails, or None."""
        _check_keys(expectation, SELECTORS | DISPLAY_SELECTORS | BOUNDS, "expectation key")
        bounds = {k: expectation.pop(k) for k in list(expectation) if k in BOUNDS}
        found = len(self.select(**expectation))
        exact, low, high = bounds.get("count"), bounds.get("at_least"), bounds.get("at_most")
        if exact is None and low is None and high is None:
            low = 1
        what = ", ".join(f"{k}={v!r}" for k, v in expectation.items()) or "any record"
        if exact is not None and found != exact:
            return f"{what}: expected exactly {exact}, found {found}"
        if low is not None and found < low:
            return f"{what}: expected at least {low}, found {found}"
        if high is not None and found > high:
            return f"{what}: expected at most {high}, found {found}"
        return None

    def expect(self, **expectation: Any) -> None:
        """Like :meth:`check`, raising AssertionError with the reason."""
        problem = self.check(**expectation)
        if problem is not None:
            raise AssertionError(problem)


def _check_keys(given: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    for key in given:
        if key not in allowed:
            raise RecordingError(f"unknown {what} {key!r} (expected one of {', '.join(sorted(allowed))})")


def loads(text: str) -> Recording:
    """Parse JSON lines (blank lines skipped).

    Raises:
        RecordingError: A line that is not a recorded entry (names the line).
    """
    records = []
    fields = {f.name for f in dataclasses.fields(Record)}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            records.append(Record(**{k: v for k, v in document.items() if k in fields}))
        except (ValueError, TypeError) as exc:
            raise RecordingError(f"line {number}: not an inbox entry ({exc})") from None
    return Recording(records)


def load(path: str | Path) -> Recording:
    """Read a recording written from ``GET /_emulator/inbox?format=jsonl``."""
    return loads(Path(path).read_text("utf-8"))


def load_expectations(text: str) -> list[dict[str, Any]]:
    """Parse an expectations TOML file (``[[expect]]`` tables).

    Raises:
        RecordingError: Not TOML, or an unknown key (names the table).
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecordingError(f"not valid TOML: {exc}") from None
    if set(document) - {"expect"}:
        raise RecordingError(f"unknown top-level key(s): {', '.join(sorted(set(document) - {'expect'}))}")
    tables = document.get("expect", [])
    if not isinstance(tables, list):
        raise RecordingError("expect must be an array of tables ([[expect]])")
    for index, table in enumerate(tables):
        try:
            _check_keys(table, SELECTORS | DISPLAY_SELECTORS | BOUNDS, "key")
        except RecordingError as exc:
            raise RecordingError(f"expect[{index}]: {exc}") from None
    return [dict(t) for t in tables]


def replay(recording: Recording, expectations: list[dict[str, Any]]) -> list[str]:
    """Check every expectation; return the failures (empty: all hold)."""
    return [p for p in (recording.check(**dict(e)) for e in expectations) if p is not None]
