"""`ReceiptStore` over `receipts`, numbered from `counters` and the notification."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pymongo.errors
from pymongo import ReturnDocument

from pushsvc import errors, models
from pushsvc.storage.base import LogEntry, ReceiptDraft
from pushsvc.storage.mongo import codec, schema
from pushsvc.storage.mongo.client import Connection, ServerTraits
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


_OPEN_CURSORS = 64
"""Replays whose cursor is kept between pages (the least recently read is closed first)."""


class MongoReceiptStore:
    """The numbered receipt log."""

    def __init__(self, runner: MongoRunner, conn: Connection) -> None:
        self._run = runner
        self._receipts = conn.collection(schema.RECEIPTS)
        self._counters = conn.collection(schema.COUNTERS)
        self._notifications = conn.collection(schema.NOTIFICATIONS)
        self._keep_cursors = False
        # (app, notification) -> an open cursor over its log, and the nseq it stopped after.
        self._cursors: collections.OrderedDict[tuple[str, str], tuple[Any, int]] = collections.OrderedDict()

    def adapt(self, traits: ServerTraits) -> None:
        """Keeps a replay's cursor open between pages where each query scans and sorts (see `read_notification`)."""
        self._keep_cursors = not traits.indexed_queries

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
        """See `ReceiptStore.read_notification`.

        On a server whose queries scan (FerretDB), a page that filled `limit`
        leaves its cursor open, and the next read of that notification after
        the page's last number goes on with it instead of a new query: each
        query there scans the whole receipt log and sorts every receipt of
        the notification, so reading a 20,000-receipt notification page by
        page cost 40 such queries (3 to 4 s each, measured 2026-12-06), and
        one cursor over all of it 2.75 s. Any other read starts a new query,
        so a page never misses a receipt committed after the cursor opened:
        such a receipt leaves a gap, the reader stops before it and asks again
        from the number before it.
        """
        if self._keep_cursors:
            docs = await self._run(self._read_on, app_id, notification_id, after_nseq, limit)
        else:
            flt = {"notification_id": notification_id, "app_id": app_id, "nseq": {"$gt": after_nseq}}
            docs = await self._run(lambda: list(self._receipts.find(flt, sort=[("nseq", 1)], limit=limit)))
        return [codec.entry_from_doc(d) for d in docs]

    def _read_on(self, app_id: str, notification_id: str, after_nseq: int, limit: int) -> list[Any]:
        key = (app_id, notification_id)
        held = self._cursors.pop(key, None)
        cursor = None
        if held is not None:
            if held[1] == after_nseq:
                cursor = held[0]
            else:
                held[0].close()
        docs: list[Any] = []
        if cursor is not None:
            try:
                docs = list(itertools.islice(cursor, limit))
            except pymongo.errors.OperationFailure:
                # The server dropped the idle cursor (MongoDB after 10 minutes): start again.
                cursor.close()
                cursor = None
        if cursor is None:
            flt = {"notification_id": notification_id, "app_id": app_id, "nseq": {"$gt": after_nseq}}
            cursor = self._receipts.find(flt, sort=[("nseq", 1)], batch_size=limit)
            docs = list(itertools.islice(cursor, limit))
        if len(docs) < limit or not docs:
            cursor.close()  # at the end of the log as it was: later receipts need a new query
            return docs
        self._cursors[key] = (cursor, int(docs[-1]["nseq"]))
        while len(self._cursors) > _OPEN_CURSORS:
            self._cursors.popitem(last=False)[1][0].close()
        return docs

    def close(self) -> None:
        """Closes the cursors kept open between pages."""
        while self._cursors:
            self._cursors.popitem()[1][0].close()

    async def last_seq(self, app_id: str) -> int:
        """See `ReceiptStore.last_seq`."""
        doc = await self._run(self._counters.find_one, {"_id": schema.receipt_counter_key(app_id)})
        return 0 if doc is None else int(doc["seq"])

    async def count_by_status(self, notification_id: str) -> dict[models.DeliveryStatus, int]:
        """See `ReceiptStore.count_by_status`."""
        return await self._run(logged_counts, self._receipts, notification_id)
