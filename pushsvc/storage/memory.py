"""The in-memory reference adapter (`memory://`): plain data structures behind the storage Protocols.

It passes the same contract suite as the MongoDB adapter, keeps every hot
path a key operation or a walk over one partition's buckets, and holds no
lock: each method runs to completion without awaiting, so on one event loop
every call is atomic. Unit tests of the service, the dispatcher and the
receipt feed run on it, and the benchmarks use it to measure the gateway's own
cost. It is not a production store: nothing survives the process, and one
process is one "cluster".
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pushsvc import errors, models
from pushsvc.storage.base import (
    DuplicateKey,
    LogEntry,
    NotificationDraft,
    NotificationRecord,
    Partition,
    PartitionPlan,
    PartitionStatus,
    ReceiptDraft,
    TargetQuery,
    TargetToken,
)

# Records are tuples of strings, numbers and datetimes: the cyclic garbage
# collector stops tracking such tuples, so a registry of a million tokens and a
# long receipt log add nothing to every collection's work (with objects, the
# collector's passes over them made fan-out cost grow with the registry).
_Key = tuple[str, str, str]
"""(app_id, platform value, token)."""
_Ref = tuple[int, str, str]
"""A token's position in its app: (bucket, platform value, token)."""
_Rec = tuple[str, tuple[str, ...], str, str, str, str, str, datetime, datetime]
"""(user_id, topics, device_id, locale, timezone, app_version, apns_environment value, created_at, last_seen_at)."""

_PLATFORM = {p.value: p for p in models.Platform}
_ENV = {e.value: e for e in models.ApnsEnvironment}


def _ref(platform: str, token: str) -> _Ref:
    return (models.token_bucket(token), platform, token)


def _record(reg: models.TokenRegistration, created_at: datetime, now: datetime) -> _Rec:
    return (reg.user_id, tuple(reg.topics), reg.device_id, reg.locale, reg.timezone, reg.app_version,
            reg.apns_environment.value, created_at, now)


def _device_token(key: _Key, r: _Rec) -> models.DeviceToken:
    return models.DeviceToken(
        app_id=key[0], token=key[2], platform=_PLATFORM[key[1]], user_id=r[0], topics=r[1], device_id=r[2],
        locale=r[3], timezone=r[4], app_version=r[5], apns_environment=_ENV[r[6]], created_at=r[7], last_seen_at=r[8],
    )


def _target(key: _Key, r: _Rec, ref: _Ref) -> TargetToken:
    return TargetToken(ref, key[2], _PLATFORM[key[1]], r[0], _ENV[r[6]], True, r[8])


class _Registry:
    """Token records by key, with the secondary indexes the queries need."""

    def __init__(self) -> None:
        self.tokens: dict[_Key, _Rec] = {}
        self.buckets: dict[str, list[dict[_Ref, None]]] = {}
        self.by_user: dict[tuple[str, str], set[_Key]] = {}
        self.by_topic: dict[tuple[str, str], set[_Key]] = {}
        self.by_device: dict[str, str] = {}
        """"<app_id>\\x00<platform value>\\x00<device_id>" → the token the device holds."""
        self.per_app: Counter[tuple[str, str]] = Counter()

    def put(self, key: _Key, rec: _Rec) -> _Rec | None:
        before = self.tokens.get(key)
        if before is not None:
            self._unindex(key, before)
        self.tokens[key] = rec
        self._index(key, rec)
        return before

    def remove(self, key: _Key) -> _Rec | None:
        rec = self.tokens.pop(key, None)
        if rec is not None:
            self._unindex(key, rec)
        return rec

    def _index(self, key: _Key, rec: _Rec) -> None:
        app_id = key[0]
        buckets = self.buckets.get(app_id)
        if buckets is None:
            buckets = self.buckets[app_id] = [{} for _ in range(models.BUCKETS)]
        ref = _ref(key[1], key[2])
        buckets[ref[0]][ref] = None
        if rec[0]:
            self.by_user.setdefault((app_id, rec[0]), set()).add(key)
        for topic in rec[1]:
            self.by_topic.setdefault((app_id, topic), set()).add(key)
        self.per_app[(app_id, key[1])] += 1

    def _unindex(self, key: _Key, rec: _Rec) -> None:
        app_id = key[0]
        ref = _ref(key[1], key[2])
        self.buckets[app_id][ref[0]].pop(ref, None)
        if rec[0]:
            _discard(self.by_user, (app_id, rec[0]), key)
        for topic in rec[1]:
            _discard(self.by_topic, (app_id, topic), key)
        self.per_app[(app_id, key[1])] -= 1

    def candidates(self, app_id: str, query: TargetQuery) -> Iterable[_Key] | None:
        """The keys a user or topic query selects; None for the whole app."""
        if query.kind == "users":
            keys: set[_Key] = set()
            for user in query.user_ids:
                keys |= self.by_user.get((app_id, user), set())
            return keys
        if query.kind == "topic":
            return self.by_topic.get((app_id, query.topic), set())
        if query.kind == "all":
            return None
        raise ValueError(f"unknown target query kind {query.kind!r}")


