"""Contract: the numbered receipt log (ReceiptStore), on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import ReceiptDraft, Stores
from tests.storage.conftest import draft as note_draft

DELIVERED, INVALID = models.DeliveryStatus.DELIVERED, models.DeliveryStatus.TOKEN_INVALID


def draft(token: str, at: datetime, status: models.DeliveryStatus = DELIVERED) -> ReceiptDraft:
    return ReceiptDraft(token, models.Platform.FCM, "u", status, "m", 200, "", 1, False, at)


async def _note(stores: Stores, nid: str, now: datetime, app: str = "app") -> None:
    await stores.notifications.create(note_draft(nid, now, app_id=app), [])


async def test_receipts_are_numbered_densely_per_app_and_per_notification(stores: Stores, clock: ManualClock) -> None:
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
    assert await stores.receipts.read_notification("other", "n1", 0, 100) == []
    assert [e.seq for e in await stores.receipts.read_app("app", 1, 2)] == [2, 3]
    assert await stores.receipts.last_seq("app") == 4
    assert await stores.receipts.last_seq("nobody") == 0


async def test_a_redone_batch_adds_no_second_receipt_and_leaves_no_gap(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await _note(stores, "n1", now)
    keep = now + timedelta(days=7)
    await stores.receipts.append("app", "n1", [draft("t1", now), draft("t2", now)], keep)
    again = await stores.receipts.append("app", "n1", [draft("t2", now, INVALID), draft("t3", now)], keep)
    assert [r.token for r in again] == ["t3"]
    log = await stores.receipts.read_app("app", 0, 100)
    assert [e.seq for e in log] == [1, 2, 3, 4]
    assert [e.receipt.token if e.receipt else None for e in log] == ["t1", "t2", None, "t3"]
    # The first receipt of t2 stands.
    assert await stores.receipts.count_by_status("n1") == {DELIVERED: 3}


async def test_count_by_status_counts_one_notification(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await _note(stores, "n1", now)
    await _note(stores, "n2", now)
    keep = now + timedelta(days=7)
    await stores.receipts.append("app", "n1", [draft("a", now), draft("b", now, INVALID), draft("c", now)], keep)
    await stores.receipts.append("app", "n2", [draft("a", now, INVALID)], keep)
    assert await stores.receipts.count_by_status("n1") == {DELIVERED: 2, INVALID: 1}
    assert await stores.receipts.count_by_status("none") == {}


async def test_expired_receipts_go_away(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await _note(stores, "n1", now)
    await stores.receipts.append("app", "n1", [draft("old", now)], now - timedelta(seconds=1))
    await stores.receipts.append("app", "n1", [draft("new", now)], now + timedelta(days=7))
    # Real MongoDB's TTL monitor runs every 60 s; backends without TTL indexes
    # rely on the sweep. Either way the sweep must be correct.
    await stores.sweep_expired(clock.now())
    tokens = [e.receipt.token for e in await stores.receipts.read_app("app", 0, 10) if e.receipt]
    assert tokens == ["new"]


async def test_a_notification_read_page_by_page_gives_each_receipt_once_in_order_while_more_arrive(
    stores: Stores, clock: ManualClock
) -> None:
    # On FerretDB the adapter keeps a replay's cursor open between pages: a page
    # read from it must not skip, repeat or reorder anything, whatever is appended meanwhile.
    now = clock.now()
    await _note(stores, "n1", now)
    await _note(stores, "n2", now)
    keep = now + timedelta(days=7)

    async def append(nid: str, tokens: range) -> None:
        await stores.receipts.append("app", nid, [draft(f"t{i}", now) for i in tokens], keep)

    async def read(after: int) -> list[tuple[int, str]]:
        entries = await stores.receipts.read_notification("app", "n1", after, 10)
        return [(e.nseq, e.receipt.token if e.receipt else "") for e in entries]

    await append("n1", range(1, 26))
    await append("n2", range(1, 4))
    assert await read(0) == [(i, f"t{i}") for i in range(1, 11)]
    assert await read(10) == [(i, f"t{i}") for i in range(11, 21)]
    assert await read(4) == [(i, f"t{i}") for i in range(5, 15)]  # another position: its own query
    assert await read(14) == [(i, f"t{i}") for i in range(15, 25)]
    await append("n1", range(26, 31))
    await append("n2", range(4, 8))
    seen: list[tuple[int, str]] = []
    after = 24
    for _ in range(10):  # bounded: two reads suffice, a few more if a page ends at the log as it was
        page = await read(after)
        if not page:
            break
        seen += page
        after = page[-1][0]
    assert seen == [(i, f"t{i}") for i in range(25, 31)]
    assert await read(30) == []
    await append("n1", range(31, 33))
    assert await read(30) == [(31, "t31"), (32, "t32")]


async def test_a_token_retried_into_another_day_of_retention_gets_no_second_receipt(stores: Stores, clock: ManualClock) -> None:
    # A batch redone a day later carries a later expiry: on a store that
    # partitions receipts by expiry day, the first receipt is in another
    # partition, and still the only one.
    now = clock.now()
    await _note(stores, "n1", now)
    await stores.receipts.append("app", "n1", [draft("t1", now), draft("t2", now)], now + timedelta(days=7))
    again = await stores.receipts.append("app", "n1", [draft("t2", now, INVALID), draft("t3", now)], now + timedelta(days=8))
    assert [r.token for r in again] == ["t3"]
    log = await stores.receipts.read_notification("app", "n1", 0, 100)
    assert [e.receipt.token if e.receipt else None for e in log] == ["t1", "t2", None, "t3"]
    assert await stores.receipts.count_by_status("n1") == {DELIVERED: 3}
