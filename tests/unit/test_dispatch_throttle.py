"""Throttled fan-out in the dispatcher: two replicas on one memory store, in virtual time (a manual clock)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.dispatch import Dispatcher
from pushsvc.providers.base import Outcome, ProviderResult
from pushsvc.storage import Lane
from tests.unit.conftest import APNS, APP, FCM, SETTINGS, World, make_world

ALL = models.Target(kind="all", all=True)
OK = ProviderResult(Outcome.DELIVERED, 200, provider_message_id="m")


class VirtualTime:
    """Sleeps that wait for a driver to move a manual clock: every sleeper wakes at its own instant.

    (`ClockSleep` moves the clock by each sleep, which is right for one
    sleeper at a time; two replicas sleeping at once would add up.) The
    driver lets every task run until all of them wait, then moves the clock
    to the earliest wake-up and wakes those due.
    """

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.clock.monotonic() + seconds, next(self._order), wake))
        await wake

    async def run_until(self, done: asyncio.Event, limit_s: float) -> None:
        """Drives the clock until `done` is set; fails past `limit_s` of virtual time."""
        start = self.clock.monotonic()
        while not done.is_set():
            for _ in range(200):  # let every runnable task reach its next wait
                await asyncio.sleep(0)
            while self._sleepers and self._sleepers[0][2].cancelled():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                await asyncio.sleep(0.001)  # workers between claims poll in real time
                continue
            due = self._sleepers[0][0]
            self.clock.advance(max(0.0, due - self.clock.monotonic()))
            while self._sleepers and self._sleepers[0][0] <= self.clock.monotonic():
                _, _, wake = heapq.heappop(self._sleepers)
                if not wake.done():
                    wake.set_result(None)
            assert self.clock.monotonic() - start < limit_s, "the fan-out took longer than the limit"


def _replica(world: World, owner: str, time: VirtualTime, **overrides: Any) -> Dispatcher:
    return Dispatcher(
        tokens=world.stores.tokens, notifications=world.stores.notifications, receipts=world.stores.receipts,
        providers={(APP, APNS): world.apns, (APP, FCM): world.fcm}, clock=world.clock,
        settings=world.settings.model_copy(update={"workers": 2, "express_workers": 0, **overrides}),
        signal=world.signal, owner=owner, sleep=time.sleep, rand=lambda: 0.5,
    )


def _windows(sent_at: list[datetime], start: datetime, width_s: int, step_s: float) -> list[int]:
    """Deliveries in every window [t, t + width) from the first delivery, t moving by `step_s`, while it fits."""
    offsets = sorted((t - start).total_seconds() for t in sent_at)
    last = offsets[-1]
    counts = []
    t = 0.0
    while t + width_s <= last:
        counts.append(sum(1 for o in offsets if t <= o < t + width_s))
        t += step_s
    return counts


async def _throttled_fan_out(world: World, tokens: int, rate: int) -> tuple[list[datetime], str]:
    await world.register(tokens)
    time = VirtualTime(world.clock)
    sent_at: list[datetime] = []

    def answer(d: Any) -> ProviderResult:
        sent_at.append(world.clock.now())
        return OK

    world.fcm.default = answer
    sent = await world.service.send(models.SendCommand(APP, ALL, models.Message(title="hi"), max_per_second=rate))
    done = asyncio.Event()

    def finished() -> None:
        if len(sent_at) >= tokens:
            done.set()

    replicas = [_replica(world, "r1", time), _replica(world, "r2", time)]
    for r in replicas:
        r.start()
    watcher = asyncio.get_running_loop().create_task(_watch(finished))
    try:
        await time.run_until(done, limit_s=tokens / rate * 2 + 30)
    finally:
        watcher.cancel()
        for r in replicas:
            await r.stop(grace_s=0)
    return sent_at, sent.notification_id


async def _watch(check: Any) -> None:
    while True:
        check()
        await asyncio.sleep(0)


@pytest.mark.parametrize(("tokens", "rate"), [(2000, 50), (3000, 100)])
async def test_two_replicas_hold_the_rate_within_ten_percent_over_every_ten_second_window(
    tokens: int, rate: int
) -> None:
    # 8 and 12 partitions (250 targets each) across two replicas of two workers.
    world = make_world(SETTINGS.model_copy(update={"partition_size": 250, "batch_size": 500}))
    await world.stores.prepare()
    try:
        sent_at, nid = await _throttled_fan_out(world, tokens, rate)
    finally:
        world.stores.close()
    assert len(sent_at) == tokens and len({d.token for d in world.fcm.sent}) == tokens
    start = min(sent_at)
    windows = _windows(sent_at, start, 10, 0.5)
    assert windows, "the fan-out lasted less than one window"
    assert all(abs(n - 10 * rate) <= rate for n in windows), (min(windows), max(windows))  # the goal: 10%
    # The design's own bound in virtual time: one batch (2%) where a window cuts one, one more of tolerance.
    assert all(abs(n - 10 * rate) <= 0.04 * 10 * rate for n in windows), (min(windows), max(windows))
    # Both replicas sent: the budget was shared, not held by one.
    record = await world.stores.notifications.get(APP, nid)
    assert record is not None and record.view.max_per_second == rate
    total_s = (max(sent_at) - start).total_seconds()
    assert tokens / rate * 0.95 <= total_s + 1 / rate <= tokens / rate * 1.05


async def test_an_unthrottled_send_uses_full_batches_and_no_budget(world: World) -> None:
    await world.register(30)
    await world.service.send(models.SendCommand(APP, ALL, models.Message(title="hi")))
    assert await world.drain() == 1
    assert len(world.fcm.sent) == 30 and world.sleep.delays == []


async def test_a_throttled_batch_is_a_fifth_of_the_rate(world: World) -> None:
    await world.register(30)
    batches: list[int] = []
    inner = world.stores.notifications.reserve

    async def spy(nid: str, count: int, per_second: int, now: datetime) -> datetime:
        batches.append(count)
        return await inner(nid, count, per_second, now)

    world.stores.notifications.reserve = spy  # type: ignore[method-assign]  # a spy on the one store call
    sent = await world.service.send(models.SendCommand(APP, ALL, models.Message(title="hi"), max_per_second=20))
    assert await world.drain() == 1
    assert batches == [4] * 7 + [2]  # 20/s: 4 per batch (200 ms), the batch_size of 10 not reached
    # The first two went at once (the first booking may start one batch back: the tolerance),
    # then the one replica waited for each of its bookings: 4/20 s apart.
    assert world.sleep.delays == pytest.approx([0.2] * 6)
    record = await world.stores.notifications.get(APP, sent.notification_id)
    assert record is not None and record.view.delivered == 30


async def test_a_cancel_while_waiting_for_the_budget_sends_nothing_more(world: World) -> None:
    tokens = await world.register(20)
    time = VirtualTime(world.clock)
    # 1/s: batches of one, a second apart (the first two at once: one batch of tolerance).
    sent = await world.service.send(models.SendCommand(APP, ALL, models.Message(title="hi"), max_per_second=1))
    nid = sent.notification_id
    d = _replica(world, "r1", time, lease_s=0.3)  # the renewer looks every 0.1 s of real time
    running = asyncio.get_running_loop().create_task(d.run_once())
    for _ in range(100):
        await asyncio.sleep(0)
        if time._sleepers:
            break
    # Two tokens went at once; the worker now waits a (virtual) second for the third.
    assert len(world.fcm.sent) == 2 and time._sleepers
    await world.service.cancel_notification(APP, nid)
    assert await asyncio.wait_for(running, 5)
    assert len(world.fcm.sent) == 2
    counts: Counter[models.DeliveryStatus] = Counter()
    seen = set()
    async for r in world.feed.follow_notification(APP, nid, 0):
        assert r.token not in seen, "one receipt per token"
        seen.add(r.token)
        counts[r.status] += 1
    assert seen == set(tokens)
    assert counts == {models.DeliveryStatus.DELIVERED: 2, models.DeliveryStatus.CANCELLED: 18}
    record = await world.stores.notifications.get(APP, nid)
    assert record is not None and record.view.state is models.NotificationState.CANCELLED


async def test_a_throttled_high_priority_send_stays_out_of_the_express_lane(world: World) -> None:
    await world.register(3)
    message = models.Message(title="hi", priority=models.Priority.HIGH)
    await world.service.send(models.SendCommand(APP, ALL, message, max_per_second=10))
    assert await world.stores.notifications.claim("x", world.clock.now(), 30, Lane.EXPRESS) is None
    assert await world.stores.notifications.claim("x", world.clock.now(), 30, Lane.BULK) is not None


async def test_a_throttled_campaign_leaves_the_replicas_other_worker_to_other_sends(world: World) -> None:
    await world.register(20)
    time = VirtualTime(world.clock)
    slow = await world.service.send(models.SendCommand(APP, ALL, models.Message(title="sale"), max_per_second=1))
    replica = _replica(world, "r1", time)  # two workers
    replica.start()
    try:
        for _ in range(100):  # one worker takes the campaign's one partition and waits for its budget
            await asyncio.sleep(0)
            if time._sleepers:
                break
        fast = await world.service.send(models.SendCommand(APP, ALL, models.Message(title="news")))
        replica.wake()  # as the server's Send does (its idle worker polls in real time)
        done = asyncio.Event()

        async def finished() -> None:
            while True:
                record = await world.stores.notifications.get(APP, fast.notification_id)
                if record is not None and record.view.state.finished:
                    done.set()
                    return
                await asyncio.sleep(0.001)

        watcher = asyncio.get_running_loop().create_task(finished())
        await time.run_until(done, limit_s=10)
        watcher.cancel()
        fast_view = await world.stores.notifications.get(APP, fast.notification_id)
        slow_view = await world.stores.notifications.get(APP, slow.notification_id)
    finally:
        await replica.stop(grace_s=0)
    assert fast_view is not None and fast_view.view.delivered == 20
    # The unthrottled send finished within seconds of virtual time, while the campaign is still at 1/s.
    assert slow_view is not None and slow_view.view.state is models.NotificationState.RUNNING
    assert slow_view.view.delivered < 20
