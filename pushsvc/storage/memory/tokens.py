"""The token registry of `memory://`: per bucket, a dict token → row number, and the row's fields in columns.

Layout (see the package docstring for why):

- `Registry.tables[(app_id, platform value)]` is a `Table`. Its `buckets`
  are `models.BUCKETS` dicts, token → row number; the bucket is the token's
  own (`models.token_bucket`), so a key operation hashes the token once more,
  and a partition's scan walks its buckets in order, with nothing else to
  look up. The token string is stored once, as that dict's key.
- A row's fields live in its bucket's columns (`Table.columns[b]`, made with
  the bucket's first token): `last_seen_at` and `created_at` as microseconds
  since the epoch in two `array("q")`, the shared part's id in an
  `array("I")`, and the user id and device id in dicts row → string that
  hold only the rows that have one. Deleted rows are reused (`FREE`).
- The shared part is `(topics, apns_environment value, *attributes)`
  (`TOPICS`, `ENV`, then `models.TOKEN_ATTRIBUTES` from `ATTRS`; so a
  token's locale and timezone are one id and one list index away), interned
  with a count (`Interned`), since most tokens of an app share one.
- The row numbers are ints from one list the registry shares between all
  buckets (`Registry.row`): row 300 of every bucket is the same int object,
  so a dict value costs its pointer, not a 32-byte int.
- The user, topic and device indexes map to the token string (the same
  object as the bucket's key), or to a dict of them when more than one token
  shares the user or topic: no per-token tuple, no set.

Nothing in it is a per-token container the cyclic garbage collector tracks:
dicts of strings and ints, arrays, and tuples of them, which it stops
tracking, so a registry of a million tokens adds nothing to its passes.
"""

from __future__ import annotations

import bisect
from array import array
from collections import Counter
from collections.abc import AsyncGenerator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pushsvc import models
from pushsvc.storage.base import BadCursor, Page, TargetQuery, TargetToken

_Ref = tuple[int, str, str]
"""A token's position in its app, the scan order and the checkpoint: (bucket, platform value, token)."""
_Shared = tuple[Any, ...]
"""(topics, apns_environment value, *the `models.TOKEN_ATTRIBUTES`): interned, most tokens share one."""
_Columns = tuple[Any, ...]
"""A bucket's rows: (seen, created, shared, users, devices, free), at the positions below."""
_Index = dict[str, "str | dict[str, None]"]
"""User id or topic → its token, or a dict of its tokens when there are several (dicts of strings are
untracked by the collector, sets never are)."""

# A bucket's columns (Final, so the type checker knows each one's type).
SEEN: Final = 0
"""array("q"): last_seen_at, microseconds since the epoch."""
CREATED: Final = 1
"""array("q"): created_at, microseconds since the epoch."""
SHARED: Final = 2
"""array("I"): the shared part's id in `Registry.shared`."""
USER: Final = 3
"""dict row → user_id, for the rows that have one."""
DEVICE: Final = 4
"""dict row → device_id, for the rows that have one."""
FREE: Final = 5
"""array("I"): rows of deleted tokens, reused before the columns grow."""
# The shared part's positions: topics, the APNs environment's value, and from ATTRS on the token's attributes.
TOPICS: Final = 0
ENV: Final = 1
ATTRS: Final = 2
LOCALE: Final = ATTRS + models.TOKEN_ATTRIBUTES.index("locale")
"""The locale's position in the shared part (the dispatcher picks a localized variant by it)."""
TIMEZONE: Final = ATTRS + models.TOKEN_ATTRIBUTES.index("timezone")
"""The zone name's position in the shared part (a local-time send's partitions scan by it)."""

