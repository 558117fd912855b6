"""MongoDB implementation of the storage ports, through pymongo.

The same code serves a real server (`mongodb://`, `mongodb+srv://`) and the
embedded `mongomock://` backend. pymongo is blocking, so every call runs on an
executor behind the async Protocols. mongomock is not thread-safe (its
find-and-modify is a read followed by a write), so the embedded backend gets a
single-thread executor: that makes each call atomic, as it is on a server.

Where the backends differ, the code is written for real MongoDB semantics:
leases via `find_one_and_update`, unique indexes, upserts with
`$setOnInsert`, TTL indexes. Differences found so far:

- mongomock's `bulk_write` with `UpdateOne` breaks on pymongo >= 4.11
  (mongomock#912): nothing here uses `bulk_write`.
- mongomock has no transactions or change streams: nothing here uses them;
  receipt readers poll a numbered log instead of watching a change stream.
- Partial unique indexes are not used for the idempotency key: the key lives
  in its own collection (`idempotency`, `_id` = app and key), which gives the
  same guarantee on every backend.
- Datetimes come back naive from some backends; `_aware()` normalises to UTC.
- mongomock emulates TTL indexes by scanning the collection on every
  operation; the embedded backend uses the periodic sweep instead.
- mongomock has no real indexes (every filter is a scan, unique indexes are
  checked by scanning), so the registry's uniqueness is carried by `_id`, which
  is a dictionary key there and a primary key everywhere.
- FerretDB 1.24 (SQLite): no TTL indexes (`sweep_expired()` runs instead), no
  partial indexes, no projection in findAndModify, and concurrent updates are
  not atomic (racing findAndModify calls all succeed; concurrent $inc lose
  updates). Calls to FerretDB are therefore serialised within a process; it
  stands in for MongoDB in tests, not for a multi-replica production store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pymongo
import pymongo.errors
from pymongo import ReturnDocument
from pymongo.database import Database

from pushsvc import errors, models
from pushsvc.storage.base import (
    DuplicateKey,
    LogEntry,
    NotificationRecord,
    Partition,
    ReceiptDraft,
    TargetQuery,
    TargetToken,
)

ORPHAN_KEY_AFTER_S = 60.0
"""An idempotency key whose notification never got stored is reusable after this long."""

BUCKETS = 1024
"""Tokens hash into this many buckets; partitions of a fan-out own bucket ranges."""

_T = TypeVar("_T")


def token_key(app_id: str, platform: models.Platform, token: str) -> str:
    """The registry `_id`: unique per (app_id, platform, token), ordered by app first."""
    return f"{app_id}\x00{platform.value}\x00{token}"


def token_bucket(token: str) -> int:
    """The stable bucket of a token, used to split fan-outs into partitions."""
    return zlib.crc32(token.encode()) % BUCKETS


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _must(dt: datetime | None) -> datetime:
    value = _aware(dt)
    assert value is not None
    return value


class MongoRunner:
    """Runs blocking pymongo calls off the event loop and maps driver errors."""

    def __init__(
        self,
        db: Database[Any],
        *,
        threads: int,
        retry_after_failure_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pushsvc-store")
        self._serial: asyncio.Lock | None = None
        self._retry_after_failure_s = retry_after_failure_s
        self._monotonic = monotonic
        self._down_until = -math.inf

    def serialize(self) -> None:
        """Runs one call at a time from now on (for servers whose updates are not atomic)."""
        self._serial = asyncio.Lock()

    async def __call__(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Runs `fn` on the executor; fails fast while the store is known to be down."""
        return await self._guarded(False, fn, *args, **kwargs)

    async def probe(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Like a call, but always reaches the server: the health check uses it to notice recovery."""
        return await self._guarded(True, fn, *args, **kwargs)

    async def _guarded(self, probe: bool, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        # A circuit breaker: after a failure, calls fail at once for a moment
        # instead of each waiting out the server-selection timeout (and, when
        # serialised, queueing behind each other past the caller's deadline).
        self._check_breaker(probe)
        if self._serial is None:
            return await self._tracked(fn, *args, **kwargs)
        async with self._serial:
            self._check_breaker(probe)
            return await self._tracked(fn, *args, **kwargs)

    def _check_breaker(self, probe: bool) -> None:
        if not probe and self._monotonic() < self._down_until:
            raise errors.StoreUnavailable("store unreachable (recent failure; retrying shortly)")

    async def _tracked(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            result = await self._call(fn, *args, **kwargs)
        except errors.StoreUnavailable:
            self._down_until = self._monotonic() + self._retry_after_failure_s
            raise
        self._down_until = -math.inf
        return result

    async def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        except pymongo.errors.DuplicateKeyError:
            raise
        except (pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError) as exc:
            raise errors.StoreUnavailable(f"store unreachable: {type(exc).__name__}") from exc
        except pymongo.errors.PyMongoError as exc:
            if isinstance(exc, pymongo.errors.BulkWriteError):
                raise
            if getattr(exc, "timeout", False):
                raise errors.StoreUnavailable(f"store timed out: {type(exc).__name__}") from exc
            raise

    def close(self) -> None:
        """Stops the executor; pending calls finish first."""
        self._executor.shutdown(wait=True, cancel_futures=True)


@dataclasses.dataclass
class MongoStores:
    """The three stores over one database, plus its lifecycle."""

    tokens: MongoTokenStore
    notifications: MongoNotificationStore
    receipts: MongoReceiptStore
    runner: MongoRunner
    client: Any

    embedded: bool = False
    """True for mongomock (already one call at a time; has no buildInfo)."""
    ttl_supported: bool = True
    """False when the server has no TTL indexes; then `sweep_expired()` must run periodically."""

    async def ensure_indexes(self) -> None:
        """Creates every index DESIGN.md lists (idempotent) and adapts to the server's gaps."""
        info = {} if self.embedded else await self.runner(self.runner.db.client.admin.command, "buildInfo")
        if "ferretdbVersion" in info:
            # FerretDB 1.x applies concurrent updates non-atomically: racing
            # findAndModify calls all "win" and concurrent $inc lose updates
            # (tests/storage/README.md). One call at a time restores MongoDB's
            # per-document atomicity within this process.
            self.runner.serialize()
        # mongomock emulates TTL by scanning the whole collection on every
        # operation, which makes receipt writes quadratic; the sweep is cheaper.
        self.ttl_supported = await self.runner(_ensure_indexes, self.runner.db, ttl=not self.embedded)

    async def sweep_expired(self, now: datetime) -> int:
        """Deletes receipts past retention, for servers without TTL indexes."""
        result = await self.runner(self.runner.db["receipts"].delete_many, {"expires_at": {"$lt": now}})
        return int(result.deleted_count)

    async def ping(self) -> bool:
        """True when the server answers a ping."""
        try:
            await self.runner.probe(self.runner.db.command, "ping")
        except (errors.StoreUnavailable, pymongo.errors.PyMongoError):
            return False
        return True

    def close(self) -> None:
        """Closes the client and the executor."""
        self.runner.close()
        self.client.close()


def open_stores(url: str, *, timeout_ms: int = 2000, database: str | None = None) -> MongoStores:
    """Connects lazily to `url` (mongodb://, mongodb+srv:// or mongomock://).

    Nothing is sent until the first call; `ensure_indexes()` is the first.
    """
    parts = urlsplit(url)
    db_name = database or parts.path.strip("/") or "pushsvc"
    if parts.scheme == "mongomock":
        import mongomock  # only the embedded backend needs it

        client: Any = mongomock.MongoClient(tz_aware=True)
        threads = 1
    elif parts.scheme in ("mongodb", "mongodb+srv"):
        client = pymongo.MongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 5, 10000),
            retryWrites=True,
        )
        threads = 16
    else:
        raise ValueError(f"unsupported store URL scheme {parts.scheme!r}: use mongodb://, mongodb+srv:// or mongomock://")
    runner = MongoRunner(client[db_name], threads=threads)
    return MongoStores(
        tokens=MongoTokenStore(runner),
        notifications=MongoNotificationStore(runner),
        receipts=MongoReceiptStore(runner),
        runner=runner,
        client=client,
        embedded=parts.scheme == "mongomock",
    )


