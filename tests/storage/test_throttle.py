"""Contract: a throttled notification's shared send budget (`NotificationStore.reserve`), on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from pushsvc.clock import ManualClock
from pushsvc.storage import NotificationStore, Stores, open_stores
from pushsvc.storage.mongo import MongoStores
from tests.storage.conftest import draft, plans

RESERVERS = 4
BOOKINGS_EACH = 25


@pytest.fixture
async def reservers(stores: Stores, store_url: str, clock: ManualClock) -> AsyncIterator[list[NotificationStore]]:
    """Notification stores that book concurrently: separate connections (pools), as replicas have, where the server is atomic.

    In-process backends, and FerretDB 1.x (atomic only within a process, whose
    calls `MongoRunner.serialize` runs one at a time: tests/storage/README.md),
    book concurrently through one store.
    """
    atomic_server = store_url.startswith("postgres") or (
        store_url.startswith("mongodb") and isinstance(stores, MongoStores) and stores.traits.atomic_updates
    )
    if not atomic_server:
        yield [stores.notifications] * RESERVERS
        return
    others = [open_stores(store_url, clock=clock) for _ in range(RESERVERS)]
    try:
        for s in others:
            await s.prepare()
        yield [s.notifications for s in others]
    finally:
        for s in others:
            s.close()


async def test_the_first_booking_starts_now_and_the_next_one_after_it(stores: Stores, clock: ManualClock) -> None:
    n = stores.notifications
    await n.create(dataclasses.replace(draft("n1", clock.now()), max_per_second=100), plans(1))
    now = clock.now()
    assert await n.reserve("n1", 10, 100, now) == now
    assert await n.reserve("n1", 5, 100, now) == now + timedelta(seconds=0.1)
    assert await n.reserve("n1", 1, 100, now) == now + timedelta(seconds=0.15)
    record = await n.get("app", "n1")
    assert record is not None and record.view.max_per_second == 100


async def test_idle_time_is_not_saved_up(stores: Stores, clock: ManualClock) -> None:
    n = stores.notifications
    await n.create(draft("n1", clock.now()), plans(1))
    assert await n.reserve("n1", 100, 100, clock.now()) == clock.now()  # booked until now + 1 s
    clock.advance(30)
    later = clock.now()
    # 29 s went unused: the next booking starts now, not back where the last one ended.
    assert await n.reserve("n1", 100, 100, later) == later
    assert await n.reserve("n1", 1, 100, later) == later + timedelta(seconds=1)


async def test_a_caller_may_let_a_late_booking_start_a_little_in_the_past(stores: Stores, clock: ManualClock) -> None:
    n = stores.notifications
    await n.create(draft("n1", clock.now()), plans(1))
    await n.reserve("n1", 10, 100, clock.now())  # booked until now + 0.1 s
    clock.advance(5)
    grace = clock.now() - timedelta(seconds=0.2)
    # Idle since: the booking starts where the caller allows (a tolerance of 0.2 s), not back at the last one.
    assert await n.reserve("n1", 20, 100, grace) == grace
    assert await n.reserve("n1", 1, 100, grace) == clock.now()


async def test_a_booking_is_rounded_up_to_the_microsecond(stores: Stores, clock: ManualClock) -> None:
    n = stores.notifications
    await n.create(draft("n1", clock.now()), plans(1))
    now = clock.now()
    await n.reserve("n1", 1, 3, now)
    # 1/3 s is 333333.33 µs: booked as 333334, so bookings never add up to more than the rate.
    assert await n.reserve("n1", 1, 3, now) == now + timedelta(microseconds=333_334)


async def test_bookings_are_per_notification(stores: Stores, clock: ManualClock) -> None:
    n = stores.notifications
    for nid in ("a", "b"):
        await n.create(draft(nid, clock.now()), plans(1))
    now = clock.now()
    await n.reserve("a", 50, 10, now)
    assert await n.reserve("b", 1, 10, now) == now


async def test_an_unknown_notification_books_nothing(stores: Stores, clock: ManualClock) -> None:
    assert await stores.notifications.reserve("nope", 10, 10, clock.now()) == clock.now()


async def test_concurrent_bookings_never_overlap_and_add_up(
    stores: Stores, reservers: list[NotificationStore], clock: ManualClock
) -> None:
    """Reservers on separate connections book at once; their intervals tile the budget exactly, with no overlap."""
    await stores.notifications.create(draft("n1", clock.now()), plans(4))
    rate = 1000
    start = clock.now()
    rng = random.Random(21)
    sizes = [[rng.randint(1, 40) for _ in range(BOOKINGS_EACH)] for _ in range(RESERVERS)]

    async def book(store: NotificationStore, mine: list[int]) -> list[tuple[datetime, int]]:
        got = []
        for count in mine:
            got.append((await store.reserve("n1", count, rate, start), count))
        return got

    booked = [b for each in await asyncio.gather(*(book(s, m) for s, m in zip(reservers, sizes, strict=True))) for b in each]
    booked.sort()
    assert booked[0][0] == start
    # Whole milliseconds (1000/s): each booking starts exactly where the one before it ends.
    for (at, count), (next_at, _) in zip(booked, booked[1:], strict=False):
        assert next_at == at + timedelta(milliseconds=count), "bookings overlap or leave a gap"
    total = sum(count for _, count in booked)
    assert total == sum(map(sum, sizes))
    assert await stores.notifications.reserve("n1", 1, rate, start) == start + timedelta(milliseconds=total)