_PLATFORM = {p.value: p for p in models.PLATFORMS}
_ENV = {e.value: e for e in models.ApnsEnvironment}
_ORDER = tuple(sorted(models.PLATFORMS, key=lambda p: p.value))
"""Platforms in ref order."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    """An aware datetime as microseconds since the epoch (8 bytes in a column, not a 48-byte object)."""
    return (at - _EPOCH) // _US


def _datetime(micros: int) -> datetime:
    return _EPOCH + _US * micros


class Interned:
    """One object per distinct value while some row holds it, known by a small id that rows store."""

    def __init__(self) -> None:
        self._ids: dict[Any, int] = {}
        self.values: list[Any] = []
        """id → the value (None once no row holds it; its id is then reused)."""
        self._counts: list[int] = []
        self._free: list[int] = []

    def hold(self, value: Any) -> int:
        """The id of the value equal to `value`, counted once more."""
        at = self._ids.get(value)
        if at is None:
            if self._free:
                at = self._free.pop()
                self.values[at] = value
                self._counts[at] = 0
            else:
                at = len(self.values)
                self.values.append(value)
                self._counts.append(0)
            self._ids[value] = at
        self._counts[at] += 1
        return at

    def release(self, at: int) -> None:
        """One holder fewer; the value goes when none is left."""
        self._counts[at] -= 1
        if not self._counts[at]:
            del self._ids[self.values[at]]
            self.values[at] = None
            self._free.append(at)

    def __len__(self) -> int:
        return len(self._ids)


class Table:
    """One app's tokens of one platform, with their indexes."""

    __slots__ = ("buckets", "columns", "count", "devices", "topics", "users")

    def __init__(self) -> None:
        self.buckets: list[dict[str, int]] = [{} for _ in range(models.BUCKETS)]
        """token → row, per bucket."""
        self.columns: list[_Columns | None] = [None] * models.BUCKETS
        """The rows of each bucket; None until its first token."""
        self.users: _Index = {}
        self.topics: _Index = {}
        self.devices: dict[str, str] = {}
        """device_id → the token the device holds (absent once that token is gone)."""
        self.count = 0

    def bucket_columns(self, b: int) -> _Columns:
        """Bucket `b`'s columns, made on first use."""
        cols = self.columns[b]
        if cols is None:
            cols = self.columns[b] = (array("q"), array("q"), array("I"), {}, {}, array("I"))
        return cols


def _index_add(index: _Index, at: str, token: str) -> None:
    held = index.get(at)
    if held is None:
        index[at] = token
    elif isinstance(held, str):
        if held != token:
            index[at] = {held: None, token: None}
    else:
        held[token] = None


def _index_discard(index: _Index, at: str, token: str) -> None:
    held = index.get(at)
    if held is None:
        return
    if isinstance(held, str):
        if held == token:
            del index[at]
        return
    held.pop(token, None)
    if len(held) == 1:
        index[at] = next(iter(held))  # back to the plain form: one token, no dict
    elif not held:
        del index[at]


def _index_get(index: _Index, at: str) -> Iterable[str]:
    held = index.get(at)
    if held is None:
        return ()
    return (held,) if isinstance(held, str) else held


