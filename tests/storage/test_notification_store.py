"""Contract: the notification queue (NotificationStore), on every backend."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import DuplicateKey, MongoStores


def notification(nid: str, now: datetime, parts: int, **extra: Any) -> dict[str, Any]:
    return {
        "_id": nid,
        "app_id": "app",
        "state": "queued",
        "created_at": now,
        "updated_at": now,
        "targeted": 10,
        "partitions_total": parts,
        "partitions_done": 0,
        "receipt_seq": 0,
        "rendered": {},
        "query": {"kind": "all", "user_ids": [], "topic": "", "platforms": []},
        **extra,
    }


def partition(nid: str, i: int, now: datetime, runnable_at: datetime | None = None) -> dict[str, Any]:
    return {
        "_id": f"{nid}:{i}",
        "notification_id": nid,
        "app_id": "app",
        "index": i,
        "bucket_lo": 0,
        "bucket_hi": 1024,
        "devices": [],
        "checkpoint": None,
        "done": False,
        "owner": None,
        "lease_expires_at": runnable_at or now,
        "created_at": now,
    }


async def test_create_then_get_round_trips(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    view = await stores.notifications.create(notification("n1", now, 1), [partition("n1", 0, now)])
    assert view.state is models.NotificationState.QUEUED and view.pending == 10
    record = await stores.notifications.get("app", "n1")
    assert record is not None and record.query is not None and record.query.kind == "all"
    assert await stores.notifications.get("other-app", "n1") is None


async def test_idempotency_key_is_unique_per_app(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(notification("n1", now, 1, idempotency_key="k"), [partition("n1", 0, now)])
    with pytest.raises(DuplicateKey) as dup:
        await stores.notifications.create(notification("n2", now, 1, idempotency_key="k"), [partition("n2", 0, now)])
    assert dup.value.notification_id == "n1"
    # The loser's partitions are not left behind to be run.
    assert await stores.notifications.claim("w", now, 30) is not None
    assert await stores.notifications.claim("w", now, 30) is None
    other = notification("n3", now, 1, idempotency_key="k", app_id="app2")
    assert (await stores.notifications.create(other, [])).notification_id == "n3"
    found = await stores.notifications.find_by_idempotency_key("app", "k")
    assert found is not None and found.notification_id == "n1"


async def test_a_lease_goes_to_one_owner_until_it_expires(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(notification("n1", now, 1), [partition("n1", 0, now)])
    claims = await asyncio.gather(*(stores.notifications.claim(f"w{i}", now, 30) for i in range(6)))
    assert sum(c is not None for c in claims) == 1
    winner = next(f"w{i}" for i, c in enumerate(claims) if c is not None)
    clock.advance(29)
    assert await stores.notifications.claim("late", clock.now(), 30) is None
    assert await stores.notifications.renew("n1:0", "intruder", clock.now(), 30) is False
    assert await stores.notifications.checkpoint("n1:0", winner, "ref-1", clock.now(), 30) is True
    clock.advance(31)
    taken = await stores.notifications.claim("rescuer", clock.now(), 30)
    assert taken is not None and taken.checkpoint == "ref-1"
    assert await stores.notifications.renew("n1:0", winner, clock.now(), 30) is False


async def test_scheduled_partitions_are_not_claimable_early(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    later = now + timedelta(minutes=10)
    await stores.notifications.create(notification("n1", now, 1, state="scheduled"), [partition("n1", 0, now, later)])
    assert await stores.notifications.claim("w", now, 30) is None
    clock.advance(601)
    assert await stores.notifications.claim("w", clock.now(), 30) is not None


async def test_finishing_counts_once_and_the_last_partition_completes(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(notification("n1", now, 2), [partition("n1", 0, now), partition("n1", 1, now)])
    a = await stores.notifications.claim("w", now, 30)
    b = await stores.notifications.claim("w", now, 30)
    assert a and b
    await stores.notifications.add_counts("n1", {"delivered": 3, "failed": 1}, now)
    first = await stores.notifications.finish_partition(a.partition_id, "w", now)
    assert first is not None and first.state is models.NotificationState.QUEUED
    assert await stores.notifications.finish_partition(a.partition_id, "w", now) is None
    last = await stores.notifications.finish_partition(b.partition_id, "w", now)
    assert last is not None and last.state is models.NotificationState.COMPLETED
    # targeted becomes what was resolved, so pending ends at zero.
    assert (last.targeted, last.delivered, last.failed, last.pending) == (4, 3, 1, 0)
    assert await stores.notifications.queue_depth() == 0


async def test_fail_retires_every_partition(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(notification("n1", now, 2), [partition("n1", 0, now), partition("n1", 1, now)])
    await stores.notifications.mark_running("n1", now)
    await stores.notifications.fail("n1", "credentials rejected", now)
    assert await stores.notifications.claim("w", now, 30) is None
    record = await stores.notifications.get("app", "n1")
    assert record is not None
    assert record.view.state is models.NotificationState.FAILED and record.view.error == "credentials rejected"


async def test_release_all_hands_leases_back_at_once(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(notification("n1", now, 2), [partition("n1", 0, now), partition("n1", 1, now)])
    assert await stores.notifications.claim("dying", now, 300)
    assert await stores.notifications.claim("dying", now, 300)
    assert await stores.notifications.release_all("dying", now) == 2
    assert await stores.notifications.claim("other", now, 30) is not None


async def test_queue_depth_counts_unfinished(stores: MongoStores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(notification("n1", now, 1), [partition("n1", 0, now)])
    await stores.notifications.create(notification("n2", now, 1, state="scheduled"), [partition("n2", 0, now)])
    await stores.notifications.create(notification("n3", now, 0, state="completed"), [])
    assert await stores.notifications.queue_depth() == 2