def _discard(index: dict[Any, set[_Key]], at: Any, key: _Key) -> None:
    keys = index.get(at)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[at]


class MemoryTokenStore:
    """`TokenStore` over `_Registry`."""

    def __init__(self, registry: _Registry) -> None:
        self._r = registry

    async def upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        """See `TokenStore.upsert`."""
        key, rec, created = self._upsert(reg, now)
        return _device_token(key, rec), created

    async def upsert_many(self, regs: Sequence[models.TokenRegistration], now: datetime) -> list[bool]:
        """See `TokenStore.upsert_many`: `upsert` in order, with no await in between, so the batch is atomic."""
        upsert = self._upsert
        return [upsert(reg, now)[2] for reg in regs]

    def _upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[_Key, _Rec, bool]:
        platform = reg.platform.value
        key = (reg.app_id, platform, reg.token)
        tokens = self._r.tokens
        before = tokens.get(key)
        rec = _record(reg, before[7] if before else now, now)
        self._r.put(key, rec)
        if reg.device_id:
            at = f"{reg.app_id}\x00{platform}\x00{reg.device_id}"
            held = self._r.by_device.get(at)
            self._r.by_device[at] = reg.token
            if held is not None and held != reg.token:
                old_key = (reg.app_id, platform, held)
                old = tokens.get(old_key)
                if old is not None and old[2] == reg.device_id:
                    self._r.remove(old_key)
        return key, rec, before is None

    async def insert_new(self, regs: Sequence[models.TokenRegistration], now: datetime) -> int:
        """See `TokenStore.insert_new`."""
        added = 0
        for reg in regs:
            key = (reg.app_id, reg.platform.value, reg.token)
            if key in self._r.tokens:
                continue
            self._r.put(key, _record(reg, now, now))
            if reg.device_id:
                self._r.by_device.setdefault(f"{reg.app_id}\x00{reg.platform.value}\x00{reg.device_id}", reg.token)
            added += 1
        return added

    async def delete(self, app_id: str, platform: models.Platform, token: str) -> bool:
        """See `TokenStore.delete`."""
        return self._r.remove((app_id, platform.value, token)) is not None

    async def delete_invalid(
        self, app_id: str, platform: models.Platform, token: str, invalid_since: datetime | None
    ) -> bool:
        """See `TokenStore.delete_invalid`."""
        key = (app_id, platform.value, token)
        stored = self._r.tokens.get(key)
        if stored is None or (invalid_since is not None and stored[8] >= invalid_since):
            return False
        self._r.remove(key)
        return True

    async def get(self, app_id: str, platform: models.Platform, token: str) -> models.DeviceToken | None:
        """See `TokenStore.get`."""
        key = (app_id, platform.value, token)
        rec = self._r.tokens.get(key)
        return None if rec is None else _device_token(key, rec)

    async def prune(
        self, app_id: str, stale_before: datetime, platforms: frozenset[models.Platform], dry_run: bool
    ) -> int:
        """See `TokenStore.prune`. Walks the app's tokens: an operator command, not a hot path."""
        values = {p.value for p in platforms}
        stale = []
        for bucket in self._r.buckets.get(app_id, ()):
            for _, platform, token in bucket:
                key = (app_id, platform, token)
                if self._r.tokens[key][8] < stale_before and (not values or platform in values):
                    stale.append(key)
        if not dry_run:
            for key in stale:
                self._r.remove(key)
        return len(stale)

    async def count_targets(self, app_id: str, query: TargetQuery) -> int:
        """See `TokenStore.count_targets`."""
        values = {p.value for p in query.platforms}
        keys = self._r.candidates(app_id, query)
        if keys is None:
            return sum(self._r.per_app[(app_id, p.value)] for p in models.PLATFORMS if not values or p.value in values)
        return sum(1 for k in keys if not values or k[1] in values)

    async def scan_targets(
        self, app_id: str, query: TargetQuery, buckets: tuple[int, int], after: Any, batch_size: int
    ) -> AsyncGenerator[list[TargetToken], None]:
        """See `TokenStore.scan_targets`: bucket by bucket, each bucket's refs sorted once."""
        lo, hi = buckets
        start: _Ref | None = after
        values = {p.value for p in query.platforms}
        keys = self._r.candidates(app_id, query)
        if keys is None:
            refs = self._bucket_refs(app_id, lo, hi, start)
        else:
            chosen = sorted(r for r in (_ref(k[1], k[2]) for k in keys) if lo <= r[0] < hi)
            refs = iter(chosen[bisect.bisect_right(chosen, start) :] if start is not None else chosen)
        tokens = self._r.tokens
        page: list[TargetToken] = []
        for ref in refs:
            if values and ref[1] not in values:
                continue
            key = (app_id, ref[1], ref[2])
            rec = tokens.get(key)
            if rec is None:
                continue  # removed since its bucket was read
            page.append(_target(key, rec, ref))
            if len(page) == batch_size:
                yield page
                page = []
        if page:
            yield page

    def _bucket_refs(self, app_id: str, lo: int, hi: int, start: _Ref | None) -> Iterable[_Ref]:
        table = self._r.buckets.get(app_id)
        if table is None:
            return
        first = lo if start is None else max(lo, start[0])
        for b in range(first, hi):
            refs = sorted(table[b])
            if start is not None and b == start[0]:
                refs = refs[bisect.bisect_right(refs, start) :]
            yield from refs

    async def lookup(
        self, app_id: str, devices: Sequence[models.Device]
    ) -> dict[tuple[models.Platform, str], TargetToken]:
        """See `TokenStore.lookup`."""
        out = {}
        for d in devices:
            key = (app_id, d.platform.value, d.token)
            rec = self._r.tokens.get(key)
            if rec is not None:
                out[(d.platform, d.token)] = _target(key, rec, _ref(key[1], key[2]))
        return out