class Registry:
    """Token rows by (app, platform) and bucket, with the secondary indexes the queries need."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], Table] = {}
        self.shared = Interned()
        self._rows: list[int] = []
        """0, 1, 2...: the row numbers every bucket's dict points to (one int object per number)."""

    def table(self, app_id: str, platform: str) -> Table:
        """The (app, platform) table, created empty on first use."""
        table = self.tables.get((app_id, platform))
        if table is None:
            table = self.tables[(app_id, platform)] = Table()
        return table

    def row(self, number: int) -> int:
        """The shared int object for a row number."""
        rows = self._rows
        if number >= len(rows):
            rows.extend(range(len(rows), number + 1024))
        return rows[number]

    def put(self, table: Table, b: int, token: str, reg: models.TokenRegistration, created_us: int | None,
            now_us: int) -> None:
        """Stores `reg` as `token`'s row in bucket `b`, replacing any row there.

        `created_us` is the row's created_at (None: keep the stored one, or `now_us` for a new token).
        """
        bucket = table.buckets[b]
        cols = table.bucket_columns(b)
        row = bucket.get(token)
        if row is None:
            free = cols[FREE]
            if free:
                row = self.row(free.pop())
            else:
                row = self.row(len(cols[SEEN]))
                cols[SEEN].append(0)
                cols[CREATED].append(0)
                cols[SHARED].append(0)
            bucket[token] = row
            table.count += 1
            cols[CREATED][row] = now_us if created_us is None else created_us
        else:
            self._unindex(table, cols, row, token)
            if created_us is not None:
                cols[CREATED][row] = created_us
        cols[SEEN][row] = now_us
        shared = (tuple(reg.topics), reg.apns_environment._value_, *models.token_attributes(reg))
        cols[SHARED][row] = self.shared.hold(shared)
        if reg.user_id:
            cols[USER][row] = reg.user_id
            _index_add(table.users, reg.user_id, token)
        if reg.device_id:
            cols[DEVICE][row] = reg.device_id
        for topic in shared[TOPICS]:
            _index_add(table.topics, topic, token)

    def remove(self, table: Table, token: str) -> bool:
        """Removes a token; returns whether it was there."""
        b = models.token_bucket(token)
        row = table.buckets[b].pop(token, None)
        if row is None:
            return False
        cols = table.bucket_columns(b)
        table.count -= 1
        device = cols[DEVICE].get(row, "")
        self._unindex(table, cols, row, token)
        cols[FREE].append(row)
        if device and table.devices.get(device) == token:
            del table.devices[device]
        return True

    def _unindex(self, table: Table, cols: _Columns, row: int, token: str) -> None:
        """Takes a row out of the indexes and clears its user and device (they are set again by `put`)."""
        user = cols[USER].pop(row, "")
        if user:
            _index_discard(table.users, user, token)
        cols[DEVICE].pop(row, None)
        at = cols[SHARED][row]
        for topic in self.shared.values[at][TOPICS]:
            _index_discard(table.topics, topic, token)
        self.shared.release(at)

    def candidates(self, app_id: str, query: TargetQuery, platforms: Iterable[models.Platform]) -> set[_Ref] | None:
        """The refs a user or topic query selects; None for the whole app."""
        if query.kind == "all":
            return None
        if query.kind not in ("users", "topic"):
            raise ValueError(f"unknown target query kind {query.kind!r}")
        bucket = models.token_bucket
        refs: set[_Ref] = set()
        for p in platforms:
            table = self.tables.get((app_id, p.value))
            if table is None:
                continue
            if query.kind == "users":
                for user in query.user_ids:
                    refs.update((bucket(t), p.value, t) for t in _index_get(table.users, user))
            else:
                refs.update((bucket(t), p.value, t) for t in _index_get(table.topics, query.topic))
        return refs

    def device_token(self, app_id: str, platform: str, table: Table, b: int, token: str, row: int) -> models.DeviceToken:
        """The stored token at `row` of bucket `b`."""
        cols = table.bucket_columns(b)
        s = self.shared.values[cols[SHARED][row]]
        return models.DeviceToken(
            app_id=app_id, token=token, platform=_PLATFORM[platform], user_id=cols[USER].get(row, ""), topics=s[TOPICS],
            device_id=cols[DEVICE].get(row, ""), apns_environment=_ENV[s[ENV]],
            created_at=_datetime(cols[CREATED][row]), last_seen_at=_datetime(cols[SEEN][row]),
            **dict(zip(models.TOKEN_ATTRIBUTES, s[ATTRS:], strict=True)),
        )

    def target(self, platform: models.Platform, table: Table, b: int, token: str, row: int) -> TargetToken:
        """The stored token at `row` of bucket `b`, as the dispatcher needs it."""
        cols = table.bucket_columns(b)
        s = self.shared.values[cols[SHARED][row]]
        return TargetToken((b, platform.value, token), token, platform, cols[USER].get(row, ""), _ENV[s[ENV]], True,
                           _datetime(cols[SEEN][row]), s[LOCALE], s[TIMEZONE])