def _ensure_indexes(db: Database[Any], *, ttl: bool = True) -> bool:
    tokens = db["tokens"]
    # (app_id, platform, token) is unique through `_id` itself (see token_key()),
    # which makes upserts, lookups and deletes primary-key operations.
    tokens.create_index([("app_id", 1), ("user_id", 1)], name="by_user")
    tokens.create_index([("app_id", 1), ("topics", 1)], name="by_topic")
    tokens.create_index([("app_id", 1), ("last_seen_at", 1)], name="by_last_seen")
    tokens.create_index([("app_id", 1), ("device_id", 1)], name="by_device")
    tokens.create_index([("app_id", 1), ("bucket", 1), ("_id", 1)], name="by_bucket")
    notifications = db["notifications"]
    # The idempotency key's uniqueness lives in `idempotency` (see module docstring);
    # this index serves lookups by key.
    notifications.create_index([("app_id", 1), ("idempotency_key", 1)], name="by_idempotency_key")
    notifications.create_index([("state", 1)], name="by_state")
    db["partitions"].create_index([("done", 1), ("lease_expires_at", 1)], name="claimable")
    db["partitions"].create_index([("notification_id", 1)], name="by_notification")
    receipts = db["receipts"]
    # Not unique: the numbers come from atomic counters, and one receipt per
    # token is enforced by `_id`. (A unique index would add a check on every insert.)
    receipts.create_index([("app_id", 1), ("seq", 1)], name="app_log")
    receipts.create_index([("notification_id", 1), ("nseq", 1)], name="notification_log")
    if not ttl:
        receipts.create_index([("expires_at", 1)], name="retention")
        return False
    try:
        receipts.create_index([("expires_at", 1)], expireAfterSeconds=0, name="retention")
    except pymongo.errors.OperationFailure as exc:
        if exc.code != _NOT_IMPLEMENTED:
            raise
        # FerretDB 1.x has no TTL indexes; the owner runs sweep_expired() instead.
        receipts.create_index([("expires_at", 1)], name="retention")
        return False
    return True


