"""`NotificationStore` over `notifications`, `partitions` and `idempotency`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pymongo.errors
from pymongo import ReturnDocument

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
    booked,
)
from pushsvc.storage.mongo import codec, schema
from pushsvc.storage.mongo.client import Connection
from pushsvc.storage.mongo.receipts import logged_counts, tallied_counts
from pushsvc.storage.mongo.runner import MongoRunner

ORPHAN_KEY_AFTER_S = 60.0
"""An idempotency key whose notification never got stored is reusable after this long."""


class MongoNotificationStore:
    """The notification queue: leases are find-and-modify on partition documents."""

    def __init__(self, runner: MongoRunner, conn: Connection) -> None:
        self._run = runner
        self._notifications = conn.collection(schema.NOTIFICATIONS)
        self._partitions = conn.collection(schema.PARTITIONS)
        self._keys = conn.collection(schema.IDEMPOTENCY)
        self._receipts = conn.collection(schema.RECEIPTS)
        self._embedded = conn.embedded

    async def find_by_idempotency_key(self, app_id: str, key: str) -> models.NotificationView | None:
        """See `NotificationStore.find_by_idempotency_key`."""
        doc = await self._run(self._notifications.find_one, {"app_id": app_id, "idempotency_key": key})
        return None if doc is None else codec.view_from_doc(doc)

    async def create(self, draft: NotificationDraft, plans: Sequence[PartitionPlan]) -> models.NotificationView:
        """See `NotificationStore.create`."""
        doc = codec.notification_doc(draft, len(plans))
        partitions = codec.partition_docs(draft, plans)
        return await self._run(self._create, doc, partitions, draft.idempotency_key)

    def _create(self, doc: dict[str, Any], partitions: list[dict[str, Any]], key: str) -> models.NotificationView:
        if key:
            self._claim_key(doc["app_id"], key, doc["_id"], doc["created_at"])
        # Partitions first: a crash before the notification insert leaves only
        # orphans (dropped by the dispatcher), never a notification that nobody runs.
        if partitions:
            self._partitions.insert_many(partitions, ordered=False)
        try:
            self._notifications.insert_one(doc)
        except pymongo.errors.PyMongoError:
            self._partitions.delete_many({"notification_id": doc["_id"]})
            if key:
                self._keys.delete_one({"_id": schema.idempotency_key(doc["app_id"], key), "notification_id": doc["_id"]})
            raise
        return codec.view_from_doc(doc)

    def _claim_key(self, app_id: str, key: str, notification_id: str, now: datetime) -> None:
        key_id = schema.idempotency_key(app_id, key)
        for _ in range(2):
            try:
                self._keys.insert_one({"_id": key_id, "notification_id": notification_id, "created_at": now})
                return
            except pymongo.errors.DuplicateKeyError:
                held = self._keys.find_one({"_id": key_id})
                if held is None:
                    continue
                existing = held["notification_id"]
                stale = codec.must(held["created_at"]) < now - timedelta(seconds=ORPHAN_KEY_AFTER_S)
                if stale and self._notifications.find_one({"_id": existing}) is None:
                    # The Send that took this key died before storing its
                    # notification; nobody was told the id, so the key is free.
                    self._keys.delete_one({"_id": key_id, "notification_id": existing})
                    continue
                raise DuplicateKey(existing) from None
        raise DuplicateKey("")

    async def get(self, app_id: str, notification_id: str) -> NotificationRecord | None:
        """See `NotificationStore.get`."""
        doc = await self._run(self._notifications.find_one, {"_id": notification_id, "app_id": app_id})
        return None if doc is None else codec.record_from_doc(doc)

    async def partitions(self, notification_id: str) -> list[PartitionStatus]:
        """See `NotificationStore.partitions`."""
        docs = await self._run(
            lambda: list(self._partitions.find({"notification_id": notification_id}, sort=[("index", 1)]))
        )
        return [codec.partition_status_from_doc(d) for d in docs]

    async def queue_depth(self) -> int:
        """See `NotificationStore.queue_depth`."""
        return int(await self._run(self._notifications.count_documents, {"state": {"$in": codec.UNFINISHED}}))

    async def claim(self, owner: str, now: datetime, lease_s: float, lane: Lane | None = None) -> Partition | None:
        """See `NotificationStore.claim`: one find-and-modify per lane, express first."""
        for queue in (Lane.EXPRESS, Lane.BULK) if lane is None else (lane,):
            doc = await self._run(
                self._partitions.find_one_and_update,
                {"done": False, "lane": codec.lane_filter(queue), "lease_expires_at": {"$lte": now}},
                {"$set": {"owner": owner, "lease_expires_at": now + timedelta(seconds=lease_s)}, "$inc": {"claims": 1}},
                sort=[("lease_expires_at", 1)],
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return codec.partition_from_doc(doc)
        return None

    async def renew(self, partition_id: str, owner: str, now: datetime, lease_s: float) -> bool:
        """See `NotificationStore.renew`."""
        result = await self._run(
            self._partitions.update_one,
            {"_id": partition_id, "owner": owner, "done": False},
            {"$set": {"lease_expires_at": now + timedelta(seconds=lease_s)}},
        )
        return bool(result.matched_count)

    async def commit_batch(
        self,
        partition_id: str,
        owner: str,
        checkpoint: Any,
        counts: Mapping[models.DeliveryStatus, int],
        now: datetime,
        lease_s: float,
    ) -> bool:
        """See `NotificationStore.commit_batch`. Counters that a crash loses here are restored at completion."""
        return await self._run(self._commit_batch, partition_id, owner, checkpoint, counts, now, lease_s)

    def _commit_batch(
        self,
        partition_id: str,
        owner: str,
        checkpoint: Any,
        counts: Mapping[models.DeliveryStatus, int],
        now: datetime,
        lease_s: float,
    ) -> bool:
        result = self._partitions.update_one(
            {"_id": partition_id, "owner": owner, "done": False},
            {"$set": {"checkpoint": checkpoint, "lease_expires_at": now + timedelta(seconds=lease_s)}},
        )
        if not result.matched_count:
            return False
        inc = codec.counter_inc(counts)
        if inc:
            self._notifications.update_one(
                {"_id": schema.notification_of(partition_id)}, {"$inc": inc, "$set": {"updated_at": now}}
            )
        return True

    async def release(self, partition_id: str, owner: str, retry_at: datetime) -> None:
        """See `NotificationStore.release`."""
        await self._run(
            self._partitions.update_one,
            {"_id": partition_id, "owner": owner},
            {"$set": {"owner": None, "lease_expires_at": retry_at}},
        )

    async def release_all(self, owner: str, now: datetime) -> int:
        """See `NotificationStore.release_all`."""
        result = await self._run(
            self._partitions.update_many,
            {"owner": owner, "done": False},
            {"$set": {"owner": None, "lease_expires_at": now}},
        )
        return int(result.modified_count)

    async def release_replica(self, replica_id: str, keep_owner: str, now: datetime) -> int:
        """See `NotificationStore.release_replica`."""
        # An anchored prefix: the owner index can answer it (partitions are few in any case).
        result = await self._run(
            self._partitions.update_many,
            {"owner": {"$regex": f"^{re.escape(replica_id + '/')}", "$ne": keep_owner}, "done": False},
            {"$set": {"owner": None, "lease_expires_at": now}},
        )
        return int(result.modified_count)

    async def finish_partition(self, partition_id: str, owner: str, now: datetime) -> models.NotificationView | None:
        """See `NotificationStore.finish_partition`."""
        return await self._run(self._finish_partition, partition_id, owner, now)

    def _finish_partition(self, partition_id: str, owner: str, now: datetime) -> models.NotificationView | None:
        part = self._partitions.find_one_and_update(
            {"_id": partition_id, "owner": owner, "done": False},
            {"$set": {"done": True, "owner": None, "finished_at": now, "finished_by": owner}},
        )
        if part is None:
            return None
        doc = self._notifications.find_one_and_update(
            {"_id": part["notification_id"]},
            {"$inc": {"partitions_done": 1}, "$set": {"updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        if doc["partitions_done"] >= doc["partitions_total"] and doc["state"] in codec.UNFINISHED:
            doc = self._settle(doc, now)
        return codec.view_from_doc(doc)

    def _settle(self, doc: Mapping[str, Any], now: datetime) -> Mapping[str, Any]:
        # The counters become what the receipt log holds: increments lost to a
        # crash between a batch's receipts and its commit are restored here.
        if doc.get("error"):
            state = models.NotificationState.FAILED
        elif doc.get("cancel_requested_at") is not None:
            state = models.NotificationState.CANCELLED
        else:
            state = models.NotificationState.COMPLETED
        update: dict[str, Any] = {"state": state.value, "completed_at": now, "updated_at": now}
        logged = tallied_counts(doc) if self._embedded else logged_counts(self._receipts, doc["_id"])
        update.update(codec.reconciled(doc, logged))
        done = self._notifications.find_one_and_update(
            {"_id": doc["_id"], "state": {"$in": codec.UNFINISHED}}, {"$set": update}, return_document=ReturnDocument.AFTER
        )
        return done if done is not None else doc

    async def drop_partition(self, partition_id: str) -> None:
        """See `NotificationStore.drop_partition`."""
        await self._run(self._partitions.delete_one, {"_id": partition_id})

    async def mark_running(self, notification_id: str, now: datetime) -> None:
        """See `NotificationStore.mark_running`."""
        await self._run(
            self._notifications.update_one,
            {
                "_id": notification_id,
                "state": {"$in": [models.NotificationState.QUEUED.value, models.NotificationState.SCHEDULED.value]},
            },
            {"$set": {"state": models.NotificationState.RUNNING.value, "updated_at": now}},
        )

    async def fail(self, notification_id: str, error: str, now: datetime) -> None:
        """See `NotificationStore.fail`."""
        await self._run(self._fail, notification_id, error, now)

    def _fail(self, notification_id: str, error: str, now: datetime) -> None:
        # The first error stays: replicas that see the rejection at once agree on one.
        doc = self._notifications.find_one_and_update(
            {
                "_id": notification_id, "state": {"$in": codec.UNFINISHED}, "error": {"$in": ["", None]},
                "cancel_requested_at": None,  # the first verdict stays
            },
            {"$set": {"error": error, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None and doc["partitions_done"] >= doc["partitions_total"]:
            self._settle(doc, now)  # nothing left to sweep

    async def cancel(self, app_id: str, notification_id: str, now: datetime) -> models.NotificationView | None:
        """See `NotificationStore.cancel`."""
        return await self._run(self._cancel, app_id, notification_id, now)

    def _cancel(self, app_id: str, notification_id: str, now: datetime) -> models.NotificationView | None:
        doc = self._notifications.find_one_and_update(
            {
                "_id": notification_id, "app_id": app_id, "state": {"$in": codec.UNFINISHED},
                "error": {"$in": ["", None]}, "cancel_requested_at": None,
            },
            {"$set": {"cancel_requested_at": now, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            # Not ours, unknown, finished, failing or already cancelling: as it is.
            doc = self._notifications.find_one({"_id": notification_id, "app_id": app_id})
            return None if doc is None else codec.view_from_doc(doc)
        # A scheduled partition that nobody holds sweeps now instead of at its send time.
        self._partitions.update_many(
            {"notification_id": notification_id, "done": False, "owner": None, "lease_expires_at": {"$gt": now}},
            {"$set": {"lease_expires_at": now}},
        )
        if doc["partitions_done"] >= doc["partitions_total"]:
            doc = self._settle(doc, now)  # nothing left to sweep
        return codec.view_from_doc(doc)

    async def reserve(self, notification_id: str, count: int, per_second: int, not_before: datetime) -> datetime:
        """See `NotificationStore.reserve`: a `$max` to `not_before`, then an `$inc` by the booking, each atomic.

        The booking is `(after - length, after]` of the `$inc`: a counter that
        only grows hands out disjoint intervals, and a `$max` between two
        bookings only skips idle time. (One pipeline update would do both, but
        FerretDB 1.24 has no pipeline updates; `$max` and `$inc` are everywhere.)
        """
        length = booked(count, per_second) // timedelta(microseconds=1)
        return await self._run(self._reserve, notification_id, length, not_before)

    def _reserve(self, notification_id: str, length_us: int, not_before: datetime) -> datetime:
        field = codec.THROTTLE_NEXT
        self._notifications.update_one({"_id": notification_id}, {"$max": {field: codec.epoch_us(not_before)}})
        doc = self._notifications.find_one_and_update(
            {"_id": notification_id},
            {"$inc": {field: length_us}},
            # No projection: FerretDB 1.24's findAndModify has none.
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return not_before
        return codec.from_epoch_us(int(doc[field]) - length_us)

    async def list(
        self, where: models.NotificationFilter, after: tuple[str, ...] | None, limit: int
    ) -> Page[models.NotificationView]:
        """See `NotificationStore.list`: the by_created index, or by_state_created with a state."""
        flt = codec.notification_listing(where, after)
        docs = await self._run(
            lambda: list(self._notifications.find(flt, sort=codec.NOTIFICATION_ORDER, limit=limit + 1))
        )
        items = [codec.view_from_doc(d) for d in docs[:limit]]
        return Page(items, codec.notification_position(items[-1]) if len(docs) > limit else None)
