"""Contract: the notification queue (NotificationStore), on every backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import DuplicateKey, ReceiptDraft, Stores
from tests.storage.conftest import draft, plans

DELIVERED, FAILED = models.DeliveryStatus.DELIVERED, models.DeliveryStatus.FAILED


def receipt(token: str, clock: ManualClock, status: models.DeliveryStatus = DELIVERED) -> ReceiptDraft:
    return ReceiptDraft(token, models.Platform.FCM, "u", status, "m", 200, "", 1, False, clock.now())


async def test_create_then_get_round_trips_domain_values(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    body = {"headers": {"apns-push-type": "alert"}, "payload": '{"aps":{}}', "data": {"a.b": "$x"}}
    view = await stores.notifications.create(draft("n1", now, rendered={models.Platform.APNS: body}), plans(1))
    assert view.state is models.NotificationState.QUEUED and view.pending == 10
    record = await stores.notifications.get("app", "n1")
    assert record is not None and record.query is not None and record.query.kind == "all"
    # Rendered bodies come back as they went in, whatever their keys hold.
    assert record.rendered == {models.Platform.APNS: body}
    assert await stores.notifications.get("other-app", "n1") is None


async def test_a_notification_without_partitions_is_complete_at_once(stores: Stores, clock: ManualClock) -> None:
    view = await stores.notifications.create(draft("n0", clock.now(), targeted=0), [])
    assert view.state is models.NotificationState.COMPLETED and view.completed_at is not None
    assert await stores.notifications.queue_depth() == 0


async def test_idempotency_key_is_unique_per_app(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now, idempotency_key="k"), plans(1))
    with pytest.raises(DuplicateKey) as dup:
        await stores.notifications.create(draft("n2", now, idempotency_key="k"), plans(1))
    assert dup.value.notification_id == "n1"
    # The loser's partitions are not left behind to be run.
    assert await stores.notifications.claim("w", now, 30) is not None
    assert await stores.notifications.claim("w", now, 30) is None
    other = draft("n3", now, idempotency_key="k", app_id="app2")
    assert (await stores.notifications.create(other, [])).notification_id == "n3"
    found = await stores.notifications.find_by_idempotency_key("app", "k")
    assert found is not None and found.notification_id == "n1"


async def test_a_lease_goes_to_one_owner_until_it_expires(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now), plans(1))
    claims = await asyncio.gather(*(stores.notifications.claim(f"w{i}", now, 30) for i in range(6)))
    assert sum(c is not None for c in claims) == 1
    part = next(c for c in claims if c is not None)
    winner = next(f"w{i}" for i, c in enumerate(claims) if c is not None)
    assert part.checkpoint is None and part.buckets == (0, models.BUCKETS)
    clock.advance(29)
    assert await stores.notifications.claim("late", clock.now(), 30) is None
    assert await stores.notifications.renew(part.partition_id, "intruder", clock.now(), 30) is False
    assert await stores.notifications.commit_batch(part.partition_id, winner, "ref-1", {}, clock.now(), 30) is True
    clock.advance(31)
    taken = await stores.notifications.claim("rescuer", clock.now(), 30)
    assert taken is not None and taken.checkpoint == "ref-1"
    assert await stores.notifications.renew(part.partition_id, winner, clock.now(), 30) is False
    assert await stores.notifications.commit_batch(part.partition_id, winner, "ref-2", {DELIVERED: 5}, clock.now(), 30) is False
    record = await stores.notifications.get("app", "n1")
    assert record is not None and record.view.delivered == 0, "a commit without the lease changes nothing"


async def test_scheduled_partitions_are_not_claimable_early(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    later = now + timedelta(minutes=10)
    await stores.notifications.create(draft("n1", now, state=models.NotificationState.SCHEDULED, runnable_at=later), plans(1))
    assert await stores.notifications.claim("w", now, 30) is None
    clock.advance(601)
    assert await stores.notifications.claim("w", clock.now(), 30) is not None


async def test_commits_count_and_the_last_partition_completes_once(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now, targeted=4), plans(2))
    a = await stores.notifications.claim("w", now, 30)
    b = await stores.notifications.claim("w", now, 30)
    assert a and b and {a.index, b.index} == {0, 1}
    keep = now + timedelta(days=1)
    await stores.receipts.append("app", "n1", [receipt("t1", clock), receipt("t2", clock), receipt("t3", clock, FAILED)], keep)
    assert await stores.notifications.commit_batch(a.partition_id, "w", "r", {DELIVERED: 2, FAILED: 1}, now, 30)
    running = await stores.notifications.get("app", "n1")
    assert running is not None and (running.view.delivered, running.view.failed, running.view.pending) == (2, 1, 1)
    first = await stores.notifications.finish_partition(a.partition_id, "w", now)
    assert first is not None and first.state is models.NotificationState.QUEUED
    assert await stores.notifications.finish_partition(a.partition_id, "w", now) is None
    await stores.receipts.append("app", "n1", [receipt("t4", clock)], keep)
    assert await stores.notifications.commit_batch(b.partition_id, "w", "r", {DELIVERED: 1}, now, 30)
    last = await stores.notifications.finish_partition(b.partition_id, "w", now)
    assert last is not None and last.state is models.NotificationState.COMPLETED
    assert (last.targeted, last.delivered, last.failed, last.pending, last.vanished) == (4, 3, 1, 0, 0)
    assert await stores.notifications.queue_depth() == 0
    status = await stores.notifications.partitions("n1")
    assert [(p.index, p.done, p.finished_by) for p in status] == [(0, True, "w"), (1, True, "w")]


async def test_completion_reconciles_counters_with_the_receipt_log(stores: Stores, clock: ManualClock) -> None:
    # A replica wrote a batch's receipts and died before committing their
    # counts; the batch was redone and every receipt was a duplicate.
    now = clock.now()
    await stores.notifications.create(draft("n1", now, targeted=5), plans(1))
    part = await stores.notifications.claim("dead", now, 30)
    assert part is not None
    keep = now + timedelta(days=1)
    await stores.receipts.append("app", "n1", [receipt(f"t{i}", clock) for i in range(3)], keep)
    clock.advance(31)
    again = await stores.notifications.claim("rescuer", clock.now(), 30)
    assert again is not None
    redone = await stores.receipts.append("app", "n1", [receipt(f"t{i}", clock) for i in range(3)], keep)
    assert redone == []
    assert await stores.notifications.commit_batch(again.partition_id, "rescuer", "r", {}, clock.now(), 30)
    done = await stores.notifications.finish_partition(again.partition_id, "rescuer", clock.now())
    assert done is not None and done.state is models.NotificationState.COMPLETED
    # The log holds 3 receipts, so the counters say 3; Send counted 5, and the
    # 2 that never got a receipt were no longer registered: they vanished.
    assert (done.delivered, done.targeted, done.vanished, done.pending) == (3, 5, 2, 0)


async def test_targeted_grows_when_more_tokens_resolved_than_send_counted(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now, targeted=1), plans(1))
    part = await stores.notifications.claim("w", now, 30)
    assert part is not None
    await stores.receipts.append("app", "n1", [receipt("a", clock), receipt("b", clock)], now + timedelta(days=1))
    assert await stores.notifications.commit_batch(part.partition_id, "w", "r", {DELIVERED: 2}, now, 30)
    done = await stores.notifications.finish_partition(part.partition_id, "w", now)
    assert done is not None and (done.targeted, done.delivered, done.vanished, done.pending) == (2, 2, 0, 0)


async def test_fail_condemns_and_the_last_partition_settles_it_failed_with_counts_from_the_log(
    stores: Stores, clock: ManualClock
) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now, targeted=4), plans(2))
    a = await stores.notifications.claim("w", now, 30)
    assert a is not None
    await stores.notifications.mark_running("n1", now)
    keep = now + timedelta(days=1)
    await stores.receipts.append("app", "n1", [receipt("t1", clock, FAILED), receipt("t2", clock)], keep)
    await stores.notifications.fail("n1", "credentials rejected", now)
    await stores.notifications.fail("n1", "a later error", now)  # the first one stays
    # Condemned, not finished: every target still needs its receipt, and the
    # partitions are still there to be claimed and swept from their checkpoints.
    record = await stores.notifications.get("app", "n1")
    assert record is not None
    v = record.view
    assert v.state is models.NotificationState.RUNNING and v.error == "credentials rejected"
    assert await stores.notifications.commit_batch(a.partition_id, "w", "r", {FAILED: 1, DELIVERED: 1}, now, 30)
    b = await stores.notifications.claim("w2", now, 30)
    assert b is not None and b.partition_id != a.partition_id
    done = await stores.notifications.finish_partition(a.partition_id, "w", now)
    assert done is not None and done.state is models.NotificationState.RUNNING
    await stores.receipts.append("app", "n1", [receipt("t3", clock, FAILED)], keep)  # t4 vanished meanwhile
    done = await stores.notifications.finish_partition(b.partition_id, "w2", now)
    assert done is not None
    assert done.state is models.NotificationState.FAILED and done.error == "credentials rejected"
    assert (done.delivered, done.failed, done.vanished, done.targeted, done.pending) == (1, 2, 1, 4, 0)
    assert await stores.notifications.queue_depth() == 0


async def test_fail_after_the_last_partition_settles_at_once(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now, targeted=1), plans(1))
    await stores.notifications.fail("n1", "credentials rejected", now)
    await stores.notifications.fail("n2-unknown", "nothing to condemn", now)
    part = await stores.notifications.claim("w", now, 30)
    assert part is not None
    done = await stores.notifications.finish_partition(part.partition_id, "w", now)
    assert done is not None and done.state is models.NotificationState.FAILED


async def test_release_all_hands_leases_back_at_once(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now), plans(2))
    assert await stores.notifications.claim("dying", now, 300)
    assert await stores.notifications.claim("dying", now, 300)
    assert await stores.notifications.release_all("dying", now) == 2
    assert await stores.notifications.claim("other", now, 30) is not None


async def test_a_restarted_replica_frees_its_earlier_incarnations_leases_only(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now), plans(4))
    for owner in ("r1/boot-1", "r1/boot-1", "r10/boot-1", "r1/boot-2"):
        assert await stores.notifications.claim(owner, now, 300)
    # r1 restarted as r1/boot-3: boot-1's two and boot-2's one are freed; r10 is another replica.
    assert await stores.notifications.release_replica("r1", "r1/boot-3", now) == 3
    assert await stores.notifications.release_replica("r1", "r1/boot-3", now) == 0
    claimed = [await stores.notifications.claim("r1/boot-3", now, 30) for _ in range(4)]
    assert sum(p is not None for p in claimed) == 3
    assert await stores.notifications.renew(claimed[0].partition_id, "r1/boot-1", now, 30) is False  # type: ignore[union-attr]
    # The live incarnation's own leases are kept.
    assert await stores.notifications.release_replica("r1", "r1/boot-3", now) == 0


async def test_release_makes_a_partition_claimable_later(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now), plans(1))
    part = await stores.notifications.claim("w", now, 30)
    assert part is not None
    await stores.notifications.release(part.partition_id, "w", now + timedelta(seconds=5))
    assert await stores.notifications.claim("x", now, 30) is None
    clock.advance(5)
    assert await stores.notifications.claim("x", clock.now(), 30) is not None


async def test_queue_depth_counts_unfinished(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now), plans(1))
    await stores.notifications.create(draft("n2", now, state=models.NotificationState.SCHEDULED), plans(1))
    await stores.notifications.create(draft("n3", now), [])
    assert await stores.notifications.queue_depth() == 2