_NOT_IMPLEMENTED = 238


# ---------------------------------------------------------------- tokens


def _token_from_doc(doc: Mapping[str, Any]) -> models.DeviceToken:
    return models.DeviceToken(
        app_id=doc["app_id"],
        token=doc["token"],
        platform=models.Platform(doc["platform"]),
        user_id=doc.get("user_id", ""),
        topics=tuple(doc.get("topics", ())),
        device_id=doc.get("device_id", ""),
        locale=doc.get("locale", ""),
        timezone=doc.get("timezone", ""),
        app_version=doc.get("app_version", ""),
        apns_environment=models.ApnsEnvironment(doc.get("apns_environment", "production")),
        created_at=_must(doc["created_at"]),
        last_seen_at=_must(doc["last_seen_at"]),
    )


def _target_from_doc(doc: Mapping[str, Any]) -> TargetToken:
    return TargetToken(
        ref=doc["_id"],
        token=doc["token"],
        platform=models.Platform(doc["platform"]),
        user_id=doc.get("user_id", ""),
        apns_environment=models.ApnsEnvironment(doc.get("apns_environment", "production")),
        registered=True,
        last_seen_at=_aware(doc.get("last_seen_at")),
    )


def _query_filter(app_id: str, query: TargetQuery) -> dict[str, Any]:
    flt: dict[str, Any] = {"app_id": app_id}
    if query.kind == "users":
        flt["user_id"] = {"$in": list(query.user_ids)}
    elif query.kind == "topic":
        flt["topics"] = query.topic
    elif query.kind != "all":
        raise ValueError(f"unknown target query kind {query.kind!r}")
    if query.platforms:
        flt["platform"] = {"$in": sorted(p.value for p in query.platforms)}
    return flt