class MemoryTokenStore:
    """`TokenStore` over `Registry`."""

    def __init__(self, registry: Registry) -> None:
        self._r = registry

    async def upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        """See `TokenStore.upsert`."""
        table, b, created = self._upsert(reg, _micros(now))
        # What was just stored is `reg` with the two times, as the other adapters answer it: no read-back.
        created_at = now if created else _datetime(table.bucket_columns(b)[CREATED][table.buckets[b][reg.token]])
        return models.DeviceToken.registered(reg, created_at=created_at, last_seen_at=now), created

    async def upsert_many(self, regs: Sequence[models.TokenRegistration], now: datetime) -> list[bool]:
        """See `TokenStore.upsert_many`: `upsert` in order, with no await in between, so the batch is atomic."""
        upsert = self._upsert
        now_us = _micros(now)
        return [upsert(reg, now_us)[2] for reg in regs]

    def _upsert(self, reg: models.TokenRegistration, now_us: int) -> tuple[Table, int, bool]:
        r = self._r
        table = r.table(reg.app_id, reg.platform._value_)  # `_value_`: the value without enum's property lookup, on every call
        b = models.token_bucket(reg.token)
        created = reg.token not in table.buckets[b]
        r.put(table, b, reg.token, reg, None, now_us)
        if reg.device_id:
            held = table.devices.get(reg.device_id)
            table.devices[reg.device_id] = reg.token
            if held is not None and held != reg.token:
                hb = models.token_bucket(held)
                row = table.buckets[hb].get(held)
                if row is not None and table.bucket_columns(hb)[DEVICE].get(row) == reg.device_id:
                    r.remove(table, held)
        return table, b, created

    async def insert_new(self, regs: Sequence[models.TokenRegistration], now: datetime) -> int:
        """See `TokenStore.insert_new`."""
        r = self._r
        now_us = _micros(now)
        added = 0
        for reg in regs:
            table = r.table(reg.app_id, reg.platform.value)
            b = models.token_bucket(reg.token)
            if reg.token in table.buckets[b]:
                continue
            r.put(table, b, reg.token, reg, now_us, now_us)
            if reg.device_id:
                table.devices.setdefault(reg.device_id, reg.token)
            added += 1
        return added

    async def delete(self, app_id: str, platform: models.Platform, token: str) -> bool:
        """See `TokenStore.delete`."""
        table = self._r.tables.get((app_id, platform.value))
        return table is not None and self._r.remove(table, token)

    async def delete_invalid(
        self, app_id: str, platform: models.Platform, token: str, invalid_since: datetime | None
    ) -> bool:
        """See `TokenStore.delete_invalid`."""
        table = self._r.tables.get((app_id, platform.value))
        if table is None:
            return False
        b = models.token_bucket(token)
        row = table.buckets[b].get(token)
        if row is None or (invalid_since is not None and table.bucket_columns(b)[SEEN][row] >= _micros(invalid_since)):
            return False
        self._r.remove(table, token)
        return True

    async def get(self, app_id: str, platform: models.Platform, token: str) -> models.DeviceToken | None:
        """See `TokenStore.get`."""
        table = self._r.tables.get((app_id, platform.value))
        if table is None:
            return None
        b = models.token_bucket(token)
        row = table.buckets[b].get(token)
        return None if row is None else self._r.device_token(app_id, platform.value, table, b, token, row)

    async def prune(
        self, app_id: str, stale_before: datetime, platforms: frozenset[models.Platform], dry_run: bool
    ) -> int:
        """See `TokenStore.prune`. Walks the app's tokens: an operator command, not a hot path."""
        removed = 0
        before_us = _micros(stale_before)
        for p in models.PLATFORMS:
            table = self._r.tables.get((app_id, p.value))
            if table is None or (platforms and p not in platforms):
                continue
            stale = []
            for b, bucket in enumerate(table.buckets):
                if bucket:
                    seen = table.bucket_columns(b)[SEEN]
                    stale += [t for t, row in bucket.items() if seen[row] < before_us]
            if not dry_run:
                for token in stale:
                    self._r.remove(table, token)
            removed += len(stale)
        return removed

    async def count_targets(self, app_id: str, query: TargetQuery) -> int:
        """See `TokenStore.count_targets`."""
        if query.timezones is not None:
            counts = await self.count_by_timezone(app_id, query)
            return sum(counts.values())
        platforms = [p for p in _ORDER if not query.platforms or p in query.platforms]
        refs = self._r.candidates(app_id, query, platforms)
        if refs is not None:
            return len(refs)
        tables = self._r.tables
        return sum(t.count for p in platforms if (t := tables.get((app_id, p.value))) is not None)

    async def count_by_timezone(self, app_id: str, query: TargetQuery) -> dict[str, int]:
        """See `TokenStore.count_by_timezone`: the selected rows' shared parts counted, then named by zone (once per local-time Send)."""
        r = self._r
        platforms = [p for p in _ORDER if not query.platforms or p in query.platforms]
        refs = r.candidates(app_id, query, platforms)
        by_shared: Counter[int] = Counter()
        if refs is None:
            for p in platforms:
                table = r.tables.get((app_id, p.value))
                if table is None:
                    continue
                for b, bucket in enumerate(table.buckets):
                    if bucket:
                        shared = table.bucket_columns(b)[SHARED]
                        by_shared.update(shared[row] for row in bucket.values())
        else:
            for b, value, token in refs:
                table = r.tables[(app_id, value)]
                row = table.buckets[b].get(token)
                if row is not None:
                    by_shared[table.bucket_columns(b)[SHARED][row]] += 1
        counts: dict[str, int] = {}
        for at, n in by_shared.items():
            zone = r.shared.values[at][TIMEZONE]
            counts[zone] = counts.get(zone, 0) + n
        if query.timezones is not None:
            counts = {zone: n for zone, n in counts.items() if zone in query.timezones}
        return counts

    async def scan_targets(
        self, app_id: str, query: TargetQuery, buckets: tuple[int, int], after: Any, batch_size: int
    ) -> AsyncGenerator[list[TargetToken], None]:
        """See `TokenStore.scan_targets`: bucket by bucket, each bucket's tokens sorted once."""
        lo, hi = buckets
        start: _Ref | None = after
        platforms = [p for p in _ORDER if not query.platforms or p in query.platforms]
        r = self._r
        refs = r.candidates(app_id, query, platforms)
        env = _ENV
        shared_values = r.shared.values
        zones = query.timezones
        page: list[TargetToken] = []
        if refs is None:
            all_tables = r.tables
            keyed = [(p, p.value, (app_id, p.value)) for p in platforms]
            seen_us: int | None = None
            seen_at = _EPOCH
            for b in range(lo if start is None else max(lo, start[0]), hi):
                for platform, value, key in keyed:
                    table = all_tables.get(key)  # per bucket: a platform's first token may arrive mid-scan
                    if table is None:
                        continue
                    bucket = table.buckets[b]
                    if not bucket:
                        continue
                    tokens = sorted(bucket)
                    if start is not None and b == start[0] and value <= start[1]:
                        if value < start[1]:
                            continue
                        tokens = tokens[bisect.bisect_right(tokens, start[2]) :]
                    cols = table.bucket_columns(b)
                    seen, shared, users = cols[SEEN], cols[SHARED], cols[USER]
                    for token in tokens:
                        row = bucket.get(token)
                        if row is None:
                            continue  # removed since its bucket was read
                        s = shared_values[shared[row]]
                        if zones is not None and s[TIMEZONE] not in zones:
                            continue
                        if seen[row] != seen_us:  # tokens loaded together share their instant: one datetime
                            seen_us = seen[row]
                            seen_at = _datetime(seen_us)
                        page.append(TargetToken(
                            (b, value, token), token, platform, users.get(row, "") if users else "", env[s[ENV]], True,
                            seen_at, s[LOCALE],
                        ))
                        if len(page) == batch_size:
                            yield page
                            page = []
        else:
            chosen = sorted(ref for ref in refs if lo <= ref[0] < hi)
            if start is not None:
                chosen = chosen[bisect.bisect_right(chosen, start) :]
            for ref in chosen:
                table = r.tables[(app_id, ref[1])]
                row = table.buckets[ref[0]].get(ref[2])
                if row is None:
                    continue
                if zones is not None and shared_values[table.bucket_columns(ref[0])[SHARED][row]][TIMEZONE] not in zones:
                    continue
                page.append(r.target(_PLATFORM[ref[1]], table, ref[0], ref[2], row))
                if len(page) == batch_size:
                    yield page
                    page = []
        if page:
            yield page

    async def lookup(
        self, app_id: str, devices: Sequence[models.Device]
    ) -> dict[tuple[models.Platform, str], TargetToken]:
        """See `TokenStore.lookup`."""
        out = {}
        for d in devices:
            table = self._r.tables.get((app_id, d.platform.value))
            if table is None:
                continue
            b = models.token_bucket(d.token)
            row = table.buckets[b].get(d.token)
            if row is not None:
                out[(d.platform, d.token)] = self._r.target(d.platform, table, b, d.token, row)
        return out

    async def list(self, where: models.TokenFilter, after: tuple[str, ...] | None, limit: int) -> Page[models.DeviceToken]:
        """See `TokenStore.list`: the user or topic index when filtered so, else the buckets in order."""
        start = _start(after)
        platforms = [p for p in _ORDER if where.platform is None or p is where.platform]
        tables = [(p.value, t) for p in platforms if (t := self._r.tables.get((where.app_id, p.value))) is not None]
        before_us = None if where.last_seen_before is None else _micros(where.last_seen_before)
        after_us = None if where.last_seen_after is None else _micros(where.last_seen_after)
        out: list[models.DeviceToken] = []
        for value, table, b, token, row in _walk(tables, where, start):
            seen = table.bucket_columns(b)[SEEN][row]
            if before_us is not None and not seen < before_us:
                continue
            if after_us is not None and not seen >= after_us:
                continue
            if len(out) == limit:
                last = out[-1]
                return Page(out, (last.platform.value, last.token))
            out.append(self._r.device_token(where.app_id, value, table, b, token, row))
        return Page(out, None)