# ---------------------------------------------------------------- notifications and receipts


@dataclasses.dataclass
class _Note:
    view: models.NotificationView
    query: TargetQuery | None
    rendered: Mapping[models.Platform, Mapping[str, Any]]
    expires_at: datetime | None
    partitions_total: int
    partitions_done: int = 0
    receipt_seq: int = 0


@dataclasses.dataclass
class _Part:
    partition: Partition
    lease_expires_at: datetime
    done: bool = False
    owner: str | None = None
    finished_by: str | None = None
    claims: int = 0


_Entry = tuple[int, int, "tuple[Any, ...] | None", datetime]
"""(seq, nseq, receipt fields or None for a filler, expires_at): an entry the garbage collector does not track."""
_STATUS = {s.value: s for s in models.DeliveryStatus}
_CHUNK = 1024


def _entry(e: _Entry) -> LogEntry:
    seq, nseq, r, _ = e
    if r is None:
        return LogEntry(seq, nseq, None)
    receipt = models.Receipt(
        f"{seq}.{nseq}", r[0], r[1], r[2], _PLATFORM[r[3]], r[4], _STATUS[r[5]], r[6], r[7], r[8], r[9], r[10], r[11]
    )
    return LogEntry(seq, nseq, receipt)


class _Log:
    """A dense numbered log; expired entries become holes, as deleted documents would.

    Full chunks are tuples, so a collector pass over a million entries visits
    a thousand chunks (lists are traversed item by item on every pass).
    """

    def __init__(self) -> None:
        self._chunks: list[tuple[_Entry | None, ...]] = []
        self._tail: list[_Entry | None] = []
        self.length = 0

    def append(self, entry: _Entry) -> None:
        self._tail.append(entry)
        self.length += 1
        if len(self._tail) == _CHUNK:
            self._chunks.append(tuple(self._tail))
            self._tail = []

    def _at(self, i: int) -> _Entry | None:
        c = i // _CHUNK
        return self._chunks[c][i % _CHUNK] if c < len(self._chunks) else self._tail[i % _CHUNK]

    def read(self, after: int, limit: int) -> list[LogEntry]:
        out = []
        for i in range(max(0, after), self.length):
            entry = self._at(i)
            if entry is not None:
                out.append(_entry(entry))
                if len(out) == limit:
                    break
        return out

    def sweep(self, now: datetime) -> int:
        removed = 0

        def prune(chunk: Sequence[_Entry | None]) -> list[_Entry | None]:
            nonlocal removed
            out: list[_Entry | None] = []
            for e in chunk:
                if e is not None and e[3] < now:
                    removed += e[2] is not None
                    e = None
                out.append(e)
            return out

        for c, chunk in enumerate(self._chunks):
            if any(e is not None and e[3] < now for e in chunk):  # most chunks: nothing due, nothing rebuilt
                self._chunks[c] = tuple(prune(chunk))
        self._tail = prune(self._tail)
        return removed