class MongoTokenStore:
    """`TokenStore` over the `tokens` collection."""

    def __init__(self, runner: MongoRunner) -> None:
        self._run = runner
        self._tokens = runner.db["tokens"]

    async def upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        """See `TokenStore.upsert`."""
        return await self._run(self._upsert, reg, now)

    def _upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        key = {"_id": token_key(reg.app_id, reg.platform, reg.token)}
        update = {
            "$set": {
                "user_id": reg.user_id,
                "topics": list(reg.topics),
                "device_id": reg.device_id,
                "locale": reg.locale,
                "timezone": reg.timezone,
                "app_version": reg.app_version,
                "apns_environment": reg.apns_environment.value,
                "last_seen_at": now,
            },
            "$setOnInsert": {
                "app_id": reg.app_id,
                "platform": reg.platform.value,
                "token": reg.token,
                "created_at": now,
                "bucket": token_bucket(reg.token),
            },
        }
        for attempt in range(2):
            try:
                # No projection: FerretDB 1.x rejects findAndModify with "fields".
                before = self._tokens.find_one_and_update(key, update, upsert=True, return_document=ReturnDocument.BEFORE)
                break
            except pymongo.errors.DuplicateKeyError:
                # Two concurrent first registrations: the loser's upsert hits the
                # unique index; retrying turns it into an update.
                if attempt:
                    raise
        if reg.device_id:
            # The device got a new token: its old one is dead.
            self._tokens.delete_many(
                {
                    "app_id": reg.app_id,
                    "platform": reg.platform.value,
                    "device_id": reg.device_id,
                    "token": {"$ne": reg.token},
                }
            )
        created_at = now if before is None else _must(before["created_at"])
        token = models.DeviceToken(
            app_id=reg.app_id,
            token=reg.token,
            platform=reg.platform,
            user_id=reg.user_id,
            topics=reg.topics,
            device_id=reg.device_id,
            locale=reg.locale,
            timezone=reg.timezone,
            app_version=reg.app_version,
            apns_environment=reg.apns_environment,
            created_at=created_at,
            last_seen_at=now,
        )
        return token, before is None

    async def insert_new(self, regs: Sequence[models.TokenRegistration], now: datetime) -> int:
        """See `TokenStore.insert_new`. One insert_many; duplicates are skipped by the unique index."""
        if not regs:
            return 0
        docs = [
            {
                "_id": token_key(r.app_id, r.platform, r.token),
                "app_id": r.app_id,
                "platform": r.platform.value,
                "token": r.token,
                "user_id": r.user_id,
                "topics": list(r.topics),
                "device_id": r.device_id,
                "locale": r.locale,
                "timezone": r.timezone,
                "app_version": r.app_version,
                "apns_environment": r.apns_environment.value,
                "created_at": now,
                "last_seen_at": now,
                "bucket": token_bucket(r.token),
            }
            for r in regs
        ]
        return await self._run(self._insert_new, docs)

    def _insert_new(self, docs: list[dict[str, Any]]) -> int:
        try:
            return len(self._tokens.insert_many(docs, ordered=False).inserted_ids)
        except pymongo.errors.BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
            return int(exc.details.get("nInserted", 0))

    async def delete(self, app_id: str, platform: models.Platform, token: str) -> bool:
        """See `TokenStore.delete`."""
        result = await self._run(self._tokens.delete_one, {"_id": token_key(app_id, platform, token)})
        return bool(result.deleted_count)

    async def delete_invalid(
        self, app_id: str, platform: models.Platform, token: str, invalid_since: datetime | None
    ) -> bool:
        """See `TokenStore.delete_invalid`."""
        flt: dict[str, Any] = {"_id": token_key(app_id, platform, token)}
        if invalid_since is not None:
            flt["last_seen_at"] = {"$lt": invalid_since}
        result = await self._run(self._tokens.delete_one, flt)
        return bool(result.deleted_count)

    async def get(self, app_id: str, platform: models.Platform, token: str) -> models.DeviceToken | None:
        """See `TokenStore.get`."""
        doc = await self._run(self._tokens.find_one, {"_id": token_key(app_id, platform, token)})
        return None if doc is None else _token_from_doc(doc)

    async def prune(
        self, app_id: str, stale_before: datetime, platforms: frozenset[models.Platform], dry_run: bool
    ) -> int:
        """See `TokenStore.prune`. Served by the (app_id, last_seen_at) index."""
        flt: dict[str, Any] = {"app_id": app_id, "last_seen_at": {"$lt": stale_before}}
        if platforms:
            flt["platform"] = {"$in": sorted(p.value for p in platforms)}
        if dry_run:
            return int(await self._run(self._tokens.count_documents, flt))
        result = await self._run(self._tokens.delete_many, flt)
        return int(result.deleted_count)

    async def count_targets(self, app_id: str, query: TargetQuery) -> int:
        """See `TokenStore.count_targets`."""
        return int(await self._run(self._tokens.count_documents, _query_filter(app_id, query)))

    async def find_targets(
        self, app_id: str, query: TargetQuery, buckets: tuple[int, int], after: Any, limit: int
    ) -> list[TargetToken]:
        """See `TokenStore.find_targets`."""
        flt = _query_filter(app_id, query)
        flt["bucket"] = {"$gte": buckets[0], "$lt": buckets[1]}
        if after is not None:
            flt["_id"] = {"$gt": after}
        docs = await self._run(lambda: list(self._tokens.find(flt).sort("_id", 1).limit(limit)))
        return [_target_from_doc(d) for d in docs]

    async def lookup(
        self, app_id: str, devices: Sequence[models.Device]
    ) -> dict[tuple[models.Platform, str], TargetToken]:
        """See `TokenStore.lookup`."""
        if not devices:
            return {}
        flt = {"_id": {"$in": sorted({token_key(app_id, d.platform, d.token) for d in devices})}}
        docs = await self._run(lambda: list(self._tokens.find(flt)))
        return {(models.Platform(d["platform"]), d["token"]): _target_from_doc(d) for d in docs}


