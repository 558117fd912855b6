"""Contract: `NotificationStore.cancel`, the same shape as `fail` with its own verdict, on every backend."""

from __future__ import annotations

from datetime import timedelta

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import ReceiptDraft, Stores
from tests.storage.conftest import draft, plans

DELIVERED, CANCELLED, FAILED = models.DeliveryStatus.DELIVERED, models.DeliveryStatus.CANCELLED, models.DeliveryStatus.FAILED
RUNNING = models.NotificationState.RUNNING


def receipt(token: str, clock: ManualClock, status: models.DeliveryStatus = DELIVERED) -> ReceiptDraft:
    return ReceiptDraft(token, models.Platform.FCM, "u", status, "", 0, "", 0, False, clock.now())


async def test_cancel_marks_a_running_notification_and_the_last_partition_settles_it_cancelled(
    stores: Stores, clock: ManualClock
) -> None:
    now = clock.now()
    await stores.notifications.create(draft("n1", now, targeted=4), plans(2))
    a = await stores.notifications.claim("w", now, 30)
    assert a is not None
    await stores.notifications.mark_running("n1", now)
    keep = now + timedelta(days=1)
    await stores.receipts.append("app", "n1", [receipt("t1", clock)], keep)
    assert await stores.notifications.commit_batch(a.partition_id, "w", "r1", {DELIVERED: 1}, now, 30)

    clock.advance(1)
    view = await stores.notifications.cancel("app", "n1", clock.now())
    assert view is not None and view.state is RUNNING and view.cancel_requested_at == clock.now()
    # Cancelling again keeps the first time; another app sees nothing.
    clock.advance(1)
    again = await stores.notifications.cancel("app", "n1", clock.now())
    assert again is not None and again.cancel_requested_at == view.cancel_requested_at
    assert await stores.notifications.cancel("other-app", "n1", clock.now()) is None
    assert await stores.notifications.cancel("app", "unknown", clock.now()) is None
    # A credential rejection seen after the cancel does not change the verdict.
    await stores.notifications.fail("n1", "credentials rejected", clock.now())

    # The partitions stay: their holders write the CANCELLED receipts from their checkpoints.
    await stores.receipts.append("app", "n1", [receipt("t2", clock, CANCELLED)], keep)
    assert await stores.notifications.commit_batch(a.partition_id, "w", "r2", {CANCELLED: 1}, clock.now(), 30)
    record = await stores.notifications.get("app", "n1")
    assert record is not None and record.view.cancelled == 1 and record.view.pending == 2
    assert await stores.notifications.finish_partition(a.partition_id, "w", clock.now()) is not None
    b = await stores.notifications.claim("w2", clock.now(), 30)
    assert b is not None
    await stores.receipts.append("app", "n1", [receipt("t3", clock, CANCELLED), receipt("t4", clock, CANCELLED)], keep)
    done = await stores.notifications.finish_partition(b.partition_id, "w2", clock.now())
    assert done is not None and done.state is models.NotificationState.CANCELLED and done.error == ""
    # Counted from the receipt log at settlement (the last batch's commit never happened).
    assert (done.delivered, done.cancelled, done.failed, done.pending, done.vanished, done.targeted) == (1, 3, 0, 0, 0, 4)
    assert await stores.notifications.queue_depth() == 0
    # Cancelling a cancelled notification returns it as it is.
    after = await stores.notifications.cancel("app", "n1", clock.now())
    assert after is not None and after.state is models.NotificationState.CANCELLED


async def test_cancelling_a_scheduled_notification_makes_its_partitions_runnable_now(
    stores: Stores, clock: ManualClock
) -> None:
    now = clock.now()
    later = now + timedelta(hours=2)
    await stores.notifications.create(
        draft("n1", now, state=models.NotificationState.SCHEDULED, runnable_at=later), plans(3)
    )
    assert await stores.notifications.claim("w", now, 30) is None
    view = await stores.notifications.cancel("app", "n1", now)
    assert view is not None and view.state is models.NotificationState.SCHEDULED and view.cancel_requested_at == now
    claimed = {p.partition_id for _ in range(3) if (p := await stores.notifications.claim("w", now, 30)) is not None}
    assert len(claimed) == 3


async def test_a_finished_or_failing_notification_keeps_its_verdict(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.notifications.create(draft("done", now, targeted=0), [])
    done = await stores.notifications.cancel("app", "done", now)
    assert done is not None and done.state is models.NotificationState.COMPLETED and done.cancel_requested_at is None

    await stores.notifications.create(draft("failing", now, targeted=1), plans(1))
    await stores.notifications.fail("failing", "credentials rejected", now)
    failing = await stores.notifications.cancel("app", "failing", now)
    assert failing is not None and failing.state is models.NotificationState.QUEUED
    assert failing.cancel_requested_at is None and failing.error == "credentials rejected"