class _Queue:
    """Notifications, partitions, idempotency keys and the receipt logs."""

    def __init__(self) -> None:
        self.notes: dict[str, _Note] = {}
        self.unfinished: set[str] = set()
        self.parts: dict[str, _Part] = {}
        self.open_parts: dict[str, None] = {}
        self.parts_of: dict[str, list[str]] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.receipts: dict[tuple[str, str], dict[str, None]] = {}
        """(notification_id, platform value) → the tokens that have a receipt (the registry's own strings)."""
        self.app_logs: dict[str, _Log] = {}
        self.note_logs: dict[str, _Log] = {}
        self.statuses: dict[str, Counter[models.DeliveryStatus]] = {}


_COUNTERS = {
    models.DeliveryStatus.DELIVERED: "delivered",
    models.DeliveryStatus.FAILED: "failed",
    models.DeliveryStatus.TOKEN_INVALID: "invalid_tokens",
    models.DeliveryStatus.EXPIRED: "expired",
}


def _counter_values(counts: Mapping[models.DeliveryStatus, int]) -> dict[str, Any]:
    """The view's counter fields from per-status counts (typed for dataclasses.replace)."""
    return {field: counts.get(status, 0) for status, field in _COUNTERS.items()}


class MemoryNotificationStore:
    """`NotificationStore` over `_Queue`."""

    def __init__(self, queue: _Queue) -> None:
        self._q = queue

    async def find_by_idempotency_key(self, app_id: str, key: str) -> models.NotificationView | None:
        """See `NotificationStore.find_by_idempotency_key`."""
        nid = self._q.keys.get((app_id, key))
        return None if nid is None else self._q.notes[nid].view

    async def create(self, draft: NotificationDraft, plans: Sequence[PartitionPlan]) -> models.NotificationView:
        """See `NotificationStore.create`."""
        if draft.idempotency_key:
            held = self._q.keys.get((draft.app_id, draft.idempotency_key))
            if held is not None:
                raise DuplicateKey(held)
            self._q.keys[(draft.app_id, draft.idempotency_key)] = draft.notification_id
        state = draft.state if plans else models.NotificationState.COMPLETED
        view = models.NotificationView(
            notification_id=draft.notification_id,
            app_id=draft.app_id,
            state=state,
            targeted=draft.targeted,
            delivered=0,
            failed=0,
            invalid_tokens=0,
            expired=0,
            created_at=draft.created_at,
            updated_at=draft.created_at,
            send_at=draft.send_at,
            completed_at=None if plans else draft.created_at,
            idempotency_key=draft.idempotency_key,
        )
        nid = draft.notification_id
        self._q.notes[nid] = _Note(
            view=view,
            query=draft.query,
            rendered=copy.deepcopy(dict(draft.rendered)),
            expires_at=draft.expires_at,
            partitions_total=len(plans),
        )
        if not state.finished:
            self._q.unfinished.add(nid)
        ids = []
        for plan in plans:
            pid = f"{nid}:{plan.index:04d}"
            partition = Partition(pid, nid, draft.app_id, plan.index, plan.buckets, tuple(plan.devices), None, draft.created_at)
            self._q.parts[pid] = _Part(partition, lease_expires_at=draft.runnable_at)
            self._q.open_parts[pid] = None
            ids.append(pid)
        self._q.parts_of[nid] = ids
        return view

    async def get(self, app_id: str, notification_id: str) -> NotificationRecord | None:
        """See `NotificationStore.get`."""
        note = self._q.notes.get(notification_id)
        if note is None or note.view.app_id != app_id:
            return None
        return NotificationRecord(note.view, note.query, note.rendered, note.expires_at, note.receipt_seq)

    async def partitions(self, notification_id: str) -> list[PartitionStatus]:
        """See `NotificationStore.partitions`."""
        out = []
        for pid in self._q.parts_of.get(notification_id, ()):
            p = self._q.parts.get(pid)
            if p is not None:
                out.append(PartitionStatus(pid, p.partition.index, p.done, p.owner, p.finished_by, p.claims))
        return out

    async def queue_depth(self) -> int:
        """See `NotificationStore.queue_depth`."""
        return len(self._q.unfinished)

    async def claim(self, owner: str, now: datetime, lease_s: float) -> Partition | None:
        """See `NotificationStore.claim`: the runnable open partition whose lease ran out first."""
        best: _Part | None = None
        for pid in self._q.open_parts:
            p = self._q.parts[pid]
            if p.lease_expires_at <= now and (best is None or p.lease_expires_at < best.lease_expires_at):
                best = p
        if best is None:
            return None
        best.owner = owner
        best.lease_expires_at = now + timedelta(seconds=lease_s)
        best.claims += 1
        return best.partition

    def _mine(self, partition_id: str, owner: str) -> _Part | None:
        p = self._q.parts.get(partition_id)
        return p if p is not None and p.owner == owner and not p.done else None

    async def renew(self, partition_id: str, owner: str, now: datetime, lease_s: float) -> bool:
        """See `NotificationStore.renew`."""
        p = self._mine(partition_id, owner)
        if p is None:
            return False
        p.lease_expires_at = now + timedelta(seconds=lease_s)
        return True

    async def commit_batch(
        self,
        partition_id: str,
        owner: str,
        checkpoint: Any,
        counts: Mapping[models.DeliveryStatus, int],
        now: datetime,
        lease_s: float,
    ) -> bool:
        """See `NotificationStore.commit_batch`."""
        p = self._mine(partition_id, owner)
        if p is None:
            return False
        p.partition = dataclasses.replace(p.partition, checkpoint=checkpoint)
        p.lease_expires_at = now + timedelta(seconds=lease_s)
        note = self._q.notes.get(p.partition.notification_id)
        if note is not None and any(counts.values()):
            v = note.view
            note.view = dataclasses.replace(
                v,
                updated_at=now,
                **{field: getattr(v, field) + counts.get(status, 0) for status, field in _COUNTERS.items()},
            )
        return True

    async def release(self, partition_id: str, owner: str, retry_at: datetime) -> None:
        """See `NotificationStore.release`."""
        p = self._q.parts.get(partition_id)
        if p is not None and p.owner == owner:
            p.owner = None
            p.lease_expires_at = retry_at

    async def release_all(self, owner: str, now: datetime) -> int:
        """See `NotificationStore.release_all`."""
        n = 0
        for pid in self._q.open_parts:
            p = self._q.parts[pid]
            if p.owner == owner:
                p.owner = None
                p.lease_expires_at = now
                n += 1
        return n

    async def release_replica(self, replica_id: str, keep_owner: str, now: datetime) -> int:
        """See `NotificationStore.release_replica`."""
        n = 0
        for pid in self._q.open_parts:
            p = self._q.parts[pid]
            if p.owner is not None and p.owner != keep_owner and p.owner.startswith(f"{replica_id}/"):
                p.owner = None
                p.lease_expires_at = now
                n += 1
        return n

    def _retire(self, p: _Part) -> None:
        p.done = True
        p.owner = None
        self._q.open_parts.pop(p.partition.partition_id, None)

    async def finish_partition(self, partition_id: str, owner: str, now: datetime) -> models.NotificationView | None:
        """See `NotificationStore.finish_partition`."""
        p = self._mine(partition_id, owner)
        if p is None:
            return None
        self._retire(p)
        p.finished_by = owner
        note = self._q.notes.get(p.partition.notification_id)
        if note is None:
            return None
        note.partitions_done += 1
        note.view = dataclasses.replace(note.view, updated_at=now)
        if note.partitions_done >= note.partitions_total and not note.view.state.finished:
            self._settle(note, now)
        return note.view

    def _settle(self, note: _Note, now: datetime) -> None:
        nid = note.view.notification_id
        logged = self._q.statuses.get(nid, Counter())
        resolved = sum(logged.values())
        condemned = bool(note.view.error)
        note.view = dataclasses.replace(
            note.view,
            state=models.NotificationState.FAILED if condemned else models.NotificationState.COMPLETED,
            completed_at=now,
            updated_at=now,
            targeted=max(note.view.targeted, resolved),
            vanished=max(0, note.view.targeted - resolved),
            **_counter_values(logged),
        )
        self._q.unfinished.discard(nid)

    async def drop_partition(self, partition_id: str) -> None:
        """See `NotificationStore.drop_partition`."""
        p = self._q.parts.pop(partition_id, None)
        self._q.open_parts.pop(partition_id, None)
        if p is not None:
            ids = self._q.parts_of.get(p.partition.notification_id, [])
            if partition_id in ids:
                ids.remove(partition_id)

    async def mark_running(self, notification_id: str, now: datetime) -> None:
        """See `NotificationStore.mark_running`."""
        note = self._q.notes.get(notification_id)
        if note is not None and note.view.state in (models.NotificationState.QUEUED, models.NotificationState.SCHEDULED):
            note.view = dataclasses.replace(note.view, state=models.NotificationState.RUNNING, updated_at=now)

    async def fail(self, notification_id: str, error: str, now: datetime) -> None:
        """See `NotificationStore.fail`."""
        note = self._q.notes.get(notification_id)
        if note is None or note.view.state.finished or note.view.error:
            return
        note.view = dataclasses.replace(note.view, error=error, updated_at=now)
        if note.partitions_done >= note.partitions_total:
            self._settle(note, now)  # nothing left to sweep