# ---------------------------------------------------------------- notifications


def _view_from_doc(doc: Mapping[str, Any]) -> models.NotificationView:
    return models.NotificationView(
        notification_id=doc["_id"],
        app_id=doc["app_id"],
        state=models.NotificationState(doc["state"]),
        targeted=int(doc.get("targeted", 0)),
        delivered=int(doc.get("delivered", 0)),
        failed=int(doc.get("failed", 0)),
        invalid_tokens=int(doc.get("invalid_tokens", 0)),
        expired=int(doc.get("expired", 0)),
        created_at=_must(doc["created_at"]),
        updated_at=_must(doc["updated_at"]),
        send_at=_aware(doc.get("send_at")),
        completed_at=_aware(doc.get("completed_at")),
        error=doc.get("error", ""),
        idempotency_key=doc.get("idempotency_key", ""),
    )


def _record_from_doc(doc: Mapping[str, Any]) -> NotificationRecord:
    q = doc.get("query")
    query = None
    if q is not None:
        query = TargetQuery(
            kind=q["kind"],
            user_ids=tuple(q.get("user_ids", ())),
            topic=q.get("topic", ""),
            platforms=frozenset(models.Platform(p) for p in q.get("platforms", ())),
        )
    return NotificationRecord(
        view=_view_from_doc(doc),
        query=query,
        rendered=doc.get("rendered", {}),
        expires_at=_aware(doc.get("expires_at")),
        receipt_seq=int(doc.get("receipt_seq", 0)),
    )


def _partition_from_doc(doc: Mapping[str, Any]) -> Partition:
    return Partition(
        partition_id=doc["_id"],
        notification_id=doc["notification_id"],
        app_id=doc["app_id"],
        index=int(doc["index"]),
        buckets=(int(doc["bucket_lo"]), int(doc["bucket_hi"])),
        devices=tuple(
            models.Device(
                token=d["token"],
                platform=models.Platform(d["platform"]),
                apns_environment=models.ApnsEnvironment(d.get("apns_environment", "production")),
            )
            for d in doc.get("devices", ())
        ),
        checkpoint=doc.get("checkpoint"),
        created_at=_must(doc["created_at"]),
    )


_UNFINISHED = [models.NotificationState.QUEUED.value, models.NotificationState.SCHEDULED.value, models.NotificationState.RUNNING.value]


