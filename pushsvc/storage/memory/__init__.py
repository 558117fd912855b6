"""The in-memory reference adapter (`memory://`): plain data structures behind the storage Protocols.

It passes the same contract suite as the other adapters, keeps every hot path
a key operation or a walk over one partition's buckets, and holds no lock:
each method runs to completion without awaiting, so on one event loop every
call is atomic. Unit tests of the service, the dispatcher and the receipt feed
run on it, and the benchmarks use it to measure the gateway's own cost. It is
not a production store: nothing survives the process, and one process is one
"cluster".

Memory layout. A registry of a million tokens and the log of a million-token
fan-out live in this process, so both are laid out to cost little per item
and to stay out of the cyclic garbage collector's passes (tuples and dicts of
strings, numbers and datetimes only: the collector stops tracking them):

- `tokens`: per (app, platform), `models.BUCKETS` dicts, token → a 5-tuple
  record. The token string is stored once, as that dict's key; the bucket is
  computed from the token, so no key tuple, no ref tuple and no second dict
  per token. What most tokens share (topics, locale, timezone, app version,
  APNs environment) is one interned tuple. User and topic indexes map to the
  token string itself (a dict of them only when several share a user or
  topic). At a million tokens like bench/fanout.py's: 206 bytes a token,
  against 444 with a tuple key, a record and a ref per token in two dicts;
  a plain `set` of the same strings takes 130 (bench/memory_store.py). A
  shorter record gains nothing: the allocator rounds objects to 16 bytes,
  and 4- and 5-tuples both take 80.
- `receipts`: one immutable segment per `append` call, in columns (a
  constant column is stored once; platform and status as bytes; `at` as
  microseconds), shared by the app's log and the notification's log. The
  token is a pointer to the registry's string. The sweep drops whole segments
  past retention and forgets their tokens, as a TTL index with a unique index
  would, so the log's memory is bounded by retention. What stays per receipt is the segment's few bytes and the
  entry in the notification's dict of the tokens that have a receipt,
  which the contract's "one receipt per token" needs: 44 bytes a receipt,
  against 396 with a tuple per entry (bench/memory_store.py). Nothing is
  dropped before `expires_at`: the log's numbering, cursors and
  `count_by_status` stay exact.
- `notifications`: plain objects, a few per fan-out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pushsvc.storage.memory.notifications import MemoryNotificationStore, Queue
from pushsvc.storage.memory.receipts import MemoryReceiptStore
from pushsvc.storage.memory.tokens import MemoryTokenStore, Registry
from pushsvc.storage.memory.webhooks import MemoryWebhookCursorStore


class MemoryStores:
    """The in-memory stores over one shared state (`pushsvc.storage.Stores`)."""

    def __init__(self) -> None:
        queue = Queue()
        self.tokens = MemoryTokenStore(Registry())
        self.notifications = MemoryNotificationStore(queue)
        self.receipts = MemoryReceiptStore(queue)
        self.webhooks = MemoryWebhookCursorStore()

    @property
    def needs_sweep(self) -> bool:
        """See `Stores.needs_sweep`: yes, there is no TTL monitor."""
        return True

    async def prepare(self) -> None:
        """Nothing to create."""

    async def sweep_expired(self, now: datetime) -> int:
        """See `Stores.sweep_expired`."""
        return self.receipts.sweep(now)

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Never fails, so never calls back."""

    def close(self) -> None:
        """Nothing to release."""


__all__ = [
    "MemoryNotificationStore", "MemoryReceiptStore", "MemoryStores", "MemoryTokenStore", "MemoryWebhookCursorStore",
]
