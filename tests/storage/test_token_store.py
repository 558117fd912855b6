"""Contract: the token registry (TokenStore), on every backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import Stores, TargetQuery, TargetToken

BUCKETS = models.BUCKETS

APNS, FCM = models.Platform.APNS, models.Platform.FCM


def reg(token: str, platform: models.Platform = APNS, app: str = "app", **kw: object) -> models.TokenRegistration:
    return models.TokenRegistration(app_id=app, token=token, platform=platform, **kw)  # type: ignore[arg-type]


def hextoken(i: int) -> str:
    return f"{i:064x}"


async def test_register_creates_then_refreshes_keeping_created_at(stores: Stores, clock: ManualClock) -> None:
    t0 = clock.now()
    first, created = await stores.tokens.upsert(reg(hextoken(1), user_id="u1", topics=("a",), locale="en"), t0)
    assert created and first.created_at == t0 and first.last_seen_at == t0
    clock.advance(3600)
    again, created = await stores.tokens.upsert(reg(hextoken(1), user_id="u2", topics=("b", "c")), clock.now())
    assert not created
    assert again.created_at == t0
    assert again.last_seen_at == clock.now() > t0
    stored = await stores.tokens.get("app", APNS, hextoken(1))
    assert stored is not None
    assert (stored.user_id, stored.topics, stored.locale) == ("u2", ("b", "c"), "")
    assert stored.created_at == t0 and stored.last_seen_at == clock.now()


async def test_same_token_string_is_distinct_per_app_and_platform(stores: Stores, clock: ManualClock) -> None:
    for app, platform in [("a1", APNS), ("a2", APNS), ("a1", FCM)]:
        _, created = await stores.tokens.upsert(reg("ab" * 32, platform, app=app), clock.now())
        assert created


async def test_concurrent_first_registrations_create_exactly_once(stores: Stores, clock: ManualClock) -> None:
    results = await asyncio.gather(*(stores.tokens.upsert(reg(hextoken(7)), clock.now()) for _ in range(8)))
    assert sum(created for _, created in results) == 1


async def test_device_rotation_removes_the_old_token_of_same_platform_only(stores: Stores, clock: ManualClock) -> None:
    await stores.tokens.upsert(reg(hextoken(1), device_id="phone"), clock.now())
    await stores.tokens.upsert(reg("fcm-old", FCM, device_id="phone"), clock.now())
    await stores.tokens.upsert(reg(hextoken(3), app="other", device_id="phone"), clock.now())
    await stores.tokens.upsert(reg(hextoken(2), device_id="phone"), clock.now())
    assert await stores.tokens.get("app", APNS, hextoken(1)) is None
    assert await stores.tokens.get("app", APNS, hextoken(2)) is not None
    assert await stores.tokens.get("app", FCM, "fcm-old") is not None
    assert await stores.tokens.get("other", APNS, hextoken(3)) is not None
    # Registering the same token again is no rotation.
    await stores.tokens.upsert(reg(hextoken(2), device_id="phone"), clock.now())
    assert await stores.tokens.get("app", APNS, hextoken(2)) is not None


async def test_rotation_spares_a_token_that_moved_to_another_device(stores: Stores, clock: ManualClock) -> None:
    await stores.tokens.upsert(reg(hextoken(1), device_id="old-phone"), clock.now())
    await stores.tokens.upsert(reg(hextoken(1), device_id="new-phone"), clock.now())
    await stores.tokens.upsert(reg(hextoken(2), device_id="old-phone"), clock.now())
    assert await stores.tokens.get("app", APNS, hextoken(1)) is not None


async def test_rotation_covers_bulk_imported_devices(stores: Stores, clock: ManualClock) -> None:
    await stores.tokens.insert_new([reg(hextoken(1), device_id="tablet")], clock.now())
    await stores.tokens.upsert(reg(hextoken(2), device_id="tablet"), clock.now())
    assert await stores.tokens.get("app", APNS, hextoken(1)) is None


async def test_delete_reports_whether_it_removed(stores: Stores, clock: ManualClock) -> None:
    await stores.tokens.upsert(reg(hextoken(1)), clock.now())
    assert await stores.tokens.delete("app", APNS, hextoken(1)) is True
    assert await stores.tokens.delete("app", APNS, hextoken(1)) is False
    assert await stores.tokens.delete("other", FCM, "never-seen") is False


async def test_delete_invalid_keeps_a_token_registered_after_the_invalidation(stores: Stores, clock: ManualClock) -> None:
    invalidated_at = clock.now()
    clock.advance(60)
    await stores.tokens.upsert(reg(hextoken(1)), clock.now())  # re-registered after Apple's timestamp
    assert await stores.tokens.delete_invalid("app", APNS, hextoken(1), invalidated_at) is False
    assert await stores.tokens.get("app", APNS, hextoken(1)) is not None
    clock.advance(60)
    assert await stores.tokens.delete_invalid("app", APNS, hextoken(1), clock.now()) is True
    await stores.tokens.upsert(reg(hextoken(2)), clock.now())
    assert await stores.tokens.delete_invalid("app", APNS, hextoken(2), None) is True


async def test_prune_removes_only_stale_tokens_and_honours_filters(stores: Stores, clock: ManualClock) -> None:
    await stores.tokens.upsert(reg(hextoken(1)), clock.now())
    await stores.tokens.upsert(reg("old-fcm", FCM), clock.now())
    await stores.tokens.upsert(reg(hextoken(9), app="other"), clock.now())
    clock.advance(61 * 86400)
    await stores.tokens.upsert(reg(hextoken(2)), clock.now())
    cutoff = clock.now() - timedelta(days=60)
    assert await stores.tokens.prune("app", cutoff, frozenset(), dry_run=True) == 2
    assert await stores.tokens.get("app", APNS, hextoken(1)) is not None
    assert await stores.tokens.prune("app", cutoff, frozenset({FCM}), dry_run=False) == 1
    assert await stores.tokens.get("app", FCM, "old-fcm") is None
    assert await stores.tokens.prune("app", cutoff, frozenset(), dry_run=False) == 1
    assert await stores.tokens.get("app", APNS, hextoken(2)) is not None
    assert await stores.tokens.get("other", APNS, hextoken(9)) is not None


async def test_target_queries_select_by_user_topic_all_and_platform(stores: Stores, clock: ManualClock) -> None:
    await stores.tokens.upsert(reg(hextoken(1), user_id="u1", topics=("news",)), clock.now())
    await stores.tokens.upsert(reg("f1", FCM, user_id="u1"), clock.now())
    await stores.tokens.upsert(reg(hextoken(2), user_id="u2", topics=("news", "sport")), clock.now())
    await stores.tokens.upsert(reg(hextoken(3), app="other", user_id="u1"), clock.now())
    count = stores.tokens.count_targets
    assert await count("app", TargetQuery("users", user_ids=("u1",))) == 2
    assert await count("app", TargetQuery("users", user_ids=("u1",), platforms=frozenset({FCM}))) == 1
    assert await count("app", TargetQuery("topic", topic="news")) == 2
    assert await count("app", TargetQuery("topic", topic="sport")) == 1
    assert await count("app", TargetQuery("all")) == 3
    found = await scan(stores, TargetQuery("users", user_ids=("u1",)), (0, BUCKETS), None, 10)
    assert {(t.platform, t.token, t.user_id, t.registered) for t in found} == {(APNS, hextoken(1), "u1", True), (FCM, "f1", "u1", True)}


async def scan(
    stores: Stores, query: TargetQuery, buckets: tuple[int, int], after: object, size: int
) -> list[TargetToken]:
    out: list[TargetToken] = []
    async for page in stores.tokens.scan_targets("app", query, buckets, after, size):
        assert 0 < len(page) <= size
        out += page
    return out


async def test_scan_targets_pages_in_ref_order_and_bucket_ranges_cover_everything_once(
    stores: Stores, clock: ManualClock
) -> None:
    tokens = {hextoken(i) for i in range(60)} | {f"fcm-{i}" for i in range(30)}
    for t in tokens:
        await stores.tokens.upsert(reg(t, FCM if t.startswith("fcm") else APNS), clock.now())
    await stores.tokens.upsert(reg(hextoken(1), app="other"), clock.now())
    await stores.tokens.upsert(reg(hextoken(2), app="app2"), clock.now())
    seen: list[str] = []
    edges = [0, 100, 500, 1000, BUCKETS]
    for lo, hi in zip(edges, edges[1:], strict=False):
        pages = [p async for p in stores.tokens.scan_targets("app", TargetQuery("all"), (lo, hi), None, 7)]
        assert all(len(p) == 7 for p in pages[:-1])
        refs = [t.ref for p in pages for t in p]
        assert refs == sorted(refs)
        assert all(lo <= models.token_bucket(t.token) < hi for p in pages for t in p)
        seen += [t.token for p in pages for t in p]
    assert sorted(seen) == sorted(tokens)
    fcm_only = await scan(stores, TargetQuery("all", platforms=frozenset({FCM})), (0, BUCKETS), None, 8)
    assert sorted(t.token for t in fcm_only) == sorted(t for t in tokens if t.startswith("fcm"))


async def test_scan_targets_resumes_after_a_checkpoint(stores: Stores, clock: ManualClock) -> None:
    for i in range(40):
        await stores.tokens.upsert(reg(hextoken(i), user_id="u" if i % 2 else "v", topics=("t",)), clock.now())
    for query in (TargetQuery("all"), TargetQuery("topic", topic="t"), TargetQuery("users", user_ids=("u", "v"))):
        whole = await scan(stores, query, (0, BUCKETS), None, 100)
        assert len(whole) == 40
        checkpoint = whole[16].ref
        rest = await scan(stores, query, (0, BUCKETS), checkpoint, 5)
        assert [t.token for t in rest] == [t.token for t in whole[17:]]


async def test_a_scan_can_be_closed_early(stores: Stores, clock: ManualClock) -> None:
    for i in range(30):
        await stores.tokens.upsert(reg(hextoken(i)), clock.now())
    pages = stores.tokens.scan_targets("app", TargetQuery("all"), (0, BUCKETS), None, 10)
    first = await anext(pages)
    await pages.aclose()
    assert len(first) == 10


async def test_lookup_returns_only_registered_devices(stores: Stores, clock: ManualClock) -> None:
    await stores.tokens.upsert(reg(hextoken(1), user_id="u"), clock.now())
    found = await stores.tokens.lookup(
        "app", [models.Device(hextoken(1), APNS), models.Device(hextoken(2), APNS), models.Device(hextoken(1), FCM)]
    )
    assert set(found) == {(APNS, hextoken(1))}
    assert found[(APNS, hextoken(1))].user_id == "u"


async def test_insert_new_skips_registered_tokens(stores: Stores, clock: ManualClock) -> None:
    t0 = clock.now()
    await stores.tokens.upsert(reg(hextoken(1), user_id="keep"), t0)
    clock.advance(10)
    added = await stores.tokens.insert_new([reg(hextoken(i), user_id="bulk") for i in range(1, 6)], clock.now())
    assert added == 4
    kept = await stores.tokens.get("app", APNS, hextoken(1))
    assert kept is not None and kept.user_id == "keep" and kept.last_seen_at == t0
    assert await stores.tokens.count_targets("app", TargetQuery("users", user_ids=("bulk",))) == 4
    assert await stores.tokens.insert_new([], clock.now()) == 0


async def test_upsert_many_reports_created_per_item_and_keeps_created_at(stores: Stores, clock: ManualClock) -> None:
    t0 = clock.now()
    await stores.tokens.upsert(reg(hextoken(1), user_id="before", topics=("old",)), t0)
    clock.advance(30)
    batch = [reg(hextoken(1), user_id="after"), reg(hextoken(2), topics=("news",)), reg("fcm-1", FCM, user_id="f")]
    assert await stores.tokens.upsert_many(batch, clock.now()) == [False, True, True]
    refreshed = await stores.tokens.get("app", APNS, hextoken(1))
    assert refreshed is not None
    assert (refreshed.user_id, refreshed.topics, refreshed.created_at, refreshed.last_seen_at) == ("after", (), t0, clock.now())
    fcm = await stores.tokens.get("app", FCM, "fcm-1")
    assert fcm is not None and fcm.user_id == "f" and fcm.created_at == clock.now()
    assert await stores.tokens.count_targets("app", TargetQuery("topic", topic="news")) == 1
    # Retrying the same batch is safe: everything is an update now, and nothing is added.
    clock.advance(30)
    assert await stores.tokens.upsert_many(batch, clock.now()) == [False, False, False]
    assert await stores.tokens.count_targets("app", TargetQuery("all")) == 3
    assert await stores.tokens.upsert_many([], clock.now()) == []


async def test_upsert_many_of_a_token_listed_twice_creates_it_once_and_keeps_the_later_fields(
    stores: Stores, clock: ManualClock
) -> None:
    created = await stores.tokens.upsert_many([reg(hextoken(5), user_id="a"), reg(hextoken(5), user_id="b")], clock.now())
    assert created == [True, False]
    stored = await stores.tokens.get("app", APNS, hextoken(5))
    assert stored is not None and stored.user_id == "b"


async def test_upsert_many_rotates_devices_in_item_order(stores: Stores, clock: ManualClock) -> None:
    await stores.tokens.upsert(reg(hextoken(1), device_id="phone"), clock.now())
    await stores.tokens.upsert(reg(hextoken(9), device_id="moved"), clock.now())
    await stores.tokens.upsert_many(
        [
            reg(hextoken(2), device_id="phone"),   # rotates hextoken(1) away
            reg(hextoken(3), device_id="phone"),   # ... and then hextoken(2)
            reg("fcm-phone", FCM, device_id="phone"),  # another platform: no rotation
            reg(hextoken(9), device_id="tablet"),  # moved to another device ...
            reg(hextoken(8), device_id="moved"),   # ... so the old device's new token spares it
        ],
        clock.now(),
    )
    assert await stores.tokens.get("app", APNS, hextoken(1)) is None
    assert await stores.tokens.get("app", APNS, hextoken(2)) is None
    for platform, token in [(APNS, hextoken(3)), (FCM, "fcm-phone"), (APNS, hextoken(9)), (APNS, hextoken(8))]:
        assert await stores.tokens.get("app", platform, token) is not None, token
    # The batch's devices are remembered for later single registrations.
    await stores.tokens.upsert(reg(hextoken(4), device_id="phone"), clock.now())
    assert await stores.tokens.get("app", APNS, hextoken(3)) is None
    assert await stores.tokens.count_targets("app", TargetQuery("all")) == 4


async def test_concurrent_batches_of_the_same_tokens_create_each_exactly_once(stores: Stores, clock: ManualClock) -> None:
    batch = [reg(hextoken(i)) for i in range(20)]
    results = await asyncio.gather(*(stores.tokens.upsert_many(batch, clock.now()) for _ in range(4)))
    assert [sum(r[i] for r in results) for i in range(20)] == [1] * 20
    assert await stores.tokens.count_targets("app", TargetQuery("all")) == 20


async def test_upsert_many_of_250_registered_tokens_refreshes_them_all(stores: Stores, clock: ManualClock) -> None:
    # More registrations than any one bulk write takes, each with a device. The
    # second call refreshes tokens and devices that exist: FerretDB 1.24 hung for
    # good on one `update` command of 100 statements that matched existing
    # documents (see `ServerTraits.updates_per_command`), while new ones passed.
    n = 250
    t0 = clock.now()
    first = [reg(hextoken(i), user_id="before", device_id=f"device-{i}") for i in range(n)]
    async with asyncio.timeout(60):
        assert await stores.tokens.upsert_many(first, t0) == [True] * n
        clock.advance(30)
        again = [reg(hextoken(i), user_id="after", device_id=f"device-{i}") for i in range(n)]
        assert await stores.tokens.upsert_many(again, clock.now()) == [False] * n
    assert await stores.tokens.count_targets("app", TargetQuery("all")) == n
    assert await stores.tokens.count_targets("app", TargetQuery("users", user_ids=("after",))) == n
    for i in (0, 99, 100, 249):
        stored = await stores.tokens.get("app", APNS, hextoken(i))
        assert stored is not None
        assert (stored.user_id, stored.device_id, stored.created_at, stored.last_seen_at) == (
            "after", f"device-{i}", t0, clock.now()
        )