class MongoNotificationStore:
    """`NotificationStore` over `notifications`, `partitions` and `idempotency`."""

    def __init__(self, runner: MongoRunner) -> None:
        self._run = runner
        self._notifications = runner.db["notifications"]
        self._partitions = runner.db["partitions"]
        self._keys = runner.db["idempotency"]

    async def find_by_idempotency_key(self, app_id: str, key: str) -> models.NotificationView | None:
        """See `NotificationStore.find_by_idempotency_key`."""
        doc = await self._run(self._notifications.find_one, {"app_id": app_id, "idempotency_key": key})
        return None if doc is None else _view_from_doc(doc)

    async def create(self, doc: Mapping[str, Any], partitions: Sequence[Mapping[str, Any]]) -> models.NotificationView:
        """See `NotificationStore.create`."""
        return await self._run(self._create, dict(doc), [dict(p) for p in partitions])

    def _create(self, doc: dict[str, Any], partitions: list[dict[str, Any]]) -> models.NotificationView:
        key = doc.get("idempotency_key")
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
                self._keys.delete_one({"_id": f"{doc['app_id']}\x00{key}", "notification_id": doc["_id"]})
            raise
        return _view_from_doc(doc)

    def _claim_key(self, app_id: str, key: str, notification_id: str, now: datetime) -> None:
        key_id = f"{app_id}\x00{key}"
        for _ in range(2):
            try:
                self._keys.insert_one({"_id": key_id, "notification_id": notification_id, "created_at": now})
                return
            except pymongo.errors.DuplicateKeyError:
                held = self._keys.find_one({"_id": key_id})
                if held is None:
                    continue
                existing = held["notification_id"]
                stale = _must(held["created_at"]) < now - timedelta(seconds=ORPHAN_KEY_AFTER_S)
                if stale and self._notifications.find_one({"_id": existing}, projection={"_id": 1}) is None:
                    # The Send that took this key died before storing its
                    # notification; nobody was told the id, so the key is free.
                    self._keys.delete_one({"_id": key_id, "notification_id": existing})
                    continue
                raise DuplicateKey(existing) from None
        raise DuplicateKey("")

    async def get(self, app_id: str, notification_id: str) -> NotificationRecord | None:
        """See `NotificationStore.get`."""
        doc = await self._run(self._notifications.find_one, {"_id": notification_id, "app_id": app_id})
        return None if doc is None else _record_from_doc(doc)

    async def queue_depth(self) -> int:
        """See `NotificationStore.queue_depth`."""
        return int(await self._run(self._notifications.count_documents, {"state": {"$in": _UNFINISHED}}))

    async def claim(self, owner: str, now: datetime, lease_s: float) -> Partition | None:
        """See `NotificationStore.claim`."""
        doc = await self._run(
            self._partitions.find_one_and_update,
            {"done": False, "lease_expires_at": {"$lte": now}},
            {"$set": {"owner": owner, "lease_expires_at": now + timedelta(seconds=lease_s)}, "$inc": {"claims": 1}},
            sort=[("lease_expires_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _partition_from_doc(doc)

    async def renew(self, partition_id: str, owner: str, now: datetime, lease_s: float) -> bool:
        """See `NotificationStore.renew`."""
        result = await self._run(
            self._partitions.update_one,
            {"_id": partition_id, "owner": owner, "done": False},
            {"$set": {"lease_expires_at": now + timedelta(seconds=lease_s)}},
        )
        return bool(result.matched_count)

    async def checkpoint(self, partition_id: str, owner: str, checkpoint: Any, now: datetime, lease_s: float) -> bool:
        """See `NotificationStore.checkpoint`."""
        result = await self._run(
            self._partitions.update_one,
            {"_id": partition_id, "owner": owner, "done": False},
            {"$set": {"checkpoint": checkpoint, "lease_expires_at": now + timedelta(seconds=lease_s)}},
        )
        return bool(result.matched_count)

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
        if doc["partitions_done"] >= doc["partitions_total"] and doc["state"] in _UNFINISHED:
            doc = self._complete(doc, now)
        return _view_from_doc(doc)

    def _complete(self, doc: Mapping[str, Any], now: datetime) -> Mapping[str, Any]:
        # targeted becomes what was actually resolved: tokens may have come and
        # gone between Send and fan-out.
        resolved = sum(int(doc.get(k, 0)) for k in ("delivered", "failed", "invalid_tokens", "expired"))
        done = self._notifications.find_one_and_update(
            {"_id": doc["_id"], "state": {"$in": _UNFINISHED}},
            {
                "$set": {
                    "state": models.NotificationState.COMPLETED.value,
                    "completed_at": now,
                    "updated_at": now,
                    "targeted": resolved,
                }
            },
            return_document=ReturnDocument.AFTER,
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
        self._notifications.update_one(
            {"_id": notification_id, "state": {"$in": _UNFINISHED}},
            {
                "$set": {
                    "state": models.NotificationState.FAILED.value,
                    "error": error,
                    "completed_at": now,
                    "updated_at": now,
                }
            },
        )
        self._partitions.update_many(
            {"notification_id": notification_id, "done": False}, {"$set": {"done": True, "owner": None}}
        )

    async def add_counts(self, notification_id: str, counts: Mapping[str, int], now: datetime) -> None:
        """See `NotificationStore.add_counts`."""
        inc = {k: v for k, v in counts.items() if v}
        if not inc:
            return
        await self._run(self._notifications.update_one, {"_id": notification_id}, {"$inc": inc, "$set": {"updated_at": now}})


# ---------------------------------------------------------------- receipts


def _receipt_from_doc(doc: Mapping[str, Any]) -> models.Receipt:
    return models.Receipt(
        cursor=f"{doc['seq']}.{doc['nseq']}",
        notification_id=doc["notification_id"],
        app_id=doc["app_id"],
        token=doc["token"],
        platform=models.Platform(doc["platform"]),
        user_id=doc.get("user_id", ""),
        status=models.DeliveryStatus(doc["status"]),
        provider_message_id=doc.get("provider_message_id", ""),
        provider_status=int(doc.get("provider_status", 0)),
        reason=doc.get("reason", ""),
        attempts=int(doc.get("attempts", 0)),
        token_removed=bool(doc.get("token_removed", False)),
        at=_must(doc["at"]),
    )


def _entry_from_doc(doc: Mapping[str, Any]) -> LogEntry:
    receipt = None if doc.get("filler") else _receipt_from_doc(doc)
    return LogEntry(seq=int(doc["seq"]), nseq=int(doc["nseq"]), receipt=receipt)


class MongoReceiptStore:
    """`ReceiptStore` over `receipts`, numbered from `counters` and the notification."""

    def __init__(self, runner: MongoRunner) -> None:
        self._run = runner
        self._receipts = runner.db["receipts"]
        self._counters = runner.db["counters"]
        self._notifications = runner.db["notifications"]

    async def append(
        self, app_id: str, notification_id: str, drafts: Sequence[ReceiptDraft], expires_at: datetime
    ) -> list[models.Receipt]:
        """See `ReceiptStore.append`."""
        if not drafts:
            return []
        return await self._run(self._append, app_id, notification_id, list(drafts), expires_at)

    def _append(
        self, app_id: str, notification_id: str, drafts: list[ReceiptDraft], expires_at: datetime
    ) -> list[models.Receipt]:
        n = len(drafts)
        counter = self._counters.find_one_and_update(
            {"_id": f"receipts\x00{app_id}"}, {"$inc": {"seq": n}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        note = self._notifications.find_one_and_update(
            {"_id": notification_id}, {"$inc": {"receipt_seq": n}}, return_document=ReturnDocument.AFTER
        )
        if note is None:
            raise errors.NotFound(f"notification {notification_id} is gone")
        first_seq = int(counter["seq"]) - n + 1
        first_nseq = int(note["receipt_seq"]) - n + 1
        docs = []
        for i, d in enumerate(drafts):
            docs.append(
                {
                    # One receipt per (notification, platform, token): a batch
                    # redone after a crash cannot add a second one.
                    "_id": f"{notification_id}\x00{d.platform.value}\x00{d.token}",
                    "app_id": app_id,
                    "notification_id": notification_id,
                    "seq": first_seq + i,
                    "nseq": first_nseq + i,
                    "token": d.token,
                    "platform": d.platform.value,
                    "user_id": d.user_id,
                    "status": d.status.value,
                    "provider_message_id": d.provider_message_id,
                    "provider_status": d.provider_status,
                    "reason": d.reason,
                    "attempts": d.attempts,
                    "token_removed": d.token_removed,
                    "at": d.at,
                    "expires_at": expires_at,
                }
            )
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
                    {
                        "_id": f"filler\x00{app_id}\x00{docs[i]['seq']}",
                        "app_id": app_id,
                        "notification_id": notification_id,
                        "seq": docs[i]["seq"],
                        "nseq": docs[i]["nseq"],
                        "filler": True,
                        "expires_at": expires_at,
                    }
                    for i in sorted(rejected)
                ],
                ordered=False,
            )
        return [_receipt_from_doc(doc) for i, doc in enumerate(docs) if i not in rejected]

    async def read_app(self, app_id: str, after_seq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_app`."""
        flt = {"app_id": app_id, "seq": {"$gt": after_seq}}
        docs = await self._run(lambda: list(self._receipts.find(flt).sort("seq", 1).limit(limit)))
        return [_entry_from_doc(d) for d in docs]

    async def read_notification(self, app_id: str, notification_id: str, after_nseq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_notification`."""
        flt = {"notification_id": notification_id, "app_id": app_id, "nseq": {"$gt": after_nseq}}
        docs = await self._run(lambda: list(self._receipts.find(flt).sort("nseq", 1).limit(limit)))
        return [_entry_from_doc(d) for d in docs]

    async def last_seq(self, app_id: str) -> int:
        """See `ReceiptStore.last_seq`."""
        doc = await self._run(self._counters.find_one, {"_id": f"receipts\x00{app_id}"})
        return 0 if doc is None else int(doc["seq"])
