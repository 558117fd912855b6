"""The MongoDB adapter, through pymongo: real servers (`mongodb://`, `mongodb+srv://`) and mongomock.

pymongo is blocking, so every call runs on an executor (`runner`) behind the
async Protocols. mongomock is not thread-safe (its find-and-modify is a read
followed by a write), so the embedded backend gets a single-thread executor:
that makes each call atomic, as it is on a server. The code is written for
real MongoDB semantics; what each backend does differently, and how the
adapter copes, is listed in one place: `tests/storage/README.md`.

Modules: `runner` (executor and circuit breaker), `client` (URL to client,
server traits), `schema` (collections, keys, declared indexes), `codec`
(documents ⇄ domain values), `embedded` (mongomock key lookups), and one
module per repository (`tokens`, `notifications`, `receipts`, `webhooks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pymongo.errors

from pushsvc import errors
from pushsvc.clock import Clock
from pushsvc.storage.mongo import schema
from pushsvc.storage.mongo.client import Connection, ServerTraits, connect, sniff
from pushsvc.storage.mongo.notifications import MongoNotificationStore
from pushsvc.storage.mongo.receipts import MongoReceiptStore
from pushsvc.storage.mongo.runner import MongoRunner
from pushsvc.storage.mongo.tokens import MongoTokenStore
from pushsvc.storage.mongo.webhooks import MongoWebhookCursorStore


@dataclasses.dataclass
class MongoStores:
    """The stores over one database, plus its lifecycle (`pushsvc.storage.Stores`)."""

    tokens: MongoTokenStore
    notifications: MongoNotificationStore
    receipts: MongoReceiptStore
    webhooks: MongoWebhookCursorStore
    runner: MongoRunner
    connection: Connection
    traits: ServerTraits = dataclasses.field(default_factory=ServerTraits)

    @property
    def needs_sweep(self) -> bool:
        """See `Stores.needs_sweep`."""
        return not self.traits.ttl_indexes

    async def prepare(self) -> None:
        """Asks the server what it is, adapts, and creates every declared index (idempotent)."""
        self.traits = await self.runner(sniff, self.connection)
        if not self.traits.atomic_updates:
            # FerretDB 1.x applies concurrent updates non-atomically: racing
            # findAndModify calls all "win" and concurrent $inc lose updates.
            # One call at a time restores per-document atomicity within this process.
            self.runner.serialize()
        self.tokens.adapt(self.traits)
        self.receipts.adapt(self.traits)
        ttl = await self.runner(schema.ensure_indexes, self.connection.db, ttl=self.traits.ttl_indexes)
        self.traits = dataclasses.replace(self.traits, ttl_indexes=ttl)

    async def sweep_expired(self, now: datetime) -> int:
        """Deletes receipts past retention, for servers without TTL indexes."""
        receipts = self.connection.collection(schema.RECEIPTS)
        result = await self.runner(receipts.delete_many, {"expires_at": {"$lt": now}})
        return int(result.deleted_count)

    def on_failure(self, callback: Callable[[], None]) -> None:
        """See `Stores.on_failure`: the runner reports every call that found the store unreachable."""
        self.runner.on_failure(callback)

    async def ping(self) -> bool:
        """True when the server answers a ping."""
        try:
            await self.runner.probe(self.connection.db.command, "ping")
        except (errors.StoreUnavailable, pymongo.errors.PyMongoError):
            return False
        return True

    def close(self) -> None:
        """Closes the client and the executor."""
        self.runner.close()
        self.receipts.close()
        self.connection.close()


def open_mongo_stores(
    url: str,
    *,
    clock: Clock,
    timeout_ms: int = 2000,
    database: str | None = None,
    event_listeners: Sequence[Any] = (),
) -> MongoStores:
    """Connects lazily to `url`; nothing is sent until `prepare()`."""
    conn = connect(url, timeout_ms=timeout_ms, database=database, event_listeners=event_listeners)
    runner = MongoRunner(threads=1 if conn.embedded else 16, clock=clock)
    return MongoStores(
        tokens=MongoTokenStore(runner, conn),
        notifications=MongoNotificationStore(runner, conn),
        receipts=MongoReceiptStore(runner, conn),
        webhooks=MongoWebhookCursorStore(runner, conn),
        runner=runner,
        connection=conn,
    )


__all__ = ["MongoStores", "open_mongo_stores"]
