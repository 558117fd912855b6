"""Cancellation in the dispatcher, on the in-memory store with a manual clock."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from pushsvc import errors, models
from pushsvc.dispatch import Dispatcher
from pushsvc.providers.base import Outcome, ProviderResult
from tests.unit.conftest import APNS, APP, FCM, World

ALL = models.Target(kind="all", all=True)
OK = ProviderResult(Outcome.DELIVERED, 200, provider_message_id="m")
RETRY = ProviderResult(Outcome.RETRYABLE, 503, "Unavailable")
CANCELLED = models.DeliveryStatus.CANCELLED


async def _send(world: World, **kw: Any) -> str:
    sent = await world.service.send(models.SendCommand(APP, ALL, models.Message(title="hi"), **kw))
    return sent.notification_id


async def _receipts(world: World, nid: str) -> dict[str, models.Receipt]:
    out: dict[str, models.Receipt] = {}
    async for r in world.feed.follow_notification(APP, nid, 0):
        assert r.token not in out, "one receipt per token"
        out[r.token] = r
    return out


async def _view(world: World, nid: str) -> models.NotificationView:
    record = await world.stores.notifications.get(APP, nid)
    assert record is not None
    return record.view


async def test_a_cancel_stops_the_fan_out_after_the_batch_in_flight(world: World) -> None:
    tokens = await world.register(40)  # one partition, four batches of 10
    nid = await _send(world)

    def answer(d: Any) -> ProviderResult:
        if len(world.fcm.sent) == 5:  # mid-way through the first batch
            asyncio.get_running_loop().create_task(world.service.cancel_notification(APP, nid))
        return OK

    world.fcm.default = answer
    await world.drain()
    # The first batch was in flight: it finished; no later batch was sent.
    assert len(world.fcm.sent) == world.settings.batch_size
    got = await _receipts(world, nid)
    assert set(got) == set(tokens)
    counts = Counter(r.status for r in got.values())
    assert counts == {models.DeliveryStatus.DELIVERED: 10, CANCELLED: 30}
    assert {(r.reason, r.attempts) for r in got.values() if r.status is CANCELLED} == {("NotificationCancelled", 0)}
    v = await _view(world, nid)
    assert (v.state, v.delivered, v.cancelled, v.failed, v.pending, v.error) == (
        models.NotificationState.CANCELLED, 10, 30, 0, 0, ""
    )
    assert v.cancel_requested_at is not None and v.completed_at is not None


async def test_a_retry_waiting_in_backoff_gets_a_cancelled_receipt_when_the_renewer_sees_the_cancel(
    world: World,
) -> None:
    tokens = await world.register(2)
    nid = await _send(world)
    in_backoff = asyncio.Event()

    def answer(d: Any) -> ProviderResult:
        if d.token == tokens[0]:
            in_backoff.set()
            return RETRY
        return OK

    world.fcm.default = answer

    async def forever(seconds: float) -> None:
        await asyncio.Event().wait()

    # Token 0's backoff never ends by itself; a short lease makes the renewer look every
    # 0.1 s of real time, and the cancel it sees must wake the backoff.
    d = Dispatcher(
        tokens=world.stores.tokens, notifications=world.stores.notifications, receipts=world.stores.receipts,
        providers={(APP, APNS): world.apns, (APP, FCM): world.fcm}, clock=world.clock,
        settings=world.settings.model_copy(update={"lease_s": 0.3}), signal=world.signal, owner="w1", sleep=forever,
    )
    running = asyncio.create_task(d.run_once())
    await asyncio.wait_for(in_backoff.wait(), 5)
    await world.service.cancel_notification(APP, nid)
    assert await asyncio.wait_for(running, 5)
    got = await _receipts(world, nid)
    waiting = got[tokens[0]]
    assert (waiting.status, waiting.reason, waiting.attempts, waiting.provider_status) == (
        CANCELLED, "NotificationCancelled", 1, 503
    )
    assert got[tokens[1]].status is models.DeliveryStatus.DELIVERED
    assert [s.token for s in world.fcm.sent].count(tokens[0]) == 1  # not retried
    v = await _view(world, nid)
    assert (v.state, v.delivered, v.cancelled, v.pending) == (models.NotificationState.CANCELLED, 1, 1, 0)


async def test_a_scheduled_notification_cancelled_before_its_time_sends_nothing(world: World) -> None:
    tokens = await world.register(25)
    later = world.clock.now() + timedelta(days=1)
    nid = await _send(world, send_at=later)
    assert await world.drain() == 0  # not due
    v = await world.service.cancel_notification(APP, nid)
    assert v.state is models.NotificationState.SCHEDULED and v.cancel_requested_at == world.clock.now()
    assert await world.drain() == 1  # runnable now: swept at once
    assert not world.fcm.sent
    got = await _receipts(world, nid)
    assert set(got) == set(tokens) and {r.status for r in got.values()} == {CANCELLED}
    v = await _view(world, nid)
    assert (v.state, v.cancelled, v.targeted, v.pending) == (models.NotificationState.CANCELLED, 25, 25, 0)
    # Twice is not an error; a cancelled notification is returned as it is.
    again = await world.service.cancel_notification(APP, nid)
    assert again.state is models.NotificationState.CANCELLED


async def test_a_notification_failing_as_a_whole_or_finished_cannot_be_cancelled(world: World) -> None:
    await world.register(3)
    failing = await _send(world)
    await world.stores.notifications.fail(failing, "FCM rejected the app's credentials", world.clock.now())
    with pytest.raises(errors.FailedPrecondition, match="failing as a whole"):
        await world.service.cancel_notification(APP, failing)
    done = await _send(world)
    await world.drain()
    assert (await _view(world, done)).state is models.NotificationState.COMPLETED
    with pytest.raises(errors.FailedPrecondition, match="already finished"):
        await world.service.cancel_notification(APP, done)
    with pytest.raises(errors.NotFound):
        await world.service.cancel_notification("other-app", done)
