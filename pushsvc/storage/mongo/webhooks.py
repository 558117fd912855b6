"""`WebhookCursorStore` over `webhook_cursors`: one document per (app, endpoint), keyed by `_id`."""

from __future__ import annotations

from datetime import datetime, timedelta

import pymongo.errors
from pymongo import ReturnDocument

from pushsvc.storage.base import WebhookCursor
from pushsvc.storage.mongo import codec, schema
from pushsvc.storage.mongo.client import Connection
from pushsvc.storage.mongo.runner import MongoRunner

_EXPIRED = datetime(1970, 1, 1)
"""A released lease's end: past for every `now`."""


class MongoWebhookCursorStore:
    """Leases are find-and-modify on the cursor's document, as partitions' are."""

    def __init__(self, runner: MongoRunner, conn: Connection) -> None:
        self._run = runner
        self._cursors = conn.collection(schema.WEBHOOK_CURSORS)

    async def lease(
        self, app_id: str, endpoint: str, owner: str, start_seq: int, now: datetime, lease_s: float
    ) -> WebhookCursor | None:
        """See `WebhookCursorStore.lease`."""
        return await self._run(self._lease, schema.webhook_cursor_key(app_id, endpoint), owner, start_seq, now, lease_s)

    def _lease(self, key: str, owner: str, start_seq: int, now: datetime, lease_s: float) -> WebhookCursor | None:
        until = now + timedelta(seconds=lease_s)
        for _ in range(2):
            doc = self._cursors.find_one_and_update(
                {"_id": key, "$or": [{"owner": owner}, {"lease_expires_at": {"$lte": now}}]},
                {"$set": {"owner": owner, "lease_expires_at": until}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return codec.webhook_cursor_from_doc(doc)
            try:
                self._cursors.insert_one(
                    {"_id": key, "seq": start_seq, **codec.webhook_cursor_fields(WebhookCursor(seq=start_seq)),
                     "owner": owner, "lease_expires_at": until}
                )
            except pymongo.errors.DuplicateKeyError:
                # It exists: held by another owner, or it was released or expired
                # between the two calls (then the second round takes it).
                continue
            return WebhookCursor(seq=start_seq)
        return None

    async def save(
        self, app_id: str, endpoint: str, owner: str, cursor: WebhookCursor, now: datetime, lease_s: float
    ) -> bool:
        """See `WebhookCursorStore.save`: `$max` keeps the seq from going back."""
        result = await self._run(
            self._cursors.update_one,
            {"_id": schema.webhook_cursor_key(app_id, endpoint), "owner": owner, "lease_expires_at": {"$gt": now}},
            {
                "$max": {"seq": cursor.seq},
                "$set": {**codec.webhook_cursor_fields(cursor), "lease_expires_at": now + timedelta(seconds=lease_s)},
            },
        )
        return bool(result.matched_count)

    async def release(self, app_id: str, endpoint: str, owner: str) -> None:
        """See `WebhookCursorStore.release`."""
        await self._run(
            self._cursors.update_one,
            {"_id": schema.webhook_cursor_key(app_id, endpoint), "owner": owner},
            {"$set": {"owner": "", "lease_expires_at": _EXPIRED}},
        )
