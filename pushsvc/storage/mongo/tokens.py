"""`TokenStore` over the `tokens` and `devices` collections."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Any

import pymongo.errors
from pymongo import DeleteOne, ReturnDocument, UpdateOne

from pushsvc import errors, models
from pushsvc.storage.base import Page, TargetQuery, TargetToken
from pushsvc.storage.mongo import codec, schema
from pushsvc.storage.mongo.client import Connection, ServerTraits
from pushsvc.storage.mongo.runner import MongoRunner


class MongoTokenStore:
    """The token registry; every per-token operation is an `_id` operation."""

    def __init__(self, runner: MongoRunner, conn: Connection) -> None:
        self._run = runner
        self._tokens = conn.collection(schema.TOKENS)
        self._devices = conn.collection(schema.DEVICES)
        self._embedded = conn.embedded
        # A server sends a scan only what a target needs. mongomock applies a
        # projection field by field through its spec code, which costs more
        # than its copy of the whole document (measured on a fan-out's scan).
        self._target_fields: dict[str, int] | None = None if conn.embedded else codec.TARGET_FIELDS
        self._bulk_ops = _BULK_OPS
        self._insert_first = False

    def adapt(self, traits: ServerTraits) -> None:
        """Bounds each bulk write by what the server can take in one command, and inserts new tokens
        first where updates cost more than inserts (see `ServerTraits`)."""
        self._bulk_ops = min(_BULK_OPS, traits.updates_per_command)
        self._insert_first = not traits.indexed_updates

    async def upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        """See `TokenStore.upsert`."""
        return await self._run(self._upsert, reg, now)

    def _upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        key = {"_id": schema.token_key(reg.app_id, reg.platform, reg.token)}
        update = codec.token_upsert(reg, now)
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
            self._rotate(reg)
        created_at = now if before is None else codec.must(before["created_at"])
        token = models.DeviceToken.registered(reg, created_at=created_at, last_seen_at=now)
        return token, before is None

    def _rotate(self, reg: models.TokenRegistration) -> None:
        # `devices` maps (app, platform, device_id) to the token the device
        # holds, so rotation is two key operations instead of a query over
        # the app's tokens. The old token goes only if it still names this
        # device (it may have been re-registered for another one since).
        held = self._devices.find_one_and_update(
            {"_id": schema.device_key(reg.app_id, reg.platform, reg.device_id)},
            {"$set": {"token": reg.token}},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )
        if held is not None and held.get("token") != reg.token:
            self._tokens.delete_one(
                {"_id": schema.token_key(reg.app_id, reg.platform, held["token"]), "device_id": reg.device_id}
            )

    async def upsert_many(self, regs: Sequence[models.TokenRegistration], now: datetime) -> list[bool]:
        """See `TokenStore.upsert_many`: ordered bulk writes of upserts, then the batch's rotations.

        Where updates by `_id` cost a scan (FerretDB, `ServerTraits.indexed_updates`),
        new tokens are inserted first and only the rest are upserted.

        At most `_BULK_OPS` upserts go in one store call, so each call stays
        well inside the socket timeout on slower servers (FerretDB's SQLite
        backend takes about 2 ms per upsert), and fewer where the server
        cannot take that many in one `update` command (FerretDB: 25, see
        `ServerTraits.updates_per_command`).
        """
        created: list[bool] = []
        n = self._bulk_ops
        for i in range(0, len(regs), n):
            created += await self._run(self._upsert_many, regs[i : i + n], now)
        return created

    def _upsert_many(self, regs: Sequence[models.TokenRegistration], now: datetime) -> list[bool]:
        if self._embedded:
            # mongomock's bulk_write of UpdateOne is broken with pymongo >= 4.11
            # (tests/storage/README.md); its one store thread makes this loop atomic.
            return [self._upsert(r, now)[1] for r in regs]
        keys = [schema.token_key(r.app_id, r.platform, r.token) for r in regs]
        # The upserted `_id`s say which tokens were new, not their op indexes:
        # FerretDB numbers upserts among themselves. A new token's first op created it.
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        created = [False] * len(regs)
        pending: Sequence[int] = range(len(regs))
        if self._insert_first:
            # Each new token's first item is inserted, and only what is left
            # (registered tokens, items listed twice) is sent as upserts.
            fresh = list(first.values())
            for j in _inserted(self._tokens, [codec.token_doc(regs[i], now) for i in fresh]):
                created[fresh[j]] = True
            pending = [i for i in range(len(regs)) if not created[i]]
        ops = [UpdateOne({"_id": keys[i]}, codec.token_upsert(regs[i], now), upsert=True) for i in pending]
        start = 0
        upserted: list[str] = []
        for attempt in range(3):
            if not ops:
                break
            try:
                result = self._tokens.bulk_write(ops[start:], ordered=True)
                upserted = list((result.upserted_ids or {}).values())
                break
            except pymongo.errors.BulkWriteError as exc:
                # A concurrent first registration of the same token won the
                # unique `_id`: the ops before it are applied, and from it on
                # the batch is sent again, where that op becomes an update.
                failed = exc.details.get("writeErrors", [])
                if attempt == 2 or not failed or any(e.get("code") != 11000 for e in failed):
                    raise
                for u in exc.details.get("upserted", []):
                    created[first[u["_id"]]] = True
                start += min(e["index"] for e in failed)
        for k in upserted:
            created[first[k]] = True
        self._rotate_many([r for r in regs if r.device_id])
        return created

    def _rotate_many(self, regs: Sequence[models.TokenRegistration]) -> None:
        # `_rotate` for a batch: the devices' held tokens are read at once and
        # replayed in item order, so a device listed twice ends with its later
        # token and loses the ones before it; the final holders are never removed.
        if not regs:
            return
        keys = {schema.device_key(r.app_id, r.platform, r.device_id): r for r in regs}
        held = {d["_id"]: d.get("token") for d in self._devices.find({"_id": {"$in": list(keys)}})}
        losers: list[tuple[str, models.Platform, str, str]] = []
        for r in regs:
            key = schema.device_key(r.app_id, r.platform, r.device_id)
            before = held.get(key)
            held[key] = r.token
            if before is not None and before != r.token:
                losers.append((r.app_id, r.platform, before, r.device_id))
        self._devices.bulk_write(
            [UpdateOne({"_id": k}, {"$set": {"token": held[k]}}, upsert=True) for k in keys], ordered=False
        )
        holders = {(r.app_id, r.platform, held[schema.device_key(r.app_id, r.platform, r.device_id)]) for r in regs}
        deletes = [
            DeleteOne({"_id": schema.token_key(app_id, platform, token), "device_id": device_id})
            for app_id, platform, token, device_id in losers
            if (app_id, platform, token) not in holders
        ]
        if deletes:
            self._tokens.bulk_write(deletes, ordered=False)

    async def insert_new(self, regs: Sequence[models.TokenRegistration], now: datetime) -> int:
        """See `TokenStore.insert_new`. One insert_many; duplicates are skipped by `_id`."""
        if not regs:
            return 0
        return await self._run(self._insert_new, regs, now)

    def _insert_new(self, regs: Sequence[models.TokenRegistration], now: datetime) -> int:
        docs = [codec.token_doc(r, now) for r in regs]
        added = _insert_ignoring_duplicates(self._tokens, docs)
        devices = {
            schema.device_key(r.app_id, r.platform, r.device_id): r.token for r in regs if r.device_id
        }
        if devices:
            _insert_ignoring_duplicates(self._devices, [{"_id": k, "token": t} for k, t in devices.items()])
        return added

    async def delete(self, app_id: str, platform: models.Platform, token: str) -> bool:
        """See `TokenStore.delete`."""
        result = await self._run(self._tokens.delete_one, {"_id": schema.token_key(app_id, platform, token)})
        return bool(result.deleted_count)

    async def delete_invalid(
        self, app_id: str, platform: models.Platform, token: str, invalid_since: datetime | None
    ) -> bool:
        """See `TokenStore.delete_invalid`."""
        flt: dict[str, Any] = {"_id": schema.token_key(app_id, platform, token)}
        if invalid_since is not None:
            flt["last_seen_at"] = {"$lt": invalid_since}
        result = await self._run(self._tokens.delete_one, flt)
        return bool(result.deleted_count)

    async def get(self, app_id: str, platform: models.Platform, token: str) -> models.DeviceToken | None:
        """See `TokenStore.get`."""
        doc = await self._run(self._tokens.find_one, {"_id": schema.token_key(app_id, platform, token)})
        return None if doc is None else codec.token_from_doc(doc)

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
        return int(await self._run(self._tokens.count_documents, codec.selector(app_id, query)))

    async def count_by_timezone(self, app_id: str, query: TargetQuery) -> dict[str, int]:
        """See `TokenStore.count_by_timezone`: one grouping over the query's index (`by_timezone` for the whole app)."""
        pipeline = [{"$match": codec.selector(app_id, query)}, {"$group": {"_id": "$timezone", "n": {"$sum": 1}}}]
        rows = await self._run(lambda: list(self._tokens.aggregate(pipeline)))
        counts: dict[str, int] = {}
        for r in rows:
            zone = r["_id"] or ""  # no field: a document written before the attribute existed
            counts[zone] = counts.get(zone, 0) + int(r["n"])
        return counts

    async def scan_targets(
        self, app_id: str, query: TargetQuery, buckets: tuple[int, int], after: Any, batch_size: int
    ) -> AsyncGenerator[list[TargetToken], None]:
        """See `TokenStore.scan_targets`: one cursor in `_id` order, read a batch per store call."""
        flt = codec.partition_selector(app_id, query, buckets, after)
        cursor = self._tokens.find(flt, self._target_fields, sort=[("_id", 1)], batch_size=batch_size)
        try:
            while True:
                docs = await self._run(_take, cursor, batch_size)
                if docs:
                    yield [codec.target_from_doc(d) for d in docs]
                if len(docs) < batch_size:
                    return
        finally:
            try:
                await self._run(cursor.close)
            except errors.StoreUnavailable:
                pass

    async def lookup(
        self, app_id: str, devices: Sequence[models.Device]
    ) -> dict[tuple[models.Platform, str], TargetToken]:
        """See `TokenStore.lookup`."""
        if not devices:
            return {}
        flt = {"_id": {"$in": sorted({schema.token_key(app_id, d.platform, d.token) for d in devices})}}
        docs = await self._run(lambda: list(self._tokens.find(flt, self._target_fields)))
        return {(models.Platform(d["platform"]), d["token"]): codec.target_from_doc(d) for d in docs}

    async def list(self, where: models.TokenFilter, after: tuple[str, ...] | None, limit: int) -> Page[models.DeviceToken]:
        """See `TokenStore.list`: the app's `_id` range in order (user and topic indexes narrow it)."""
        flt = codec.token_listing(where, after)
        docs = await self._run(lambda: list(self._tokens.find(flt, sort=codec.TOKEN_ORDER, limit=limit + 1)))
        items = [codec.token_from_doc(d) for d in docs[:limit]]
        return Page(items, codec.token_position(items[-1]) if len(docs) > limit else None)


_BULK_OPS = 100


def _take(cursor: Any, n: int) -> list[Any]:
    return list(itertools.islice(cursor, n))


def _inserted(collection: Any, docs: list[dict[str, Any]]) -> list[int]:
    """Inserts `docs` in any order; returns the indexes of those inserted (the others' `_id`s were taken)."""
    if not docs:
        return []
    try:
        collection.insert_many(docs, ordered=False)
    except pymongo.errors.BulkWriteError as exc:
        failed = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in failed):
            raise
        taken = {e["index"] for e in failed}
        return [i for i in range(len(docs)) if i not in taken]
    return list(range(len(docs)))


def _insert_ignoring_duplicates(collection: Any, docs: list[dict[str, Any]]) -> int:
    try:
        return len(collection.insert_many(docs, ordered=False).inserted_ids)
    except pymongo.errors.BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
        return int(exc.details.get("nInserted", 0))
