"""Token, notification and receipt storage behind small Protocols.

`open_stores(url)` picks the adapter by URL scheme and imports it only then:
`memory://` (the in-process reference adapter), `mongomock://` (embedded, the
default of `pushsvc dev`), `mongodb://` and `mongodb+srv://` (a real server),
`postgresql://` and `postgres://` (PostgreSQL).
Importing this package imports no database driver.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pushsvc.clock import Clock, SystemClock
from pushsvc.storage.base import (
    BadCursor,
    DuplicateKey,
    Lane,
    LogEntry,
    NotificationDraft,
    NotificationRecord,
    NotificationStore,
    Page,
    Partition,
    PartitionPlan,
    PartitionStatus,
    ReceiptDraft,
    ReceiptStore,
    Stores,
    TargetQuery,
    TargetToken,
    TokenStore,
    WebhookCursor,
    WebhookCursorStore,
    booked,
)

SCHEMES = ("memory", "mongomock", "mongodb", "mongodb+srv", "postgresql", "postgres")


def open_stores(url: str, *, clock: Clock | None = None, timeout_ms: int = 2000) -> Stores:
    """Builds the stores for `url`; connects to nothing until `prepare()`.

    Raises:
        ValueError: the URL's scheme is not one of `SCHEMES`.
    """
    scheme = urlsplit(url).scheme
    clock = clock or SystemClock()
    if scheme == "memory":
        from pushsvc.storage.memory import MemoryStores

        return MemoryStores()
    if scheme in ("postgresql", "postgres"):
        from pushsvc.storage.postgres import open_postgres_stores

        return open_postgres_stores(url, clock=clock, timeout_ms=timeout_ms)
    if scheme in SCHEMES:
        from pushsvc.storage.mongo import open_mongo_stores

        return open_mongo_stores(url, clock=clock, timeout_ms=timeout_ms)
    raise ValueError(f"unsupported store URL scheme {scheme!r}: use {', '.join(s + '://' for s in SCHEMES)}")


__all__ = [
    "SCHEMES",
    "BadCursor",
    "DuplicateKey",
    "LogEntry",
    "NotificationDraft",
    "NotificationRecord",
    "NotificationStore",
    "Page",
    "Partition",
    "Lane",
    "PartitionPlan",
    "PartitionStatus",
    "ReceiptDraft",
    "ReceiptStore",
    "Stores",
    "TargetQuery",
    "TargetToken",
    "TokenStore",
    "WebhookCursor",
    "WebhookCursorStore",
    "booked",
    "open_stores",
]
