"""The receipt log of `memory://`: one immutable segment per `append` call, in columns.

One `append` numbers its receipts with consecutive seqs (per app) and nseqs
(per notification), for one notification, with one `expires_at`. So a segment
stores those once, and each receipt field as a column: a tuple of the values,
or a 1-tuple when every receipt of the segment has the same value (status,
reason, attempts... usually do), platform and status as one byte each, `at`
as microseconds in an `array`, and the provider message ids (unique to each
receipt) packed as each platform's shared prefix plus one string of the
remainders (`_texts`). A token costs a pointer: the string is the
registry's. The app's log and the notification's log hold the same segments;
readers find theirs by bisecting the segments' first numbers. The sweep drops
whole segments past `expires_at`, which leaves holes in the numbering, as
deleted documents would.
"""

from __future__ import annotations

import bisect
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate, repeat
from os.path import commonprefix
from typing import Any

from pushsvc import errors, models
from pushsvc.storage.base import LogEntry, ReceiptDraft
from pushsvc.storage.memory.notifications import Queue

_PLATFORMS = tuple(models.Platform)
_PLATFORM_CODE = {p._value_: i for i, p in enumerate(_PLATFORMS)}
_STATUSES = tuple(models.DeliveryStatus)
_STATUS_CODE = {s._value_: i for i, s in enumerate(_STATUSES)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

# A segment is a tuple of numbers, strings, datetimes, bytes, arrays and tuples of them: untracked by the
# cyclic garbage collector, so a long log adds nothing to its passes.
_Seg = tuple[Any, ...]
"""(seq0, nseq0, count, app_id, notification_id, expires_at, tokens, platforms, user_ids, statuses,
provider_message_ids, provider_statuses, reasons, attempts, tokens_removed, ats). `tokens` has one entry per
receipt, None for a filler (a retried token's number, kept so the log stays dense); provider_message_ids is
`_texts`'s, ats `_times`'s, every other column `_column`'s or `_codes`'s."""
_SEQ0, _NSEQ0, _COUNT, _APP, _NID, _EXPIRES, _TOKENS = range(7)


def _column(values: list[Any]) -> tuple[Any, ...]:
    """The values, or only the first when all are equal."""
    first = values[0]
    return (first,) if values.count(first) == len(values) else tuple(values)


def _codes(values: list[Any], code: dict[Any, int]) -> bytes:
    """Enum members as one byte each (`code` is keyed by their `_value_`: an enum member hashes in Python, its
    value in C), or one byte when all are equal (codes, not members: a tuple holding an enum member stays
    tracked by the garbage collector)."""
    first = values[0]
    if values.count(first) == len(values):
        return bytes((code[first._value_],))
    return bytes([code[v._value_] for v in values])


def _texts(values: list[str], codes: bytes) -> tuple[Any, ...]:
    """Strings unique to each receipt (provider message ids), packed: `(value,)` when all are equal, else
    `(prefixes, chars, ends)`: per platform code the prefix its non-empty values share (shorter than each),
    then every value's remainder concatenated into one string, with where each remainder ends in an
    `array("I")`; an empty remainder is "". `codes` is the platform column (`_codes`).

    An apns-id or FCM message name is a 36-60 character string, about 100 bytes as an object (and 8 for
    the pointer); a batch's ids share most of their characters (one provider's random prefix and a counter,
    or "projects/<project>/messages/"), so what stays is a few bytes each.
    """
    first = values[0]
    if values.count(first) == len(values):
        return (first,)
    prefixes = [""] * len(_PLATFORMS)
    one_platform = len(codes) == 1
    for code in set(codes):
        prefixes[code] = _shared_prefix(values if one_platform else [v for v, c in zip(values, codes, strict=True) if c == code])
    if one_platform:
        cut = len(prefixes[codes[0]])
        rests = [v[cut:] for v in values]
    else:
        cuts = [len(prefix) for prefix in prefixes]
        rests = [v[cuts[c]:] for v, c in zip(values, codes, strict=True)]
    return (tuple(prefixes), "".join(rests), array("I", accumulate(map(len, rests))))


def _shared_prefix(values: list[str]) -> str:
    """The prefix all non-empty `values` share, shorter than each of them ("" is stored as an empty
    remainder, so it must not cut the others' prefix, and a non-empty value must leave one)."""
    present = [v for v in values if v]
    return commonprefix(present)[: min(map(len, present)) - 1] if present else ""


def _text_values(column: tuple[Any, ...], platforms: Sequence[int], first: int, stop: int) -> Iterable[str]:
    """A `_texts` column's values for entries `first` ≤ k < `stop` (`platforms`: the segment's platform codes)."""
    if len(column) == 1:
        return repeat(column[0], stop - first)
    prefixes, chars, ends = column
    one_platform = len(platforms) == 1
    out = []
    for k in range(first, stop):
        rest = chars[ends[k - 1] if k else 0 : ends[k]]
        out.append(prefixes[platforms[0 if one_platform else k]] + rest if rest else "")
    return out


def _times(values: list[datetime]) -> tuple[datetime, ...] | array[int]:
    """UTC datetimes as microseconds since the epoch (8 bytes, not a 48-byte object); others as they are."""
    first = values[0]
    if values.count(first) == len(values):
        return (first,)
    if all(v.tzinfo is UTC for v in values):
        return array("q", [(v - _EPOCH) // _US for v in values])
    return tuple(values)


def _values(column: Sequence[Any] | array[int], first: int, stop: int) -> Iterable[Any]:
    """A column's values for entries `first` ≤ k < `stop`."""
    return repeat(column[0], stop - first) if len(column) == 1 else column[first:stop]


def _receipts(seg: _Seg, first: int, stop: int) -> list[LogEntry]:
    """The entries `first` ≤ k < `stop` of a segment."""
    seq0, nseq0, _, app_id, nid, _, tokens, platforms, users, statuses, mids, pstatuses, reasons, attempts, \
        removed, ats = seg
    micros = isinstance(ats, array)
    out = []
    last_at: Any = None
    when: Any = None
    seq, nseq = seq0 + first, nseq0 + first
    for token, p, user, status, mid, pstatus, reason, tries, gone, at in zip(
        tokens[first:stop], _values(platforms, first, stop), _values(users, first, stop),
        _values(statuses, first, stop), _text_values(mids, platforms, first, stop), _values(pstatuses, first, stop),
        _values(reasons, first, stop), _values(attempts, first, stop), _values(removed, first, stop),
        _values(ats, first, stop), strict=True,
    ):
        if token is None:
            out.append(LogEntry(seq, nseq, None))
        else:
            if at != last_at:  # receipts of a batch often share their millisecond: one datetime for them
                last_at, when = at, _EPOCH + _US * at if micros else at
            out.append(LogEntry(seq, nseq, models.Receipt(
                f"{seq}.{nseq}", nid, app_id, token, _PLATFORMS[p], user, _STATUSES[status], mid, pstatus, reason,
                tries, gone, when,
            )))
        seq += 1
        nseq += 1
    return out


class Log:
    """Segments in number order (seq for an app's log, nseq for a notification's); swept ones leave holes."""

    __slots__ = ("_by", "_segments", "_starts", "length")

    def __init__(self, by: int) -> None:
        self._by = by
        """The segment field that numbers this log: `_SEQ0` or `_NSEQ0`."""
        self._starts: list[int] = []
        self._segments: list[_Seg] = []
        self.length = 0

    def add(self, seg: _Seg) -> None:
        self._starts.append(seg[self._by])
        self._segments.append(seg)
        self.length += seg[_COUNT]

    def read(self, after: int, limit: int) -> list[LogEntry]:
        """Entries numbered after `after`, fillers included, at most `limit`; swept ranges are skipped."""
        out: list[LogEntry] = []
        i = max(0, bisect.bisect_right(self._starts, after) - 1)
        while i < len(self._segments) and len(out) < limit:
            seg = self._segments[i]
            first = max(0, after + 1 - self._starts[i])
            out += _receipts(seg, first, min(seg[_COUNT], first + limit - len(out)))
            i += 1
        return out

    def sweep(self, now: datetime) -> list[_Seg]:
        """Drops the segments past `expires_at`; returns them."""
        gone = [s for s in self._segments if s[_EXPIRES] < now]
        if gone:
            kept = [(start, s) for start, s in zip(self._starts, self._segments, strict=True) if s[_EXPIRES] >= now]
            self._starts = [start for start, _ in kept]
            self._segments = [s for _, s in kept]
        return gone

    def __bool__(self) -> bool:
        return bool(self._segments)


class MemoryReceiptStore:
    """`ReceiptStore` over `Queue`: one receipt per (notification, platform, token), dense numbers."""

    def __init__(self, queue: Queue) -> None:
        self._q = queue
        self._seen: dict[tuple[str, str], dict[str, None]] = {}
        """(notification_id, platform value) → the tokens that have a receipt (the registry's own strings)."""
        self._app_logs: dict[str, Log] = {}
        self._note_logs: dict[str, Log] = {}

    async def append(
        self, app_id: str, notification_id: str, drafts: Sequence[ReceiptDraft], expires_at: datetime
    ) -> list[models.Receipt]:
        """See `ReceiptStore.append`."""
        if not drafts:
            return []
        note = self._q.notes.get(notification_id)
        if note is None:
            raise errors.NotFound(f"notification {notification_id} is gone")
        app_log = self._app_logs.get(app_id)
        if app_log is None:
            app_log = self._app_logs[app_id] = Log(_SEQ0)
        note_log = self._note_logs.get(notification_id)
        if note_log is None:
            note_log = self._note_logs[notification_id] = Log(_NSEQ0)
        statuses = self._q.statuses.setdefault(notification_id, Counter())
        seen_by_platform: dict[models.Platform, dict[str, None]] = {}
        seq0, nseq0 = app_log.length + 1, note.receipt_seq + 1
        tokens: list[str | None] = []
        new = []
        for k, d in enumerate(drafts):
            seen = seen_by_platform.get(d.platform)
            if seen is None:
                seen = seen_by_platform[d.platform] = self._seen.setdefault((notification_id, d.platform.value), {})
            if d.token in seen:
                tokens.append(None)
                continue
            seen[d.token] = None
            tokens.append(d.token)
            statuses[d.status] += 1
            new.append(models.Receipt(
                f"{seq0 + k}.{nseq0 + k}", notification_id, app_id, d.token, d.platform, d.user_id, d.status,
                d.provider_message_id, d.provider_status, d.reason, d.attempts, d.token_removed, d.at,
            ))
        platforms = _codes([d.platform for d in drafts], _PLATFORM_CODE)
        seg = (
            seq0, nseq0, len(drafts), app_id, notification_id, expires_at, tuple(tokens), platforms,
            _column([d.user_id for d in drafts]),
            _codes([d.status for d in drafts], _STATUS_CODE),
            _texts([d.provider_message_id for d in drafts], platforms),
            _column([d.provider_status for d in drafts]),
            _column([d.reason for d in drafts]),
            _column([d.attempts for d in drafts]),
            _column([d.token_removed for d in drafts]),
            _times([d.at for d in drafts]),
        )
        app_log.add(seg)
        note_log.add(seg)
        note.receipt_seq += len(drafts)
        return new

    async def read_app(self, app_id: str, after_seq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_app`."""
        log = self._app_logs.get(app_id)
        return [] if log is None else log.read(after_seq, limit)

    async def read_notification(self, app_id: str, notification_id: str, after_nseq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_notification`."""
        note = self._q.notes.get(notification_id)
        log = self._note_logs.get(notification_id)
        if log is None or note is None or note.view.app_id != app_id:
            return []
        return log.read(after_nseq, limit)

    async def last_seq(self, app_id: str) -> int:
        """See `ReceiptStore.last_seq`."""
        log = self._app_logs.get(app_id)
        return 0 if log is None else log.length

    async def count_by_status(self, notification_id: str) -> dict[models.DeliveryStatus, int]:
        """See `ReceiptStore.count_by_status`."""
        return dict(self._q.statuses.get(notification_id, {}))

    def sweep(self, now: datetime) -> int:
        """Drops receipts past retention, and forgets their tokens; returns how many went.

        Forgetting them is what a unique index does when a TTL monitor deletes
        the documents: once its receipt is gone, a token retried for the same
        notification is logged again. It keeps the per-receipt state bounded
        by retention, not by the process's life.
        """
        for nid in [nid for nid, log in self._note_logs.items() if log.sweep(now) and not log]:
            del self._note_logs[nid]  # its numbers live on in the notification's receipt_seq
        removed = 0
        for log in self._app_logs.values():  # kept when empty: its length is the app's last seq
            for seg in log.sweep(now):
                removed += self._forget(seg)
        return removed

    def _forget(self, seg: _Seg) -> int:
        """Takes a swept segment's tokens out of the seen sets; returns how many receipts (not fillers) it held."""
        nid, tokens, platforms = seg[_NID], seg[_TOKENS], seg[_TOKENS + 1]
        forgotten = 0
        for k, token in enumerate(tokens):
            if token is None:
                continue
            key = (nid, _PLATFORMS[platforms[0 if len(platforms) == 1 else k]].value)
            seen = self._seen.get(key)
            if seen is not None:
                seen.pop(token, None)
                if not seen:
                    del self._seen[key]
            forgotten += 1
        return forgotten


__all__ = ["Log", "MemoryReceiptStore"]
