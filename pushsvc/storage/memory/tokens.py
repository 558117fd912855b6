"""The token registry of `memory://`: one dict entry per token, keyed by the token string itself.

Layout (see the package docstring for why):

- `Registry.tables[(app_id, platform value)]` is a `Table`; its `buckets` are
  `models.BUCKETS` dicts, token → record. The bucket is the token's own
  (`models.token_bucket`), so a key operation hashes the token once more and
  a partition's scan walks its buckets in order, with nothing else to look up.
- A record is a 5-tuple `(last_seen_at, created_at, user_id, device_id, shared)`
  (positions `SEEN`, `CREATED`, `USER`, `DEVICE`, `SHARED`); `shared` is
  `(topics, apns_environment value, *attributes)` (`TOPICS`, `ENV`, then
  `models.TOKEN_ATTRIBUTES` from `ATTRS`), interned with a count (`Interned`),
  since most tokens of an app share it. Plain tuples, not named ones: the
  collector untracks only exact tuples (see `_Rec`).
- The user, topic and device indexes map to the token string (the same
  object as the bucket's key), or to a dict of them when more than one token
  shares the user or topic: no per-token tuple, no set.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncGenerator, Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from pushsvc import models
from pushsvc.storage.base import BadCursor, Page, TargetQuery, TargetToken

_Ref = tuple[int, str, str]
"""A token's position in its app, the scan order and the checkpoint: (bucket, platform value, token)."""
_Shared = tuple[Any, ...]
"""(topics, apns_environment value, *the `models.TOKEN_ATTRIBUTES`): interned, most tokens share one."""
_Rec = tuple[datetime, datetime, str, str, _Shared]
"""(last_seen_at, created_at, user_id, device_id, shared). Only strings, datetimes and tuples of them: the
cyclic garbage collector stops tracking such tuples, and the dicts holding them, so a registry of a million
tokens adds nothing to every collection's work."""
_Index = dict[str, "str | dict[str, None]"]
"""User id or topic → its token, or a dict of its tokens when there are several (dicts of strings are
untracked by the collector, sets never are)."""

# A record's positions (Final, so the type checker knows each one's type).
SEEN: Final = 0
CREATED: Final = 1
USER: Final = 2
DEVICE: Final = 3
SHARED: Final = 4
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


class Interned:
    """One object per distinct value while some record holds it: records share it instead of copying it."""

    def __init__(self) -> None:
        self._held: dict[Any, list[Any]] = {}
        """value → [the shared object, how many records hold it]."""

    def hold(self, value: Any) -> Any:
        """The shared object equal to `value`, counted once more."""
        slot = self._held.get(value)
        if slot is None:
            slot = self._held[value] = [value, 0]
        slot[1] += 1
        return slot[0]

    def release(self, value: Any) -> None:
        """One holder fewer; the value goes when none is left."""
        slot = self._held[value]
        slot[1] -= 1
        if not slot[1]:
            del self._held[value]

    def __len__(self) -> int:
        return len(self._held)


