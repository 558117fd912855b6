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
and to stay out of the cyclic garbage collector's passes (dicts of strings
and ints, arrays, and tuples of them only: the collector stops tracking
them). Figures are bench/memory_store.py's at 1,000,000 tokens (half 64-hex
APNs tokens, half short FCM ones); a plain `set` of the same token strings
takes 130 bytes a token, so no registry holds them for less.

- `tokens`: per (app, platform), `models.BUCKETS` dicts, token → row
  number; the token string is stored once, as that dict's key, and the
  bucket is computed from the token. A row's fields are in its bucket's
  columns: the two timestamps as microseconds in `array("q")`, the id of its
  interned shared part (topics, locale, timezone, app version, APNs
  environment) in an `array("I")`, user and device ids in dicts holding only
  the rows that have one. The row numbers are one int object per number,
  shared by all buckets. User and topic indexes map to the token string
  itself. 151 bytes a token (206 with a 5-tuple record per token, 444 with
  a tuple key, a record and a ref per token in two dicts).
- `receipts`: one immutable segment per `append` call, in columns (a
  constant column is stored once; platform and status as bytes; `at` as
  microseconds; the provider message ids as each platform's shared prefix
  and one string of the remainders), shared by the app's log and the
  notification's log. The token is a pointer to the registry's string. What
  stays per receipt is the segment's few bytes and the entry in the
  notification's dict of the tokens that have a receipt, which the
  contract's "one receipt per token" needs: 68 bytes a receipt with real
  apns-ids and FCM message names (159 with one string per id). Nothing is
  dropped before `expires_at`, so the log's numbering, cursors and
  `count_by_status` stay exact; the sweep drops whole segments past it and
  forgets their tokens, as a TTL index with a unique index would, so the
  log's memory is bounded by retention.
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