def _start(after: tuple[str, ...] | None) -> _Ref | None:
    if after is None:
        return None
    if len(after) != 2 or after[0] not in _PLATFORM or not isinstance(after[1], str):
        raise BadCursor("not a token listing position")
    return (models.token_bucket(after[1]), after[0], after[1])


def _walk(
    tables: list[tuple[str, Table]], where: models.TokenFilter, start: _Ref | None
) -> Iterable[tuple[str, Table, int, str, int]]:
    """(platform value, table, bucket, token, row) in ref order after `start`, narrowed by the user and topic indexes."""
    bucket_of = models.token_bucket
    if where.user_id or where.topic:
        refs: list[_Ref] = []
        for value, table in tables:
            tokens: set[str] | None = None
            if where.user_id:
                tokens = set(_index_get(table.users, where.user_id))
            if where.topic:
                of_topic = set(_index_get(table.topics, where.topic))
                tokens = of_topic if tokens is None else tokens & of_topic
            refs.extend((bucket_of(t), value, t) for t in tokens or ())
        refs.sort()
        if start is not None:
            refs = refs[bisect.bisect_right(refs, start) :]
        by_value = dict(tables)
        for b, value, token in refs:
            table = by_value[value]
            row = table.buckets[b].get(token)
            if row is not None:
                yield value, table, b, token, row
        return
    for b in range(0 if start is None else start[0], models.BUCKETS):
        for value, table in tables:
            bucket = table.buckets[b]
            if not bucket:
                continue
            tokens_in = sorted(bucket)
            if start is not None and b == start[0] and value <= start[1]:
                if value < start[1]:
                    continue
                tokens_in = tokens_in[bisect.bisect_right(tokens_in, start[2]) :]
            for token in tokens_in:
                row = bucket.get(token)
                if row is not None:
                    yield value, table, b, token, row


__all__ = ["MemoryTokenStore", "Registry"]
