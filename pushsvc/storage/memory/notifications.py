"""The notification queue of `memory://`: notifications, their partitions and idempotency keys.

A fan-out holds one `_Note` and a few `_Part`s, however many tokens it reaches, so
these stay plain objects; the per-token state is in `tokens` and `receipts`.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pushsvc import models
from pushsvc.storage.base import (
    DuplicateKey,
    Lane,
    NotificationDraft,
    NotificationRecord,
    Page,
    Partition,
    PartitionPlan,
    PartitionStatus,
    TargetQuery,
    booked,
    parse_notification_position,
)


@dataclasses.dataclass
class _Note:
    view: models.NotificationView
    query: TargetQuery | None
    rendered: Mapping[models.Platform, Mapping[str, Any]]
    expires_at: datetime | None
    partitions_total: int
    localized: Mapping[str, Mapping[models.Platform, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)
    traceparent: str = ""
    partitions_done: int = 0
    receipt_seq: int = 0
    throttle_next_at: datetime | None = None
    """The throttle's next free send instant (`reserve`); None before the first booking."""


@dataclasses.dataclass
class _Part:
    partition: Partition
    lease_expires_at: datetime
    targets: int = 0
    done: bool = False
    owner: str | None = None
    finished_by: str | None = None
    claims: int = 0


class Queue:
    """Notifications, partitions, idempotency keys, and each notification's receipt counts by status."""

    def __init__(self) -> None:
        self.notes: dict[str, _Note] = {}
        self.unfinished: set[str] = set()
        self.parts: dict[str, _Part] = {}
        self.open_parts: dict[Lane, dict[str, None]] = {lane: {} for lane in Lane}
        """Lane → its unfinished partitions: an express claim looks at express ones only."""
        self.parts_of: dict[str, list[str]] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.statuses: dict[str, Counter[models.DeliveryStatus]] = {}
        self.by_app: dict[str, list[tuple[datetime, str]]] = {}
        """App → (created_at, notification_id) of its notifications, ascending: the listing's index."""


_COUNTERS = {
    models.DeliveryStatus.DELIVERED: "delivered",
    models.DeliveryStatus.FAILED: "failed",
    models.DeliveryStatus.TOKEN_INVALID: "invalid_tokens",
    models.DeliveryStatus.EXPIRED: "expired",
    models.DeliveryStatus.CANCELLED: "cancelled",
}


def _counter_values(counts: Mapping[models.DeliveryStatus, int]) -> dict[str, Any]:
    """The view's counter fields from per-status counts (typed for dataclasses.replace)."""
    return {field: counts.get(status, 0) for status, field in _COUNTERS.items()}


