"""Memory adapter specifics: its log is segmented and columnar, its indexes shrink back, and its records stay out of the
garbage collector's way."""

from __future__ import annotations

import gc
from array import array
from collections import Counter
from datetime import timedelta

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.providers.apns import ApnsIds
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
    table = stores.tokens._r.tables[("app", "fcm")]  # type: ignore[attr-defined]  # white-box: the layout under test
    assert sum(len(b) for b in table.buckets) == 3000
    assert all(id(b) not in tracked for b in table.buckets)
    assert all(id(r) not in tracked for b in table.buckets for r in b.values())
    assert id(table.topics["x"]) not in tracked  # the topic's 3000 tokens; the topics dict itself holds a few
    assert id(stores.receipts._seen[("n1", "fcm")]) not in tracked  # type: ignore[attr-defined]  # white-box: the layout under test
    segments = stores.receipts._app_logs["app"]._segments  # type: ignore[attr-defined]  # white-box: the layout under test
    assert sum(s[2] for s in segments) == 3000
    assert all(id(s) not in tracked for s in segments)


async def test_indexes_and_shared_records_shrink_back_when_tokens_go() -> None:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    regs = [
        models.TokenRegistration("app", f"t{i}", models.Platform.FCM, user_id=f"u{i // 2}", topics=("x", "odd") if i % 2 else ("x",),
                                 device_id=f"d{i}", locale="fr" if i % 3 else "de")
        for i in range(10)
    ]
    await stores.tokens.upsert_many(regs, clock.now())
    table = stores.tokens._r.tables[("app", "fcm")]  # type: ignore[attr-defined]  # white-box: the layout under test
    assert len(stores.tokens._r.shared) == 4  # type: ignore[attr-defined]  # 2 topic sets x 2 locales, shared
    assert await stores.tokens.count_targets("app", TargetQuery("users", user_ids=("u0", "u1"))) == 4
    assert table.users["u0"] == {"t0": None, "t1": None}
    assert await stores.tokens.delete("app", models.Platform.FCM, "t1")
    assert table.users["u0"] == "t0"  # one token left: the plain form again
    assert await stores.tokens.count_targets("app", TargetQuery("topic", topic="x")) == 9
    for i in range(10):
        await stores.tokens.delete("app", models.Platform.FCM, f"t{i}")
    assert (table.count, table.users, table.topics, table.devices) == (0, {}, {}, {})
    assert len(stores.tokens._r.shared) == 0  # type: ignore[attr-defined]  # white-box: the layout under test
    assert await stores.tokens.count_targets("app", TargetQuery("all")) == 0


async def test_a_segment_reads_back_mixed_columns_and_fillers_exactly() -> None:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    now = clock.now()
    await stores.notifications.create(draft("n1", now), plans(1))
    statuses = list(models.DeliveryStatus)
    drafts = []
    for i in range(7):
        clock.advance(0.001 * (i % 3))
        drafts.append(ReceiptDraft(
            f"t{i % 6}", models.PLATFORMS[i % 2], f"u{i}" if i % 2 else "", statuses[i % len(statuses)],
            f"m{i}", 200 + i, "r" if i == 3 else "", 1 + i % 2, i == 4, clock.now(),
        ))
    new = await stores.receipts.append("app", "n1", drafts, now + timedelta(days=1))
    (segment,) = stores.receipts._app_logs["app"]._segments  # type: ignore[attr-defined]  # white-box: the layout under test
    assert isinstance(segment[-1], array)  # `at` held as microseconds, decoded on read
    assert len(new) == 6  # t0 on APNs twice (i = 0 and i = 6): the second is a filler
    page = await stores.receipts.read_app("app", 0, 100)
    assert [e.seq for e in page] == list(range(1, 8))
    assert [e.receipt for e in page] == [*new, None]
    mid = await stores.receipts.read_notification("app", "n1", 2, 3)
    assert [e.receipt for e in mid] == new[2:5]


async def test_a_scan_sees_a_platform_whose_first_token_arrives_mid_scan() -> None:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    first = next(f"f{i}" for i in range(1000) if models.token_bucket(f"f{i}") < 10)
    later = next(f"a{i}" for i in range(1000) if models.token_bucket(f"a{i}") > 100)
    await stores.tokens.upsert(models.TokenRegistration("app", first, models.Platform.FCM), clock.now())
    seen = []
    async for page in stores.tokens.scan_targets("app", TargetQuery("all"), (0, models.BUCKETS), None, 1):
        seen += [t.token for t in page]
        if len(seen) == 1:
            await stores.tokens.upsert(models.TokenRegistration("app", later, models.Platform.APNS), clock.now())
    assert seen == [first, later]


async def test_the_sweep_forgets_expired_receipts_tokens_as_a_ttl_index_would() -> None:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    now = clock.now()
    await stores.notifications.create(draft("n1", now), plans(1))
    await stores.receipts.append("app", "n1", [receipt(f"t{i}", clock) for i in range(3)], now + timedelta(hours=1))
    await stores.receipts.append("app", "n1", [receipt("t0", clock)], now + timedelta(hours=1))  # a filler
    await stores.receipts.append("app", "n1", [receipt("t9", clock)], now + timedelta(days=1))
    clock.advance(7200)
    assert await stores.sweep_expired(clock.now()) == 3
    assert stores.receipts._seen == {("n1", "fcm"): {"t9": None}}  # type: ignore[attr-defined]  # white-box: the layout under test
    again = await stores.receipts.append("app", "n1", [receipt("t0", clock), receipt("t9", clock)], now + timedelta(days=1))
    assert [r.token for r in again] == ["t0"]  # t0's receipt is gone, so it is logged again; t9's is not
    assert [r.cursor for r in again] == ["6.6"]
    clock.advance(2 * 86400)
    assert await stores.sweep_expired(clock.now()) == 2
    assert stores.receipts._seen == {} and stores.receipts._note_logs == {}  # type: ignore[attr-defined]  # white-box: the layout under test
    assert await stores.receipts.last_seq("app") == 7
    assert await stores.receipts.read_app("app", 0, 10) == []


