"""The MongoDB schema: collection names, document keys, and every index the adapter declares.

`INDEXES` is the single declaration: `ensure_indexes()` creates it, and the
index-coverage test checks every filter and sort the adapter sends against it
(every collection also has its `_id` index). Backend differences are listed in
`tests/storage/README.md`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pymongo.errors
from pymongo.database import Database

from pushsvc import models

TOKENS = "tokens"
DEVICES = "devices"
NOTIFICATIONS = "notifications"
PARTITIONS = "partitions"
IDEMPOTENCY = "idempotency"
RECEIPTS = "receipts"
COUNTERS = "counters"
WEBHOOK_CURSORS = "webhook_cursors"


@dataclasses.dataclass(frozen=True)
class Index:
    """One declared secondary index."""

    collection: str
    keys: tuple[str, ...]
    name: str
    ttl: bool = False
    """A retention index (expireAfterSeconds=0) where the server has TTL indexes."""


INDEXES: tuple[Index, ...] = (
    # (app_id, platform, token) is unique through `_id` itself (`token_key`),
    # which makes upserts, lookups and deletes primary-key operations, and
    # orders an app's tokens by bucket so a partition is one `_id` range.
    Index(TOKENS, ("app_id", "user_id"), "by_user"),
    Index(TOKENS, ("app_id", "topics"), "by_topic"),
    Index(TOKENS, ("app_id", "last_seen_at"), "by_last_seen"),
    Index(TOKENS, ("app_id", "device_id"), "by_device"),
    # A local-time Send counts an app's tokens per zone.
    Index(TOKENS, ("app_id", "timezone"), "by_timezone"),
    # The idempotency key's uniqueness lives in `idempotency` (`_id` = app and
    # key); this index serves lookups by key.
    Index(NOTIFICATIONS, ("app_id", "idempotency_key"), "by_idempotency_key"),
    Index(NOTIFICATIONS, ("state",), "by_state"),
    # ListNotifications: an app's notifications newest first, all or in one state.
    Index(NOTIFICATIONS, ("app_id", "created_at", "_id"), "by_created"),
    Index(NOTIFICATIONS, ("app_id", "state", "created_at", "_id"), "by_state_created"),
    # A claim is per lane (express first): an express claim never walks a
    # campaign's bulk partitions. (It replaces `claimable` on (done, lease_expires_at),
    # which a database made before lanes still has and nothing uses.)
    Index(PARTITIONS, ("done", "lane", "lease_expires_at"), "claimable_by_lane"),
    Index(PARTITIONS, ("notification_id", "index"), "by_notification"),
    Index(PARTITIONS, ("owner", "done"), "by_owner"),
    # Not unique: the numbers come from atomic counters, and one receipt per
    # token is enforced by `_id`. (A unique index would add a check on every insert.)
    Index(RECEIPTS, ("app_id", "seq"), "app_log"),
    Index(RECEIPTS, ("notification_id", "nseq"), "notification_log"),
    Index(RECEIPTS, ("expires_at",), "retention", ttl=True),
)

_NOT_IMPLEMENTED = 238


def token_key(app_id: str, platform: models.Platform, token: str) -> str:
    """The registry `_id`: unique per (app_id, platform, token); sorts by app, then bucket."""
    return f"{app_id}\x00{models.token_bucket(token):04d}\x00{platform.value}\x00{token}"


def bucket_bound(app_id: str, bucket: int) -> str:
    """The smallest `token_key` of a bucket (and the bound just past the bucket before it)."""
    return f"{app_id}\x00{bucket:04d}\x00"


def device_key(app_id: str, platform: models.Platform, device_id: str) -> str:
    """The `devices` `_id`: which token a device holds, per app and platform."""
    return f"{app_id}\x00{platform.value}\x00{device_id}"


def receipt_key(notification_id: str, platform: models.Platform, token: str) -> str:
    """The receipt `_id`: one receipt per (notification, platform, token)."""
    return f"{notification_id}\x00{platform.value}\x00{token}"


def partition_key(notification_id: str, index: int) -> str:
    """The partition `_id`; `notification_of` inverts it."""
    return f"{notification_id}:{index:04d}"


def notification_of(partition_id: str) -> str:
    """The notification a partition `_id` belongs to."""
    return partition_id.rpartition(":")[0]


def idempotency_key(app_id: str, key: str) -> str:
    """The `idempotency` `_id`."""
    return f"{app_id}\x00{key}"


def receipt_counter_key(app_id: str) -> str:
    """The `counters` `_id` of an app's receipt sequence."""
    return f"receipts\x00{app_id}"


def webhook_cursor_key(app_id: str, endpoint: str) -> str:
    """The `webhook_cursors` `_id`: one cursor per (app, endpoint)."""
    return f"{app_id}\x00{endpoint}"


def ensure_indexes(db: Database[Any], *, ttl: bool) -> bool:
    """Creates every declared index (idempotent); returns whether the TTL index is in place."""
    ttl_in_place = False
    for index in INDEXES:
        keys = [(k, 1) for k in index.keys]
        if index.ttl and ttl:
            try:
                db[index.collection].create_index(keys, expireAfterSeconds=0, name=index.name)
                ttl_in_place = True
                continue
            except pymongo.errors.OperationFailure as exc:
                if exc.code != _NOT_IMPLEMENTED:
                    raise
                # FerretDB 1.x has no TTL indexes; the owner runs sweep_expired() instead.
        db[index.collection].create_index(keys, name=index.name)
    return ttl_in_place
