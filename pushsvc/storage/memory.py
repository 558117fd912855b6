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
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
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

_Key = tuple[str, models.Platform, str]
"""(app_id, platform, token)."""
_Ref = tuple[int, str, str]
"""A token's position in its app: (bucket, platform value, token)."""


def _ref(platform: models.Platform, token: str) -> _Ref:
    return (models.token_bucket(token), platform.value, token)


class _Registry:
    """Tokens by key, with the secondary indexes the queries need."""

    def __init__(self) -> None:
        self.tokens: dict[_Key, models.DeviceToken] = {}
        self.buckets: dict[str, list[dict[_Ref, None]]] = {}
        self.by_user: dict[tuple[str, str], set[_Key]] = {}
        self.by_topic: dict[tuple[str, str], set[_Key]] = {}
        self.by_device: dict[tuple[str, models.Platform, str], str] = {}
        self.per_app: Counter[tuple[str, models.Platform]] = Counter()

    def put(self, token: models.DeviceToken) -> models.DeviceToken | None:
        key = (token.app_id, token.platform, token.token)
        before = self.tokens.get(key)
        if before is not None:
            self._unindex(before)
        self.tokens[key] = token
        self._index(token)
        return before

    def remove(self, key: _Key) -> models.DeviceToken | None:
        token = self.tokens.pop(key, None)
        if token is not None:
            self._unindex(token)
        return token

    def _index(self, t: models.DeviceToken) -> None:
        key = (t.app_id, t.platform, t.token)
        buckets = self.buckets.get(t.app_id)
        if buckets is None:
            buckets = self.buckets[t.app_id] = [{} for _ in range(models.BUCKETS)]
        ref = _ref(t.platform, t.token)
        buckets[ref[0]][ref] = None
        if t.user_id:
            self.by_user.setdefault((t.app_id, t.user_id), set()).add(key)
        for topic in t.topics:
            self.by_topic.setdefault((t.app_id, topic), set()).add(key)
        self.per_app[(t.app_id, t.platform)] += 1

    def _unindex(self, t: models.DeviceToken) -> None:
        key = (t.app_id, t.platform, t.token)
        ref = _ref(t.platform, t.token)
        self.buckets[t.app_id][ref[0]].pop(ref, None)
        if t.user_id:
            _discard(self.by_user, (t.app_id, t.user_id), key)
        for topic in t.topics:
            _discard(self.by_topic, (t.app_id, topic), key)
        self.per_app[(t.app_id, t.platform)] -= 1

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


def _target(t: models.DeviceToken) -> TargetToken:
    return TargetToken(
        ref=_ref(t.platform, t.token),
        token=t.token,
        platform=t.platform,
        user_id=t.user_id,
        apns_environment=t.apns_environment,
        registered=True,
        last_seen_at=t.last_seen_at,
    )


class MemoryTokenStore:
    """`TokenStore` over `_Registry`."""

    def __init__(self, registry: _Registry) -> None:
        self._r = registry

    async def upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        """See `TokenStore.upsert`."""
        key = (reg.app_id, reg.platform, reg.token)
        before = self._r.tokens.get(key)
        token = _device_token(reg, before.created_at if before else now, now)
        self._r.put(token)
        if reg.device_id:
            at = (reg.app_id, reg.platform, reg.device_id)
            held = self._r.by_device.get(at)
            self._r.by_device[at] = reg.token
            if held is not None and held != reg.token:
                old = self._r.tokens.get((reg.app_id, reg.platform, held))
                if old is not None and old.device_id == reg.device_id:
                    self._r.remove((reg.app_id, reg.platform, held))
        return token, before is None

    async def insert_new(self, regs: Sequence[models.TokenRegistration], now: datetime) -> int:
        """See `TokenStore.insert_new`."""
        added = 0
        for reg in regs:
            key = (reg.app_id, reg.platform, reg.token)
            if key in self._r.tokens:
                continue
            self._r.put(_device_token(reg, now, now))
            if reg.device_id:
                self._r.by_device.setdefault((reg.app_id, reg.platform, reg.device_id), reg.token)
            added += 1
        return added

    async def delete(self, app_id: str, platform: models.Platform, token: str) -> bool:
        """See `TokenStore.delete`."""
        return self._r.remove((app_id, platform, token)) is not None

    async def delete_invalid(
        self, app_id: str, platform: models.Platform, token: str, invalid_since: datetime | None
    ) -> bool:
        """See `TokenStore.delete_invalid`."""
        key = (app_id, platform, token)
        stored = self._r.tokens.get(key)
        if stored is None or (invalid_since is not None and stored.last_seen_at >= invalid_since):
            return False
        self._r.remove(key)
        return True

    async def get(self, app_id: str, platform: models.Platform, token: str) -> models.DeviceToken | None:
        """See `TokenStore.get`."""
        return self._r.tokens.get((app_id, platform, token))

    async def prune(
        self, app_id: str, stale_before: datetime, platforms: frozenset[models.Platform], dry_run: bool
    ) -> int:
        """See `TokenStore.prune`. Walks the app's tokens: an operator command, not a hot path."""
        stale = [
            (t.app_id, t.platform, t.token)
            for t in self._app_tokens(app_id)
            if t.last_seen_at < stale_before and (not platforms or t.platform in platforms)
        ]
        if not dry_run:
            for key in stale:
                self._r.remove(key)
        return len(stale)

    def _app_tokens(self, app_id: str) -> list[models.DeviceToken]:
        out = []
        for bucket in self._r.buckets.get(app_id, ()):
            for _, platform, token in bucket:
                out.append(self._r.tokens[(app_id, models.Platform(platform), token)])
        return out

    async def count_targets(self, app_id: str, query: TargetQuery) -> int:
        """See `TokenStore.count_targets`."""
        keys = self._r.candidates(app_id, query)
        if keys is None:
            platforms = query.platforms or frozenset(models.PLATFORMS)
            return sum(self._r.per_app[(app_id, p)] for p in platforms)
        return sum(1 for k in keys if not query.platforms or k[1] in query.platforms)

    async def scan_targets(
        self, app_id: str, query: TargetQuery, buckets: tuple[int, int], after: Any, batch_size: int
    ) -> AsyncGenerator[list[TargetToken], None]:
        """See `TokenStore.scan_targets`: bucket by bucket, each bucket's refs sorted once."""
        lo, hi = buckets
        start: _Ref | None = after
        keys = self._r.candidates(app_id, query)
        if keys is None:
            refs = self._bucket_refs(app_id, lo, hi, start)
        else:
            chosen = sorted(_ref(k[1], k[2]) for k in keys if lo <= models.token_bucket(k[2]) < hi)
            refs = iter(chosen[bisect.bisect_right(chosen, start) :] if start is not None else chosen)
        page: list[TargetToken] = []
        for ref in refs:
            token = self._r.tokens.get((app_id, models.Platform(ref[1]), ref[2]))
            if token is None or (query.platforms and token.platform not in query.platforms):
                continue  # removed since the bucket was read, or filtered out
            page.append(_target(token))
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
            token = self._r.tokens.get((app_id, d.platform, d.token))
            if token is not None:
                out[(d.platform, d.token)] = _target(token)
        return out