async def test_rows_of_deleted_tokens_are_reused_and_row_numbers_are_shared_between_buckets() -> None:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    tokens = [f"t{i}" for i in range(5000)]
    await stores.tokens.insert_new([models.TokenRegistration("app", t, models.Platform.FCM) for t in tokens], clock.now())
    table = stores.tokens._r.tables[("app", "fcm")]  # type: ignore[attr-defined]  # white-box: the layout under test
    rows_before = sum(len(c[0]) for c in table.columns if c is not None)
    assert rows_before == 5000
    by_number: dict[int, int] = {}
    for bucket in table.buckets:
        for row in bucket.values():
            assert by_number.setdefault(row, id(row)) == id(row)  # one int object per row number, whatever the bucket
    for t in tokens[:2500]:
        assert await stores.tokens.delete("app", models.Platform.FCM, t)
    freed = Counter(models.token_bucket(t) for t in tokens[:2500])  # per bucket, as many new tokens as it lost
    fresh = []
    for t in (f"n{i}" for i in range(10**6)):
        if freed[models.token_bucket(t)] > 0:
            freed[models.token_bucket(t)] -= 1
            fresh.append(t)
            if len(fresh) == 2500:
                break
    await stores.tokens.upsert_many([models.TokenRegistration("app", t, models.Platform.FCM) for t in fresh], clock.now())
    assert await stores.tokens.count_targets("app", TargetQuery("all")) == 5000
    assert sum(len(c[0]) for c in table.columns if c is not None) == rows_before  # the freed rows, not new ones
    got = await stores.tokens.get("app", models.Platform.FCM, "n7")
    assert got is not None and got.created_at == clock.now() and got.user_id == "" and got.device_id == ""


async def test_a_reused_row_keeps_nothing_of_its_former_token() -> None:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    token = "gone"
    await stores.tokens.upsert(models.TokenRegistration("app", token, models.Platform.FCM, user_id="u1", device_id="d1",
                                                        topics=("x",), locale="fr"), clock.now())
    assert await stores.tokens.delete("app", models.Platform.FCM, token)
    clock.advance(5)
    same_bucket = next(f"b{i}" for i in range(10_000) if models.token_bucket(f"b{i}") == models.token_bucket(token))
    created, _ = await stores.tokens.upsert(models.TokenRegistration("app", same_bucket, models.Platform.FCM), clock.now())
    assert (created.user_id, created.device_id, created.topics, created.locale) == ("", "", (), "")
    assert created.created_at == created.last_seen_at == clock.now()
    assert await stores.tokens.count_targets("app", TargetQuery("users", user_ids=("u1",))) == 0
    assert await stores.tokens.count_targets("app", TargetQuery("topic", topic="x")) == 0


async def test_provider_message_ids_are_packed_and_read_back_exactly() -> None:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    now = clock.now()
    await stores.notifications.create(draft("n1", now), plans(1))
    ids = ApnsIds()
    drafts = []
    for i in range(600):
        platform = models.PLATFORMS[i % 2]
        mid = ids.next() if platform is models.Platform.APNS else f"projects/p/messages/{i * 7919:020d}"
        drafts.append(ReceiptDraft(f"t{i}", platform, "", models.DeliveryStatus.DELIVERED, mid, 200, "", 1, False, now))
    drafts.append(ReceiptDraft("t0", models.PLATFORMS[0], "", models.DeliveryStatus.DELIVERED, "", 200, "", 1, False, now))
    new = await stores.receipts.append("app", "n1", drafts, now + timedelta(days=1))
    (segment,) = stores.receipts._app_logs["app"]._segments  # type: ignore[attr-defined]  # white-box: the layout under test
    column = segment[10]
    assert isinstance(column[1], str) and isinstance(column[2], array)  # one string of remainders, not 601 strings
    assert len(column[1]) < sum(len(d.provider_message_id) for d in drafts) // 2
    assert [r.provider_message_id for r in new] == [d.provider_message_id for d in drafts[:600]]
    page = await stores.receipts.read_notification("app", "n1", 299, 1000)
    assert [e.receipt.provider_message_id if e.receipt else None for e in page] == [
        *(d.provider_message_id for d in drafts[299:600]), None]
    same = [ReceiptDraft(f"s{i}", models.Platform.APNS, "", models.DeliveryStatus.DELIVERED, mid, 200, "", 1, False, now)
            for i, mid in enumerate(["abc", "abc", "", "ab"])]  # a value that is its group's whole shared prefix
    await stores.receipts.append("app", "n1", same, now + timedelta(days=1))
    tail = await stores.receipts.read_notification("app", "n1", 601, 10)
    assert [e.receipt.provider_message_id for e in tail if e.receipt] == ["abc", "abc", "", "ab"]
