"""Contract: the numbered receipt log (ReceiptStore), on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import MongoStores, ReceiptDraft


def draft(token: str, at: datetime, status: models.DeliveryStatus = models.DeliveryStatus.DELIVERED) -> ReceiptDraft:
    return ReceiptDraft(token, models.Platform.FCM, "u", status, "m", 200, "", 1, False, at)


async def _note(stores: MongoStores, nid: str, now: datetime, app: str = "app") -> None:
    doc = {"_id": nid, "app_id": app, "state": "running", "created_at": now, "updated_at": now, "receipt_seq": 0,
           "partitions_total": 1, "partitions_done": 0}
    await stores.notifications.create(doc, [])


async def test_receipts_are_numbered_densely_per_app_and_per_notification(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    await _note(stores, "n1", now)
    await _note(stores, "n2", now)
    keep = now + timedelta(days=7)
    a = await stores.receipts.append("app", "n1", [draft("t1", now), draft("t2", now)], keep)
    b = await stores.receipts.append("app", "n2", [draft("t1", now)], keep)
    c = await stores.receipts.append("app", "n1", [draft("t3", now)], keep)
    assert [r.cursor for r in a + b + c] == ["1.1", "2.2", "3.1", "4.3"]
    log = await stores.receipts.read_app("app", 0, 100)
    assert [e.seq for e in log] == [1, 2, 3, 4]
    n1 = await stores.receipts.read_notification("app", "n1", 1, 100)
    assert [(e.nseq, e.receipt.token if e.receipt else None) for e in n1] == [(2, "t2"), (3, "t3")]
    assert await stores.receipts.last_seq("app") == 4
    assert await stores.receipts.last_seq("nobody") == 0


async def test_a_redone_batch_adds_no_second_receipt_and_leaves_no_gap(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    await _note(stores, "n1", now)
    keep = now + timedelta(days=7)
    await stores.receipts.append("app", "n1", [draft("t1", now), draft("t2", now)], keep)
    again = await stores.receipts.append("app", "n1", [draft("t2", now), draft("t3", now)], keep)
    assert [r.token for r in again] == ["t3"]
    log = await stores.receipts.read_app("app", 0, 100)
    assert [e.seq for e in log] == [1, 2, 3, 4]
    assert [e.receipt.token if e.receipt else None for e in log] == ["t1", "t2", None, "t3"]


async def test_expired_receipts_go_away(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    await _note(stores, "n1", now)
    await stores.receipts.append("app", "n1", [draft("old", now)], now - timedelta(seconds=1))
    await stores.receipts.append("app", "n1", [draft("new", now)], now + timedelta(days=7))
    # Real MongoDB's TTL monitor runs every 60 s; servers without TTL indexes
    # (FerretDB) rely on the sweep. Either way the sweep must be correct.
    await stores.sweep_expired(clock.now())
    tokens = [e.receipt.token for e in await stores.receipts.read_app("app", 0, 10) if e.receipt]
    assert tokens == ["new"]