class MemoryNotificationStore:
    """`NotificationStore` over `Queue`."""

    def __init__(self, queue: Queue) -> None:
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
            max_per_second=draft.max_per_second,
        )
        nid = draft.notification_id
        self._q.notes[nid] = _Note(
            view=view,
            query=draft.query,
            rendered=copy.deepcopy(dict(draft.rendered)),
            expires_at=draft.expires_at,
            partitions_total=len(plans),
            localized=copy.deepcopy({tag: dict(bodies) for tag, bodies in draft.localized.items()}),
            traceparent=draft.traceparent,
        )
        if not state.finished:
            self._q.unfinished.add(nid)
        ids = []
        for plan in plans:
            pid = f"{nid}:{plan.index:04d}"
            partition = Partition(
                pid, nid, draft.app_id, plan.index, plan.buckets, tuple(plan.devices), None, draft.created_at, draft.lane,
                plan.timezones,
            )
            self._q.parts[pid] = _Part(partition, lease_expires_at=plan.runnable_at or draft.runnable_at, targets=plan.targets)
            self._q.open_parts[draft.lane][pid] = None
            ids.append(pid)
        self._q.parts_of[nid] = ids
        bisect.insort(self._q.by_app.setdefault(draft.app_id, []), (draft.created_at, nid))
        return view

    async def get(self, app_id: str, notification_id: str) -> NotificationRecord | None:
        """See `NotificationStore.get`."""
        note = self._q.notes.get(notification_id)
        if note is None or note.view.app_id != app_id:
            return None
        return NotificationRecord(
            note.view, note.query, note.rendered, note.expires_at, note.receipt_seq, note.localized, note.traceparent
        )

    async def partitions(self, notification_id: str) -> list[PartitionStatus]:
        """See `NotificationStore.partitions`."""
        out = []
        for pid in self._q.parts_of.get(notification_id, ()):
            p = self._q.parts.get(pid)
            if p is not None:
                out.append(PartitionStatus(
                    pid, p.partition.index, p.done, p.owner, p.finished_by, p.claims, p.targets, p.lease_expires_at
                ))
        return out

    async def queue_depth(self) -> int:
        """See `NotificationStore.queue_depth`."""
        return len(self._q.unfinished)

    async def claim(self, owner: str, now: datetime, lease_s: float, lane: Lane | None = None) -> Partition | None:
        """See `NotificationStore.claim`: the runnable open partition of the lane whose lease ran out first."""
        best: _Part | None = None
        for queue in (Lane.EXPRESS, Lane.BULK) if lane is None else (lane,):
            for pid in self._q.open_parts[queue]:
                p = self._q.parts[pid]
                if p.lease_expires_at <= now and (best is None or p.lease_expires_at < best.lease_expires_at):
                    best = p
            if best is not None:
                break
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
        for pid in self._open():
            p = self._q.parts[pid]
            if p.owner == owner:
                p.owner = None
                p.lease_expires_at = now
                n += 1
        return n

    async def release_replica(self, replica_id: str, keep_owner: str, now: datetime) -> int:
        """See `NotificationStore.release_replica`."""
        n = 0
        for pid in self._open():
            p = self._q.parts[pid]
            if p.owner is not None and p.owner != keep_owner and p.owner.startswith(f"{replica_id}/"):
                p.owner = None
                p.lease_expires_at = now
                n += 1
        return n

    def _open(self) -> list[str]:
        return [pid for queue in self._q.open_parts.values() for pid in queue]

    def _retire(self, p: _Part) -> None:
        p.done = True
        p.owner = None
        self._q.open_parts[p.partition.lane].pop(p.partition.partition_id, None)

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
        if note.view.error:
            state = models.NotificationState.FAILED
        elif note.view.cancel_requested_at is not None:
            state = models.NotificationState.CANCELLED
        else:
            state = models.NotificationState.COMPLETED
        note.view = dataclasses.replace(
            note.view,
            state=state,
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
        if p is not None:
            self._q.open_parts[p.partition.lane].pop(partition_id, None)
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
        if note is None or note.view.state.finished or note.view.error or note.view.cancel_requested_at is not None:
            return
        note.view = dataclasses.replace(note.view, error=error, updated_at=now)
        if note.partitions_done >= note.partitions_total:
            self._settle(note, now)  # nothing left to sweep

    async def cancel(self, app_id: str, notification_id: str, now: datetime) -> models.NotificationView | None:
        """See `NotificationStore.cancel`."""
        note = self._q.notes.get(notification_id)
        if note is None or note.view.app_id != app_id:
            return None
        v = note.view
        if v.state.finished or v.error or v.cancel_requested_at is not None:
            return v
        note.view = dataclasses.replace(v, cancel_requested_at=now, updated_at=now)
        for pid in self._q.parts_of.get(notification_id, ()):
            p = self._q.parts.get(pid)
            # A scheduled partition that nobody holds sweeps now instead of at its send time.
            if p is not None and not p.done and p.owner is None and p.lease_expires_at > now:
                p.lease_expires_at = now
        if note.partitions_done >= note.partitions_total:
            self._settle(note, now)  # nothing left to sweep
        return note.view

    async def reserve(self, notification_id: str, count: int, per_second: int, not_before: datetime) -> datetime:
        """See `NotificationStore.reserve`: atomic because it never awaits."""
        note = self._q.notes.get(notification_id)
        if note is None:
            return not_before
        start = not_before if note.throttle_next_at is None else max(note.throttle_next_at, not_before)
        note.throttle_next_at = start + booked(count, per_second)
        return start

    async def list(
        self, where: models.NotificationFilter, after: tuple[str, ...] | None, limit: int
    ) -> Page[models.NotificationView]:
        """See `NotificationStore.list`: walks the app's index backwards from `after`."""
        keys = self._q.by_app.get(where.app_id, [])
        end = len(keys)
        if after is not None:
            end = bisect.bisect_left(keys, parse_notification_position(after))
        if where.created_before is not None:
            end = min(end, bisect.bisect_left(keys, (where.created_before, "")))
        out: list[models.NotificationView] = []
        for i in range(end - 1, -1, -1):
            created_at, nid = keys[i]
            if where.created_after is not None and created_at < where.created_after:
                break
            view = self._q.notes[nid].view
            if where.state is not None and view.state is not where.state:
                continue
            if len(out) == limit:
                last = out[-1]
                return Page(out, (last.created_at.isoformat(), last.notification_id))
            out.append(view)
        return Page(out, None)


__all__ = ["MemoryNotificationStore", "Queue"]
