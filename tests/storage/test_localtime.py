"""Contract: a local-time send's zone filter and per-zone counts, and its partitions' own runnable times, on every backend."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import PartitionPlan, Stores, TargetQuery
from tests.storage.conftest import draft

APNS, FCM = models.Platform.APNS, models.Platform.FCM

ZONES = {
    "fcm-paris-1": ("Europe/Paris", FCM, "u1", ("news",)),
    "fcm-paris-2": ("Europe/Paris", FCM, "u2", ()),
    "fcm-tokyo": ("Asia/Tokyo", FCM, "u1", ("news",)),
    "fcm-none": ("", FCM, "u2", ("news",)),
    "a" * 64: ("Europe/Paris", APNS, "u1", ("news",)),
    "b" * 64: ("America/New_York", APNS, "u3", ()),
}


async def _register(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    for token, (zone, platform, user, topics) in list(ZONES.items())[:4]:
        await stores.tokens.upsert(models.TokenRegistration("app", token, platform, user_id=user, topics=topics, timezone=zone), now)
    # The bulk import path stores the zone too.
    await stores.tokens.insert_new(
        [models.TokenRegistration("app", token, platform, user_id=user, topics=topics, timezone=zone)
         for token, (zone, platform, user, topics) in list(ZONES.items())[4:]],
        now,
    )
    # Another app's tokens are never counted.
    await stores.tokens.upsert(models.TokenRegistration("other", "fcm-x", FCM, timezone="Europe/Paris"), now)


def _expected(query: TargetQuery) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for token, (zone, platform, user, topics) in ZONES.items():
        if query.platforms and platform not in query.platforms:
            continue
        if query.kind == "users" and user not in query.user_ids:
            continue
        if query.kind == "topic" and query.topic not in topics:
            continue
        if query.timezones is not None and zone not in query.timezones:
            continue
        out.setdefault(zone, set()).add(token)
    return out


QUERIES = [
    TargetQuery("all"),
    TargetQuery("all", platforms=frozenset({FCM})),
    TargetQuery("users", ("u1", "u2")),
    TargetQuery("topic", topic="news"),
]


async def test_count_by_timezone_per_query_kind_and_platform(stores: Stores, clock: ManualClock) -> None:
    await _register(stores, clock)
    for query in QUERIES:
        for zones in (None, frozenset({"Europe/Paris"}), frozenset({"", "Asia/Tokyo"}), frozenset()):
            q = dataclasses.replace(query, timezones=zones)
            expected = {zone: len(tokens) for zone, tokens in _expected(q).items()}
            assert await stores.tokens.count_by_timezone("app", q) == expected, q
            assert await stores.tokens.count_targets("app", q) == sum(expected.values()), q


async def test_scan_targets_honours_the_zone_filter(stores: Stores, clock: ManualClock) -> None:
    await _register(stores, clock)
    for query in QUERIES:
        for zones in (None, frozenset({"Europe/Paris"}), frozenset({""}), frozenset({"", "America/New_York"})):
            q = dataclasses.replace(query, timezones=zones)
            seen: list[str] = []
            # Two bucket ranges, each read as one token and then the rest from its ref (as a checkpoint
            # resumes): the filter holds across partitions and checkpoints.
            for buckets in ((0, models.BUCKETS // 2), (models.BUCKETS // 2, models.BUCKETS)):
                first = [t async for page in stores.tokens.scan_targets("app", q, buckets, None, 1) for t in page][:1]
                seen.extend(t.token for t in first)
                if first:
                    async for page in stores.tokens.scan_targets("app", q, buckets, first[0].ref, 100):
                        seen.extend(t.token for t in page)
            expected: set[str] = set().union(*_expected(q).values())
            assert sorted(seen) == sorted(expected), q  # each once


async def test_lookup_carries_the_registered_zone(stores: Stores, clock: ManualClock) -> None:
    await _register(stores, clock)
    devices = [models.Device(token, platform) for token, (_, platform, _, _) in ZONES.items()]
    found = await stores.tokens.lookup("app", devices)
    assert {token: t.timezone for (_, token), t in found.items()} == {token: v[0] for token, v in ZONES.items()}


async def test_partitions_keep_their_own_runnable_time_zones_and_targets(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    later, latest = now + timedelta(hours=1), now + timedelta(hours=5)
    plan = [
        PartitionPlan(0, (0, 512), runnable_at=now, timezones=frozenset({"Europe/Paris", ""}), targets=3),
        PartitionPlan(1, (512, 1024), runnable_at=now, timezones=frozenset({"Europe/Paris", ""}), targets=2),
        PartitionPlan(2, (0, 1024), runnable_at=later, timezones=frozenset({"Asia/Tokyo"}), targets=4),
        PartitionPlan(3, (0, 1024), runnable_at=latest, timezones=frozenset(), targets=0),
    ]
    await stores.notifications.create(draft("n1", now, targeted=9, runnable_at=now), plan)
    statuses = await stores.notifications.partitions("n1")
    assert [(s.index, s.targets, s.not_before, s.claims) for s in statuses] == [
        (0, 3, now, 0), (1, 2, now, 0), (2, 4, later, 0), (3, 0, latest, 0)
    ]
    first = await stores.notifications.claim("w", now, 30)
    second = await stores.notifications.claim("w", now, 30)
    assert first is not None and second is not None
    assert {first.index, second.index} == {0, 1}
    assert first.timezones == frozenset({"Europe/Paris", ""})
    assert await stores.notifications.claim("w", now, 30) is None  # the next group is not due yet
    for done in (first, second):
        assert await stores.notifications.finish_partition(done.partition_id, "w", now) is not None
    clock.advance(3600)
    third = await stores.notifications.claim("w", clock.now(), 30)
    assert third is not None and third.index == 2 and third.timezones == frozenset({"Asia/Tokyo"})
    assert await stores.notifications.claim("w", clock.now(), 30) is None
    assert await stores.notifications.finish_partition(third.partition_id, "w", clock.now()) is not None
    clock.advance(4 * 3600)
    fourth = await stores.notifications.claim("w", clock.now(), 30)
    assert fourth is not None and fourth.index == 3 and fourth.timezones == frozenset()


async def test_plans_without_their_own_time_take_the_notification_s(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    at = now + timedelta(minutes=10)
    await stores.notifications.create(draft("n1", now, runnable_at=at), [PartitionPlan(0, (0, 1024))])
    [status] = await stores.notifications.partitions("n1")
    assert status.not_before == at and status.targets == 0
    assert await stores.notifications.claim("w", now, 30) is None
    clock.advance(600)
    part = await stores.notifications.claim("w", clock.now(), 30)
    assert part is not None and part.timezones is None
