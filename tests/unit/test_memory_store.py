"""Memory adapter specifics: its log is chunked, and its records stay out of the garbage collector's way."""

from __future__ import annotations

import gc
from datetime import timedelta

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import ReceiptDraft, TargetQuery, open_stores
from tests.storage.conftest import draft, plans


def receipt(token: str, clock: ManualClock) -> ReceiptDraft:
    return ReceiptDraft(token, models.Platform.FCM, "", models.DeliveryStatus.DELIVERED, "", 200, "", 1, False, clock.now())


async def test_reads_and_sweeps_cross_chunk_boundaries() -> None:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    now = clock.now()
    await stores.notifications.create(draft("n1", now), plans(1))
    await stores.receipts.append("app", "n1", [receipt(f"old{i}", clock) for i in range(1000)], now + timedelta(hours=1))
    await stores.receipts.append("app", "n1", [receipt(f"new{i}", clock) for i in range(1500)], now + timedelta(days=1))
    page = await stores.receipts.read_app("app", 1020, 10)
    assert [e.seq for e in page] == list(range(1021, 1031))
    assert page[0].receipt is not None and page[0].receipt.token == "new20"
    clock.advance(7200)
    assert await stores.sweep_expired(clock.now()) == 1000
    rest = await stores.receipts.read_notification("app", "n1", 0, 5)
    assert [e.nseq for e in rest] == [1001, 1002, 1003, 1004, 1005]
    assert await stores.receipts.last_seq("app") == 2500


async def test_a_loaded_registry_and_log_are_not_tracked_by_the_garbage_collector() -> None:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    regs = [models.TokenRegistration("app", f"t{i}", models.Platform.FCM, topics=("x",)) for i in range(3000)]
    await stores.tokens.insert_new(regs, clock.now())
    await stores.notifications.create(draft("n1", clock.now()), plans(1))
    async for page in stores.tokens.scan_targets("app", TargetQuery("all"), (0, models.BUCKETS), None, 500):
        drafts = [receipt(t.token, clock) for t in page]
        await stores.receipts.append("app", "n1", drafts, clock.now() + timedelta(days=1))
    gc.collect()
    gc.collect()
    tracked = {id(o) for o in gc.get_objects()}
    table = stores.tokens._r.tables[("app", "fcm")]  # type: ignore[attr-defined]
    assert sum(len(b) for b in table.buckets) == 3000
    assert all(id(b) not in tracked for b in table.buckets)
    assert all(id(r) not in tracked for b in table.buckets for r in b.values())
    assert id(table.topics["x"]) not in tracked  # the topic's 3000 tokens; the topics dict itself holds a few
    assert id(stores.receipts._seen[("n1", "fcm")]) not in tracked  # type: ignore[attr-defined]
    segments = stores.receipts._app_logs["app"]._segments  # type: ignore[attr-defined]
    assert sum(s[2] for s in segments) == 3000
    assert all(id(s) not in tracked for s in segments)