class Table:
    """One app's tokens of one platform, with their indexes."""

    __slots__ = ("buckets", "count", "devices", "topics", "users")

    def __init__(self) -> None:
        self.buckets: list[dict[str, _Rec]] = [{} for _ in range(models.BUCKETS)]
        self.users: _Index = {}
        self.topics: _Index = {}
        self.devices: dict[str, str] = {}
        """device_id → the token the device holds (absent once that token is gone)."""
        self.count = 0


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
    """Token records by (app, platform) and bucket, with the secondary indexes the queries need."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], Table] = {}
        self.shared = Interned()

    def table(self, app_id: str, platform: str) -> Table:
        """The (app, platform) table, created empty on first use."""
        table = self.tables.get((app_id, platform))
        if table is None:
            table = self.tables[(app_id, platform)] = Table()
        return table

    def record(self, reg: models.TokenRegistration, created_at: datetime, now: datetime) -> _Rec:
        """A new record for `reg`; it holds its shared part (released by `put` or `remove` when replaced)."""
        shared = self.shared.hold((tuple(reg.topics), reg.apns_environment.value, *models.token_attributes(reg)))
        return (now, created_at, reg.user_id, reg.device_id, shared)

    def put(self, table: Table, bucket: dict[str, _Rec], token: str, rec: _Rec) -> None:
        """Stores `rec` (from `record`) under `token` in its bucket, replacing any record there."""
        before = bucket.get(token)
        if before is None:
            table.count += 1
        else:
            self._unindex(table, token, before)
        bucket[token] = rec
        if rec[USER]:
            _index_add(table.users, rec[USER], token)
        for topic in rec[SHARED][TOPICS]:
            _index_add(table.topics, topic, token)

    def remove(self, table: Table, token: str) -> _Rec | None:
        """Removes a token; returns its record, or None."""
        rec = table.buckets[models.token_bucket(token)].pop(token, None)
        if rec is not None:
            table.count -= 1
            self._unindex(table, token, rec)
            if rec[DEVICE] and table.devices.get(rec[DEVICE]) == token:
                del table.devices[rec[DEVICE]]
        return rec

    def _unindex(self, table: Table, token: str, rec: _Rec) -> None:
        if rec[USER]:
            _index_discard(table.users, rec[USER], token)
        for topic in rec[SHARED][TOPICS]:
            _index_discard(table.topics, topic, token)
        self.shared.release(rec[SHARED])

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


def _device_token(app_id: str, platform: str, token: str, r: _Rec) -> models.DeviceToken:
    s = r[SHARED]
    return models.DeviceToken(
        app_id=app_id, token=token, platform=_PLATFORM[platform], user_id=r[USER], topics=s[TOPICS], device_id=r[DEVICE],
        apns_environment=_ENV[s[ENV]], created_at=r[CREATED], last_seen_at=r[SEEN],
        **dict(zip(models.TOKEN_ATTRIBUTES, s[ATTRS:], strict=True)),
    )


class MemoryTokenStore:
    """`TokenStore` over `Registry`."""

    def __init__(self, registry: Registry) -> None:
        self._r = registry

    async def upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        """See `TokenStore.upsert`."""
        rec, created = self._upsert(reg, now)
        return _device_token(reg.app_id, reg.platform.value, reg.token, rec), created

    async def upsert_many(self, regs: Sequence[models.TokenRegistration], now: datetime) -> list[bool]:
        """See `TokenStore.upsert_many`: `upsert` in order, with no await in between, so the batch is atomic."""
        upsert = self._upsert
        return [upsert(reg, now)[1] for reg in regs]

    def _upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[_Rec, bool]:
        r = self._r
        table = r.table(reg.app_id, reg.platform.value)
        bucket = table.buckets[models.token_bucket(reg.token)]
        before = bucket.get(reg.token)
        rec = r.record(reg, before[CREATED] if before else now, now)
        r.put(table, bucket, reg.token, rec)
        if reg.device_id:
            held = table.devices.get(reg.device_id)
            table.devices[reg.device_id] = reg.token
            if held is not None and held != reg.token:
                old = table.buckets[models.token_bucket(held)].get(held)
                if old is not None and old[DEVICE] == reg.device_id:
                    r.remove(table, held)
        return rec, before is None

    async def insert_new(self, regs: Sequence[models.TokenRegistration], now: datetime) -> int:
        """See `TokenStore.insert_new`."""
        r = self._r
        added = 0
        for reg in regs:
            table = r.table(reg.app_id, reg.platform.value)
            bucket = table.buckets[models.token_bucket(reg.token)]
            if reg.token in bucket:
                continue
            r.put(table, bucket, reg.token, r.record(reg, now, now))
            if reg.device_id:
                table.devices.setdefault(reg.device_id, reg.token)
            added += 1
        return added

    async def delete(self, app_id: str, platform: models.Platform, token: str) -> bool:
        """See `TokenStore.delete`."""
        table = self._r.tables.get((app_id, platform.value))
        return table is not None and self._r.remove(table, token) is not None

    async def delete_invalid(
        self, app_id: str, platform: models.Platform, token: str, invalid_since: datetime | None
    ) -> bool:
        """See `TokenStore.delete_invalid`."""
        table = self._r.tables.get((app_id, platform.value))
        if table is None:
            return False
        stored = table.buckets[models.token_bucket(token)].get(token)
        if stored is None or (invalid_since is not None and stored[SEEN] >= invalid_since):
            return False
        self._r.remove(table, token)
        return True

    async def get(self, app_id: str, platform: models.Platform, token: str) -> models.DeviceToken | None:
        """See `TokenStore.get`."""
        table = self._r.tables.get((app_id, platform.value))
        rec = None if table is None else table.buckets[models.token_bucket(token)].get(token)
        return None if rec is None else _device_token(app_id, platform.value, token, rec)

    async def prune(
        self, app_id: str, stale_before: datetime, platforms: frozenset[models.Platform], dry_run: bool
    ) -> int:
        """See `TokenStore.prune`. Walks the app's tokens: an operator command, not a hot path."""
        removed = 0
        for p in models.PLATFORMS:
            table = self._r.tables.get((app_id, p.value))
            if table is None or (platforms and p not in platforms):
                continue
            stale = [t for bucket in table.buckets for t, rec in bucket.items() if rec[SEEN] < stale_before]
            if not dry_run:
                for token in stale:
                    self._r.remove(table, token)
            removed += len(stale)
        return removed

    async def count_targets(self, app_id: str, query: TargetQuery) -> int:
        """See `TokenStore.count_targets`."""
        if query.timezones is not None:
            counts = await self.count_by_timezone(app_id, query)
            return sum(n for zone, n in counts.items() if zone in query.timezones)
        platforms = [p for p in _ORDER if not query.platforms or p in query.platforms]
        refs = self._r.candidates(app_id, query, platforms)
        if refs is not None:
            return len(refs)
        tables = self._r.tables
        return sum(t.count for p in platforms if (t := tables.get((app_id, p.value))) is not None)

    async def count_by_timezone(self, app_id: str, query: TargetQuery) -> dict[str, int]:
        """See `TokenStore.count_by_timezone`: a walk of the selected records (once per local-time Send)."""
        platforms = [p for p in _ORDER if not query.platforms or p in query.platforms]
        refs = self._r.candidates(app_id, query, platforms)
        counts: dict[str, int] = {}
        if refs is None:
            records: Iterable[_Rec] = (
                rec
                for p in platforms
                if (table := self._r.tables.get((app_id, p.value))) is not None
                for bucket in table.buckets
                for rec in bucket.values()
            )
        else:
            records = (
                rec for ref in refs if (rec := self._r.tables[(app_id, ref[1])].buckets[ref[0]].get(ref[2])) is not None
            )
        for rec in records:
            zone = rec[SHARED][TIMEZONE]
            counts[zone] = counts.get(zone, 0) + 1
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
        refs = self._r.candidates(app_id, query, platforms)
        env = _ENV
        zones = query.timezones
        page: list[TargetToken] = []
        if refs is None:
            all_tables = self._r.tables
            keyed = [(p, p.value, (app_id, p.value)) for p in platforms]
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
                    for token in tokens:
                        rec = bucket.get(token)
                        if rec is None:
                            continue  # removed since its bucket was read
                        if zones is not None and rec[SHARED][TIMEZONE] not in zones:
                            continue
                        page.append(TargetToken(
                            ref=(b, value, token), token=token, platform=platform, user_id=rec[USER],
                            apns_environment=env[rec[SHARED][ENV]], registered=True, last_seen_at=rec[SEEN], locale=rec[SHARED][LOCALE],
                        ))
                        if len(page) == batch_size:
                            yield page
                            page = []
        else:
            chosen = sorted(r for r in refs if lo <= r[0] < hi)
            if start is not None:
                chosen = chosen[bisect.bisect_right(chosen, start) :]
            for ref in chosen:
                platform = _PLATFORM[ref[1]]
                rec = self._r.tables[(app_id, ref[1])].buckets[ref[0]].get(ref[2])
                if rec is None or (zones is not None and rec[SHARED][TIMEZONE] not in zones):
                    continue
                page.append(TargetToken(
                    ref=ref, token=ref[2], platform=platform, user_id=rec[USER], apns_environment=env[rec[SHARED][ENV]],
                    registered=True, last_seen_at=rec[SEEN], locale=rec[SHARED][LOCALE],
                ))
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
            rec = table.buckets[b].get(d.token)
            if rec is not None:
                out[(d.platform, d.token)] = TargetToken(
                    ref=(b, d.platform.value, d.token), token=d.token, platform=d.platform, user_id=rec[USER],
                    apns_environment=_ENV[rec[SHARED][ENV]], registered=True, last_seen_at=rec[SEEN], locale=rec[SHARED][LOCALE],
                    timezone=rec[SHARED][TIMEZONE],
                )
        return out

    async def list(self, where: models.TokenFilter, after: tuple[str, ...] | None, limit: int) -> Page[models.DeviceToken]:
        """See `TokenStore.list`: the user or topic index when filtered so, else the buckets in order."""
        start = _start(after)
        platforms = [p for p in _ORDER if where.platform is None or p is where.platform]
        tables = [(p.value, t) for p in platforms if (t := self._r.tables.get((where.app_id, p.value))) is not None]
        out: list[models.DeviceToken] = []
        for value, token, rec in _walk(tables, where, start):
            if where.last_seen_before is not None and not rec[0] < where.last_seen_before:
                continue
            if where.last_seen_after is not None and not rec[0] >= where.last_seen_after:
                continue
            if len(out) == limit:
                last = out[-1]
                return Page(out, (last.platform.value, last.token))
            out.append(_device_token(where.app_id, value, token, rec))
        return Page(out, None)


def _start(after: tuple[str, ...] | None) -> _Ref | None:
    if after is None:
        return None
    if len(after) != 2 or after[0] not in _PLATFORM or not isinstance(after[1], str):
        raise BadCursor("not a token listing position")
    return (models.token_bucket(after[1]), after[0], after[1])


def _walk(tables: list[tuple[str, Table]], where: models.TokenFilter, start: _Ref | None) -> Iterable[tuple[str, str, _Rec]]:
    """(platform value, token, record) in ref order after `start`, narrowed by the user and topic indexes."""
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
            rec = by_value[value].buckets[b].get(token)
            if rec is not None:
                yield value, token, rec
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
                rec = bucket.get(token)
                if rec is not None:
                    yield value, token, rec


__all__ = ["MemoryTokenStore", "Registry"]