class MemoryReceiptStore:
    """`ReceiptStore` over `_Queue`: one receipt per (notification, platform, token), dense numbers."""

    def __init__(self, queue: _Queue) -> None:
        self._q = queue

    async def append(
        self, app_id: str, notification_id: str, drafts: Sequence[ReceiptDraft], expires_at: datetime
    ) -> list[models.Receipt]:
        """See `ReceiptStore.append`."""
        if not drafts:
            return []
        note = self._q.notes.get(notification_id)
        if note is None:
            raise errors.NotFound(f"notification {notification_id} is gone")
        app_log = self._q.app_logs.setdefault(app_id, _Log())
        note_log = self._q.note_logs.setdefault(notification_id, _Log())
        statuses = self._q.statuses.setdefault(notification_id, Counter())
        seen_by_platform = {
            p.value: self._q.receipts.setdefault((notification_id, p.value), {}) for p in models.PLATFORMS
        }
        new = []
        for d in drafts:
            seq = app_log.length + 1
            nseq = note.receipt_seq + 1
            note.receipt_seq = nseq
            seen = seen_by_platform[d.platform.value]
            entry: _Entry
            if d.token in seen:
                entry = (seq, nseq, None, expires_at)  # a filler keeps the log dense
            else:
                seen[d.token] = None
                fields = (notification_id, app_id, d.token, d.platform.value, d.user_id, d.status.value,
                          d.provider_message_id, d.provider_status, d.reason, d.attempts, d.token_removed, d.at)
                statuses[d.status] += 1
                new.append(models.Receipt(
                    f"{seq}.{nseq}", notification_id, app_id, d.token, d.platform, d.user_id, d.status,
                    d.provider_message_id, d.provider_status, d.reason, d.attempts, d.token_removed, d.at,
                ))
                entry = (seq, nseq, fields, expires_at)
            app_log.append(entry)
            note_log.append(entry)
        return new

    async def read_app(self, app_id: str, after_seq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_app`."""
        log = self._q.app_logs.get(app_id)
        return [] if log is None else log.read(after_seq, limit)

    async def read_notification(self, app_id: str, notification_id: str, after_nseq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_notification`."""
        note = self._q.notes.get(notification_id)
        log = self._q.note_logs.get(notification_id)
        if log is None or note is None or note.view.app_id != app_id:
            return []
        return log.read(after_nseq, limit)

    async def last_seq(self, app_id: str) -> int:
        """See `ReceiptStore.last_seq`."""
        log = self._q.app_logs.get(app_id)
        return 0 if log is None else log.length

    async def count_by_status(self, notification_id: str) -> dict[models.DeliveryStatus, int]:
        """See `ReceiptStore.count_by_status`."""
        return dict(self._q.statuses.get(notification_id, {}))

    def sweep(self, now: datetime) -> int:
        """Turns receipts past retention into holes; returns how many went."""
        for log in self._q.note_logs.values():
            log.sweep(now)
        return sum(log.sweep(now) for log in self._q.app_logs.values())


class MemoryStores:
    """The three in-memory stores over one shared state (`pushsvc.storage.Stores`)."""

    def __init__(self) -> None:
        queue = _Queue()
        self.tokens = MemoryTokenStore(_Registry())
        self.notifications = MemoryNotificationStore(queue)
        self.receipts = MemoryReceiptStore(queue)

    @property
    def needs_sweep(self) -> bool:
        """See `Stores.needs_sweep`: yes, there is no TTL monitor."""
        return True

    async def prepare(self) -> None:
        """Nothing to create."""

    async def sweep_expired(self, now: datetime) -> int:
        """See `Stores.sweep_expired`."""
        return self.receipts.sweep(now)

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Never fails, so never calls back."""

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["MemoryNotificationStore", "MemoryReceiptStore", "MemoryStores", "MemoryTokenStore"]
