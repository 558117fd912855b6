"""Contract: claim lanes (express before bulk, and express-only claims), on every backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pushsvc.clock import ManualClock
from pushsvc.storage import Lane, Stores
from tests.storage.conftest import draft, plans

EXPRESS, BULK = Lane.EXPRESS, Lane.BULK


async def test_an_express_claim_takes_only_express_partitions(stores: Stores, clock: ManualClock) -> None:
    n = stores.notifications
    await n.create(draft("campaign", clock.now(), targeted=20000), plans(4))
    assert await n.claim("w", clock.now(), 30, EXPRESS) is None, "a campaign's partitions are not express"
    clock.advance(5)
    await n.create(draft("login", clock.now(), targeted=1, lane=EXPRESS), plans(1))
    got = await n.claim("w", clock.now(), 30, EXPRESS)
    assert got is not None and got.notification_id == "login" and got.lane is EXPRESS
    assert await n.claim("w", clock.now(), 30, EXPRESS) is None
    bulk = await n.claim("w", clock.now(), 30, BULK)
    assert bulk is not None and bulk.notification_id == "campaign" and bulk.lane is BULK


async def test_a_bulk_claim_never_takes_an_express_partition(stores: Stores, clock: ManualClock) -> None:
    n = stores.notifications
    await n.create(draft("login", clock.now(), targeted=1, lane=EXPRESS), plans(1))
    assert await n.claim("w", clock.now(), 30, BULK) is None
    assert await n.claim("w", clock.now(), 30, EXPRESS) is not None


async def test_an_unlaned_claim_takes_express_first_even_when_bulk_is_older(stores: Stores, clock: ManualClock) -> None:
    n = stores.notifications
    await n.create(draft("campaign", clock.now(), targeted=20000), plans(3))
    clock.advance(60)
    await n.create(draft("login", clock.now(), targeted=1, lane=EXPRESS), plans(1))
    first = await n.claim("w", clock.now(), 30)
    assert first is not None and first.notification_id == "login"
    rest = [await n.claim("w", clock.now(), 30) for _ in range(4)]
    assert [p.notification_id if p else None for p in rest] == ["campaign", "campaign", "campaign", None]


async def test_an_express_lease_goes_to_one_owner_and_comes_back_to_its_lane(stores: Stores, clock: ManualClock) -> None:
    n = stores.notifications
    await n.create(draft("login", clock.now(), targeted=1, lane=EXPRESS), plans(1))
    claims = await asyncio.gather(*(n.claim(f"w{i}", clock.now(), 30, EXPRESS) for i in range(6)))
    assert sum(c is not None for c in claims) == 1
    part = next(c for c in claims if c is not None)
    owner = next(f"w{i}" for i, c in enumerate(claims) if c is not None)
    await n.release(part.partition_id, owner, clock.now() + timedelta(seconds=2))
    assert await n.claim("x", clock.now(), 30, EXPRESS) is None, "released until its retry time"
    clock.advance(2)
    assert await n.claim("x", clock.now(), 30, BULK) is None, "a released express partition stays express"
    again = await n.claim("x", clock.now(), 30, EXPRESS)
    assert again is not None and again.partition_id == part.partition_id and again.lane is EXPRESS
    clock.advance(31)
    taken = await n.claim("rescuer", clock.now(), 30)
    assert taken is not None and taken.partition_id == part.partition_id, "an expired express lease is retaken"
    assert await n.finish_partition(part.partition_id, "rescuer", clock.now()) is not None
    assert await n.claim("w", clock.now(), 30) is None
