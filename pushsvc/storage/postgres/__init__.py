"""The PostgreSQL adapter (`postgresql://`), through asyncpg.

Atomicity comes from the database itself: a lease is claimed with
`FOR UPDATE SKIP LOCKED`, a batch's checkpoint and counters commit together,
and receipt numbers are taken under row locks held to commit (see
`receipts`). Schema changes are versioned migrations (`schema`), applied at
start and by `pushsvc migrate`.

Modules: `database` (pool, error mapping, breaker), `schema` (migrations,
receipt partitions), `codec` (rows ⇄ domain values), and one module per
repository (`tokens`, `notifications`, `receipts`, `webhooks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pushsvc import errors
from pushsvc.clock import Clock
from pushsvc.storage.postgres.database import Database
from pushsvc.storage.postgres.notifications import PostgresNotificationStore
from pushsvc.storage.postgres.receipts import PostgresReceiptStore
from pushsvc.storage.postgres.tokens import PostgresTokenStore
from pushsvc.storage.postgres.webhooks import PostgresWebhookCursorStore

SCHEMES = ("postgresql", "postgres")


@dataclasses.dataclass
class PostgresStores:
    """The stores over one schema, plus its lifecycle (`pushsvc.storage.Stores`)."""

    tokens: PostgresTokenStore
    notifications: PostgresNotificationStore
    receipts: PostgresReceiptStore
    webhooks: PostgresWebhookCursorStore
    db: Database

    @property
    def needs_sweep(self) -> bool:
        """Always: retention drops the receipt partitions of expired days."""
        return True

    async def prepare(self) -> None:
        """Applies pending migrations (idempotent; replicas starting together apply each once)."""
        await self.db.migrate()

    async def sweep_expired(self, now: datetime) -> int:
        """Drops the receipt partitions whose day has wholly expired."""
        return await self.receipts.sweep(now)

    def on_failure(self, callback: Callable[[], None]) -> None:
        """See `Stores.on_failure`."""
        self.db.on_failure(callback)

    async def ping(self) -> bool:
        """True when the server answers."""
        try:
            await self.db.run(lambda conn: conn.fetchval("SELECT 1"), probe=True)
        except errors.StoreUnavailable:
            return False
        return True

    def close(self) -> None:
        """Drops the pool's connections."""
        self.db.terminate()


def open_postgres_stores(
    url: str, *, clock: Clock, timeout_ms: int = 2000, query_logger: Callable[[Any], None] | None = None
) -> PostgresStores:
    """Stores on `url`; nothing is sent until `prepare()`.

    Raises:
        ValueError: the URL carries an invalid pushsvc option.
    """
    db = Database(url, clock=clock, timeout_ms=timeout_ms, query_logger=query_logger)
    return PostgresStores(
        tokens=PostgresTokenStore(db),
        notifications=PostgresNotificationStore(db),
        receipts=PostgresReceiptStore(db, clock),
        webhooks=PostgresWebhookCursorStore(db),
        db=db,
    )


__all__ = ["SCHEMES", "PostgresStores", "open_postgres_stores"]
