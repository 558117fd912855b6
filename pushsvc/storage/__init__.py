"""Token, notification and receipt storage behind small Protocols."""

from pushsvc.storage.base import (
    DuplicateKey,
    LogEntry,
    NotificationRecord,
    NotificationStore,
    Partition,
    ReceiptDraft,
    ReceiptStore,
    TargetQuery,
    TargetToken,
    TokenStore,
)
from pushsvc.storage.mongo import BUCKETS, MongoStores, open_stores, token_bucket

__all__ = [
    "BUCKETS",
    "DuplicateKey",
    "LogEntry",
    "MongoStores",
    "NotificationRecord",
    "NotificationStore",
    "Partition",
    "ReceiptDraft",
    "ReceiptStore",
    "TargetQuery",
    "TargetToken",
    "TokenStore",
    "open_stores",
    "token_bucket",
]
