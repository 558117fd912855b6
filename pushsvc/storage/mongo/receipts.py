"""`ReceiptStore` over `receipts`, numbered from `counters` and the notification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pymongo.errors
from pymongo import ReturnDocument

from pushsvc import errors, models
from pushsvc.storage.base import LogEntry, ReceiptDraft
from pushsvc.storage.mongo import codec, schema
from pushsvc.storage.mongo.client import Connection
from pushsvc.storage.mongo.runner import MongoRunner


def logged_counts(receipts: Any, notification_id: str) -> dict[models.DeliveryStatus, int]:
    """Receipts per status in the log of one notification (blocking; fillers have no status).

    Served by the notification_log index on a server. (mongomock copies every
    document of the collection for an aggregate: the embedded backend reads
    the tally `append` keeps instead, see `tallied_counts`.)
    """
    rows = receipts.aggregate(
        [{"$match": {"notification_id": notification_id}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    )
    return {models.DeliveryStatus(r["_id"]): int(r["n"]) for r in rows if r["_id"]}


def tallied_counts(notification: Mapping[str, Any]) -> dict[models.DeliveryStatus, int]:
    """Receipts per status as `append` tallied them on the notification.

    It can lag the log only if a process dies between a batch's insert and
    its tally, within one store call; the embedded backend lives in that
    process, so there it is exact.
    """
    tally = notification.get(codec.TALLY, {})
    return {status: int(tally.get(field, 0)) for status, field in codec.COUNTER_FIELDS.items() if tally.get(field)}


class MongoReceiptStore:
    """The numbered receipt log."""

    def __init__(self, runner: MongoRunner, conn: Connection) -> None:
        self._run = runner
        self._receipts = conn.collection(schema.RECEIPTS)
        self._counters = conn.collection(schema.COUNTERS)
        self._notifications = conn.collection(schema.NOTIFICATIONS)

    async def append(
        self, app_id: str, notification_id: str, drafts: Sequence[ReceiptDraft], expires_at: datetime
    ) -> list[models.Receipt]:
        """See `ReceiptStore.append`: two counter increments and one insert_many per batch."""
        if not drafts:
            return []
        return await self._run(self._append, app_id, notification_id, list(drafts), expires_at)

    def _append(
        self, app_id: str, notification_id: str, drafts: list[ReceiptDraft], expires_at: datetime
    ) -> list[models.Receipt]:
        n = len(drafts)
        counter = self._next_seq(app_id, n)
        note = self._notifications.find_one_and_update(
            {"_id": notification_id}, {"$inc": {"receipt_seq": n}}, return_document=ReturnDocument.AFTER
        )
        assert counter is not None  # upserted
        if note is None:
            raise errors.NotFound(f"notification {notification_id} is gone")
        first_seq = int(counter["seq"]) - n + 1
        first_nseq = int(note["receipt_seq"]) - n + 1
        docs = [
            codec.receipt_doc(app_id, notification_id, first_seq + i, first_nseq + i, d, expires_at)
            for i, d in enumerate(drafts)
        ]
        rejected: set[int] = set()
        try:
            self._receipts.insert_many(docs, ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            for err in exc.details.get("writeErrors", []):
                if err.get("code") != 11000:
                    raise
                rejected.add(int(err["index"]))
        if rejected:
            # Fill the numbers the duplicates would have used, so readers see a
            # dense sequence and never wait on a gap that will not close.
            self._receipts.insert_many(
                [
                    codec.filler_doc(app_id, notification_id, docs[i]["seq"], docs[i]["nseq"], expires_at)
                    for i in sorted(rejected)
                ],
                ordered=False,
            )
        written = [codec.receipt_from_doc(doc) for i, doc in enumerate(docs) if i not in rejected]
        tally = codec.tally_inc(written)
        if tally:
            self._notifications.update_one({"_id": notification_id}, {"$inc": tally})
        return written

    def _next_seq(self, app_id: str, n: int) -> Mapping[str, Any] | None:
        # Two first appends of an app can race to create its counter: the
        # loser's upsert fails on `_id`. MongoDB 4.2+ retries that itself;
        # older servers and FerretDB do not, and the counter exists by then.
        for attempt in range(3):
            try:
                return self._counters.find_one_and_update(
                    {"_id": schema.receipt_counter_key(app_id)},
                    {"$inc": {"seq": n}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except pymongo.errors.DuplicateKeyError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def read_app(self, app_id: str, after_seq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_app`."""
        flt = {"app_id": app_id, "seq": {"$gt": after_seq}}
        docs = await self._run(lambda: list(self._receipts.find(flt, sort=[("seq", 1)], limit=limit)))
        return [codec.entry_from_doc(d) for d in docs]

    async def read_notification(self, app_id: str, notification_id: str, after_nseq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_notification`."""
        flt = {"notification_id": notification_id, "app_id": app_id, "nseq": {"$gt": after_nseq}}
        docs = await self._run(lambda: list(self._receipts.find(flt, sort=[("nseq", 1)], limit=limit)))
        return [codec.entry_from_doc(d) for d in docs]

    async def last_seq(self, app_id: str) -> int:
        """See `ReceiptStore.last_seq`."""
        doc = await self._run(self._counters.find_one, {"_id": schema.receipt_counter_key(app_id)})
        return 0 if doc is None else int(doc["seq"])

    async def count_by_status(self, notification_id: str) -> dict[models.DeliveryStatus, int]:
        """See `ReceiptStore.count_by_status`."""
        return await self._run(logged_counts, self._receipts, notification_id)