def _device_token(reg: models.TokenRegistration, created_at: datetime, now: datetime) -> models.DeviceToken:
    return models.DeviceToken(
        app_id=reg.app_id,
        token=reg.token,
        platform=reg.platform,
        user_id=reg.user_id,
        topics=tuple(reg.topics),
        device_id=reg.device_id,
        locale=reg.locale,
        timezone=reg.timezone,
        app_version=reg.app_version,
        apns_environment=reg.apns_environment,
        created_at=created_at,
        last_seen_at=now,
    )


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


@dataclasses.dataclass
class _Log:
    """A dense numbered log; expired entries become holes, as deleted documents would."""

    entries: list[LogEntry | None] = dataclasses.field(default_factory=list)
    expiry: list[datetime] = dataclasses.field(default_factory=list)

    def read(self, after: int, limit: int) -> list[LogEntry]:
        out = []
        entries = self.entries
        for i in range(max(0, after), len(entries)):
            entry = entries[i]
            if entry is not None:
                out.append(entry)
                if len(out) == limit:
                    break
        return out

    def sweep(self, now: datetime) -> int:
        removed = 0
        for i, entry in enumerate(self.entries):
            if entry is not None and self.expiry[i] < now:
                self.entries[i] = None
                removed += entry.receipt is not None
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
        self.receipts: set[tuple[str, models.Platform, str]] = set()
        self.app_logs: dict[str, _Log] = {}
        self.note_logs: dict[str, _Log] = {}
        self.statuses: dict[str, Counter[models.DeliveryStatus]] = {}


_COUNTERS = {
    models.DeliveryStatus.DELIVERED: "delivered",
    models.DeliveryStatus.FAILED: "failed",
    models.DeliveryStatus.TOKEN_INVALID: "invalid_tokens",
    models.DeliveryStatus.EXPIRED: "expired",
}


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
            self._settle(note, models.NotificationState.COMPLETED, now)
        return note.view

    def _settle(self, note: _Note, state: models.NotificationState, now: datetime, error: str = "") -> None:
        nid = note.view.notification_id
        logged = self._q.statuses.get(nid, Counter())
        resolved = sum(logged.values())
        failed = state is models.NotificationState.FAILED
        note.view = dataclasses.replace(
            note.view,
            state=state,
            completed_at=now,
            updated_at=now,
            error=error,
            targeted=max(note.view.targeted, resolved),
            vanished=0 if failed else max(0, note.view.targeted - resolved),
            **{field: logged.get(status, 0) for status, field in _COUNTERS.items()},
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
        if note is not None and not note.view.state.finished:
            self._settle(note, models.NotificationState.FAILED, now, error)
        for pid in self._q.parts_of.get(notification_id, ()):
            p = self._q.parts.get(pid)
            if p is not None and not p.done:
                self._retire(p)


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
        new = []
        for d in drafts:
            seq = len(app_log.entries) + 1
            nseq = note.receipt_seq + 1
            note.receipt_seq = nseq
            key = (notification_id, d.platform, d.token)
            if key in self._q.receipts:
                entry = LogEntry(seq, nseq, None)  # a filler keeps the log dense
            else:
                self._q.receipts.add(key)
                receipt = models.Receipt(
                    f"{seq}.{nseq}", notification_id, app_id, d.token, d.platform, d.user_id, d.status,
                    d.provider_message_id, d.provider_status, d.reason, d.attempts, d.token_removed, d.at,
                )
                statuses[d.status] += 1
                new.append(receipt)
                entry = LogEntry(seq, nseq, receipt)
            app_log.entries.append(entry)
            app_log.expiry.append(expires_at)
            note_log.entries.append(entry)
            note_log.expiry.append(expires_at)
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
        return 0 if log is None else len(log.entries)

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

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["MemoryNotificationStore", "MemoryReceiptStore", "MemoryStores", "MemoryTokenStore"]
