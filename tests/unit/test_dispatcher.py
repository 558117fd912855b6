"""The dispatcher on the memory store with a manual clock and scripted providers.

Leases, retries, checkpoints, the 410 rule, credential stop, bounded
concurrency, and counters that agree with the receipt log after a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from datetime import timedelta
from typing import Any

from pushsvc import models
from pushsvc.dispatch import Dispatcher
from pushsvc.providers.base import Outcome, ProviderResult
from pushsvc.storage import NotificationStore
from tests.unit.conftest import APNS, APP, FCM, World, make_world

ALL = models.Target(kind="all", all=True)
RETRY = ProviderResult(Outcome.RETRYABLE, 503, "Unavailable")
RETRY_AFTER = ProviderResult(Outcome.RETRYABLE, 429, "QUOTA_EXCEEDED", retry_after_s=7.0)
OK = ProviderResult(Outcome.DELIVERED, 200, provider_message_id="m")
LOST = ProviderResult(Outcome.RETRYABLE, 0, "ConnectionLost (outcome unknown)", outcome_unknown=True)


async def send(world: World, target: models.Target = ALL, **message: Any) -> str:
    sent = await world.service.send(models.SendCommand(APP, target, models.Message(title="hi", **message)))
    return sent.notification_id


async def receipts(world: World, nid: str) -> dict[str, models.Receipt]:
    out: dict[str, models.Receipt] = {}
    async for r in world.feed.follow_notification(APP, nid, 0):
        assert r.token not in out, "one receipt per token"
        out[r.token] = r
    return out


async def view(world: World, nid: str) -> models.NotificationView:
    record = await world.stores.notifications.get(APP, nid)
    assert record is not None
    return record.view


async def test_a_fan_out_delivers_every_token_once_and_counts_it(world: World) -> None:
    tokens = await world.register(95)
    nid = await send(world)
    assert await world.drain() == 2  # 95 targets in partitions of 50
    got = await receipts(world, nid)
    assert set(got) == set(tokens) and all(r.status is models.DeliveryStatus.DELIVERED for r in got.values())
    assert Counter(d.token for d in world.fcm.sent) == Counter({t: 1 for t in tokens})
    v = await view(world, nid)
    assert (v.state, v.targeted, v.delivered, v.pending, v.vanished) == (models.NotificationState.COMPLETED, 95, 95, 0, 0)
    assert all(p.done and p.finished_by == "w1" for p in await world.stores.notifications.partitions(nid))


async def test_each_batch_is_one_read_one_append_and_one_commit_plus_a_key_read_of_its_notification(world: World) -> None:
    await world.register(35)
    nid = await send(world)
    calls: Counter[str] = Counter()
    world.stores = _Counting(world.stores, calls)  # type: ignore[assignment]
    await world.drain()
    assert (await view(world, nid)).delivered == 35
    # 35 targets in batches of 10: 4 batches, one partition.
    assert calls["scan_targets"] == 1 and calls["pages"] == 4
    assert calls["append"] == 4 and calls["commit_batch"] == 4 and calls["finish_partition"] == 1
    # The notification is read at the start and again before each later batch (a cancel stops it
    # there), and once by this test's view() above.
    assert calls["get"] == 1 + 3 + 1


async def test_retries_back_off_honour_retry_after_and_stop_at_max_attempts(world: World) -> None:
    await world.register(3)
    world.fcm.script = {"t0000": [RETRY, RETRY_AFTER, OK], "t0001": [RETRY]}
    nid = await send(world)
    await world.drain()
    got = await receipts(world, nid)
    assert (got["t0000"].status, got["t0000"].attempts) == (models.DeliveryStatus.DELIVERED, 3)
    assert (got["t0001"].status, got["t0001"].attempts, got["t0001"].provider_status) == (models.DeliveryStatus.FAILED, 4, 503)
    assert (got["t0002"].attempts) == 1
    # Retries are regrouped by when they fall due: one wait per group, not per
    # token. Both back off 1 s (jitter at its midpoint) and go together; then
    # t0001 backs off 2 s and 4 s, while t0000 waits its Retry-After of 7 s
    # (above its 2 s backoff): the waits run from 1 s to 3, 7 and 8 s.
    assert world.sleep.delays == [1.0, 2.0, 4.0, 1.0]
    retried = [d.token for d in world.fcm.sent if d.token != "t0002"]
    assert retried == ["t0000", "t0001", "t0000", "t0001", "t0001", "t0001", "t0000"]


async def test_a_wave_of_retries_backs_off_exponentially_and_is_resent_as_one_batch(world: World) -> None:
    await world.register(5)
    world.fcm.script = {f"t000{i}": [RETRY] for i in range(4)}
    nid = await send(world)
    batches: list[int] = []
    send_batch = world.fcm.send_batch

    async def recording(deliveries: Any) -> Any:
        batches.append(len(deliveries))
        return await send_batch(deliveries)

    world.fcm.send_batch = recording  # type: ignore[method-assign]  # observes the calls, answers unchanged
    await world.drain()
    got = await receipts(world, nid)
    # Backoff 1 s, 2 s, 4 s (jitter at its midpoint), one wait per wave.
    assert world.sleep.delays == [1.0, 2.0, 4.0]
    # One call for the batch, then the four retrying tokens together, three times.
    assert batches == [5, 4, 4, 4]
    assert all((got[f"t000{i}"].status, got[f"t000{i}"].attempts) == (models.DeliveryStatus.FAILED, 4) for i in range(4))
    assert (got["t0004"].status, got["t0004"].attempts) == (models.DeliveryStatus.DELIVERED, 1)


async def test_a_ttl_that_runs_out_while_retrying_expires_the_token(world: World) -> None:
    await world.register(1)
    world.fcm.script = {"t0000": [RETRY]}
    nid = await send(world, ttl_s=2.5)
    await world.drain()
    (r,) = (await receipts(world, nid)).values()
    assert (r.status, r.reason, r.attempts) == (models.DeliveryStatus.EXPIRED, "TtlExpired", 2)
    assert (await view(world, nid)).expired == 1


async def test_the_apns_410_rule_keeps_a_token_re_registered_after_the_timestamp(world: World) -> None:
    kept, gone = await world.register(2, APNS, prefix="ab")
    before = world.clock.now() - timedelta(hours=1)
    after = world.clock.now() + timedelta(hours=1)
    world.apns.script = {
        kept: [ProviderResult(Outcome.TOKEN_INVALID, 410, "Unregistered", invalid_since=before)],
        gone: [ProviderResult(Outcome.TOKEN_INVALID, 410, "Unregistered", invalid_since=after)],
    }
    nid = await send(world)
    await world.drain()
    got = await receipts(world, nid)
    assert got[kept].status is models.DeliveryStatus.TOKEN_INVALID and not got[kept].token_removed
    assert got[gone].token_removed
    assert await world.stores.tokens.get(APP, APNS, kept) is not None
    assert await world.stores.tokens.get(APP, APNS, gone) is None
    assert (await view(world, nid)).invalid_tokens == 2


async def test_rejected_credentials_fail_the_notification_and_stop_sending(world: World) -> None:
    await world.register(60)
    rejected = ProviderResult(Outcome.CREDENTIALS_REJECTED, 401, "THIRD_PARTY_AUTH_ERROR")
    world.fcm.default = lambda d: rejected if len(world.fcm.sent) == 1 else OK  # the very first send
    nid = await send(world)
    await world.drain()
    v = await view(world, nid)
    assert v.state is models.NotificationState.FAILED and "THIRD_PARTY_AUTH_ERROR" in v.error
    # The batch in flight finished; nothing after it was sent.
    assert len(world.fcm.sent) == world.settings.batch_size
    # Still one receipt per target: those never sent say why.
    got = await receipts(world, nid)
    assert len(got) == 60
    unsent = [r for r in got.values() if r.reason == "NotificationFailed"]
    assert len(unsent) == 50 and all(r.status is models.DeliveryStatus.FAILED and r.attempts == 0 for r in unsent)
    assert (v.delivered, v.failed, v.targeted, v.pending, v.vanished) == (9, 51, 60, 0, 0)
    assert await world.stores.notifications.claim("anyone", world.clock.now(), 30) is None


async def test_a_retry_waiting_in_backoff_gets_its_receipt_when_credentials_are_rejected(world: World) -> None:
    tokens = await world.register(2)
    rejected = ProviderResult(Outcome.CREDENTIALS_REJECTED, 401, "THIRD_PARTY_AUTH_ERROR")
    first_sent = asyncio.Event()
    # The first token's 503 puts it in backoff; the second's rejection then condemns the notification.

    def answer(d: Any) -> ProviderResult:
        if d.token == tokens[0]:
            first_sent.set()
            return RETRY
        return rejected

    world.fcm.default = answer
    nid = await send(world)
    await world.drain()
    got = await receipts(world, nid)
    assert first_sent.is_set()
    waiting = got[tokens[0]]
    assert (waiting.status, waiting.reason, waiting.attempts, waiting.provider_status) == (
        models.DeliveryStatus.FAILED, "NotificationFailed", 1, 503
    )
    assert got[tokens[1]].reason == "THIRD_PARTY_AUTH_ERROR"
    assert [d.token for d in world.fcm.sent].count(tokens[0]) == 1  # not retried
    v = await view(world, nid)
    assert (v.state, v.failed, v.pending) == (models.NotificationState.FAILED, 2, 0)


async def test_a_condemned_notification_is_swept_by_whoever_claims_its_partition(world: World) -> None:
    await world.register(30)
    nid = await send(world)
    # Another replica condemned it before this one ran: nothing is sent, every target gets a receipt.
    await world.stores.notifications.fail(nid, "FCM rejected the app's credentials (401 THIRD_PARTY_AUTH_ERROR)", world.clock.now())
    await world.drain()
    got = await receipts(world, nid)
    assert not world.fcm.sent and len(got) == 30
    assert all((r.status, r.reason) == (models.DeliveryStatus.FAILED, "NotificationFailed") for r in got.values())
    v = await view(world, nid)
    assert (v.state, v.failed, v.pending) == (models.NotificationState.FAILED, 30, 0)
    assert "THIRD_PARTY_AUTH_ERROR" in v.error


async def test_requests_in_flight_are_bounded_per_provider() -> None:
    w = make_world()
    await w.register(40)
    w.fcm.gate = asyncio.Event()
    nid = await send(w)
    worker = asyncio.create_task(w.drain(batch_size=40, max_in_flight_per_provider=3))
    for _ in range(20):
        await asyncio.sleep(0)
    assert w.fcm.in_flight == 3
    w.fcm.gate.set()
    await asyncio.wait_for(worker, 5)
    assert w.fcm.max_in_flight == 3 and (await view(w, nid)).delivered == 40


async def test_a_lost_lease_stops_the_old_owner_after_its_batch(world: World) -> None:
    await world.register(30)
    nid = await send(world)
    first = world.dispatcher("slow")
    world.fcm.gate = asyncio.Event()
    task = asyncio.create_task(first.run_once())
    for _ in range(10):
        await asyncio.sleep(0)
    world.clock.advance(31)  # the lease runs out while the first batch is in flight
    thief = await world.stores.notifications.claim("thief", world.clock.now(), 30)
    assert thief is not None
    world.fcm.gate.set()
    assert await asyncio.wait_for(task, 5) is True
    first_batch = len(world.fcm.sent)
    assert first_batch == 10, "the old owner stopped after the batch in flight"
    await world.stores.notifications.release_all("thief", world.clock.now())
    await world.drain("rescuer")
    assert (await view(world, nid)).delivered == 30


async def test_a_restarted_replica_resumes_its_dead_incarnations_partition_at_once(world: World) -> None:
    await world.register(30)
    nid = await send(world)
    dead = Dispatcher(
        tokens=world.stores.tokens, notifications=world.stores.notifications, receipts=world.stores.receipts,
        providers={(APP, APNS): world.apns, (APP, FCM): world.fcm}, clock=world.clock, settings=world.settings,
        signal=world.signal, replica_id="pod-a", sleep=world.sleep,
    )
    # It claimed the partition and died before sending anything: the lease has 30 s to run.
    assert await world.stores.notifications.claim(dead.owner, world.clock.now(), world.settings.lease_s)

    def incarnation(replica_id: str) -> Dispatcher:
        return Dispatcher(
            tokens=world.stores.tokens, notifications=world.stores.notifications, receipts=world.stores.receipts,
            providers={(APP, APNS): world.apns, (APP, FCM): world.fcm}, clock=world.clock, settings=world.settings,
            signal=world.signal, replica_id=replica_id, sleep=world.sleep,
        )

    other = incarnation("pod-b")
    assert await other.reclaim() == 0, "another replica's leases are not ours to free"
    assert await other.run_once() is False
    restarted = incarnation("pod-a")
    assert restarted.owner != dead.owner and restarted.owner.startswith("pod-a/")
    assert await restarted.reclaim() == 1
    assert await restarted.run_once() is True  # no clock advance: the lease was not waited out
    assert (await view(world, nid)).delivered == 30


class Killed(BaseException):
    """A process death: nothing below the dispatcher gets to clean up."""


class _DiesAtCommit:
    """Delegates to a notification store; the n-th commit kills the process instead."""

    def __init__(self, inner: NotificationStore, die_at: int) -> None:
        self._inner = inner
        self._left = die_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit_batch(self, *args: Any) -> bool:
        self._left -= 1
        if self._left == 0:
            raise Killed()
        return await self._inner.commit_batch(*args)


async def test_counters_agree_with_the_receipt_log_after_a_crash_between_receipts_and_commit(world: World) -> None:
    tokens = await world.register(40)
    nid = await send(world)
    victim = world.dispatcher("victim")
    victim._notifications = _DiesAtCommit(world.stores.notifications, die_at=2)  # type: ignore[assignment]
    try:
        await victim.run_once()
    except Killed:
        pass
    # Its second batch's receipts are in the log, their counts are not; its lease is left to expire.
    assert len(world.fcm.sent) == 20
    mid = await view(world, nid)
    assert mid.delivered == 10 and mid.state is models.NotificationState.RUNNING
    assert await world.drain("rescuer") == 0, "nobody takes over before the lease expires"
    world.clock.advance(31)
    await world.drain("rescuer")
    got = await receipts(world, nid)
    assert set(got) == set(tokens)
    duplicates = sum(c - 1 for c in Counter(d.token for d in world.fcm.sent).values())
    assert duplicates == 10, "exactly the uncommitted batch was resent"
    v = await view(world, nid)
    assert (v.state, v.targeted, v.delivered, v.pending, v.vanished) == (models.NotificationState.COMPLETED, 40, 40, 0, 0)
    assert await world.stores.receipts.count_by_status(nid) == {models.DeliveryStatus.DELIVERED: 40}


async def test_tokens_that_vanish_before_the_fan_out_are_reported_not_subtracted(world: World) -> None:
    tokens = await world.register(10)
    nid = await send(world)
    for t in tokens[:3]:
        await world.service.unregister_token(APP, FCM, t)
    await world.drain()
    v = await view(world, nid)
    assert (v.targeted, v.delivered, v.vanished, v.pending) == (10, 7, 3, 0)


async def test_device_lists_include_unregistered_devices_and_resume_by_count(world: World) -> None:
    await world.register(1)
    devices = tuple(models.Device(f"t{i:04d}", FCM) for i in range(25))
    nid = await send(world, models.Target(kind="devices", devices=devices))
    await world.drain()
    got = await receipts(world, nid)
    assert len(got) == 25 and got["t0000"].user_id == "" and (await view(world, nid)).delivered == 25


async def test_an_orphaned_partition_is_dropped_after_a_while(world: World) -> None:
    await world.register(1)
    nid = await send(world)
    # The notification vanished (its Send died before storing it, as far as the dispatcher can tell).
    q = world.stores.notifications._q  # type: ignore[attr-defined]
    del q.notes[nid]
    assert await world.drain() == 1
    assert len(await world.stores.notifications.partitions(nid)) == 1, "too young to drop: released for later"
    world.clock.advance(world.settings.orphan_after_s + 1)
    await world.drain()
    assert await world.stores.notifications.partitions(nid) == []


class _Counting:
    """Counts the store calls the dispatcher makes."""

    def __init__(self, stores: Any, calls: Counter[str]) -> None:
        self._stores = stores
        self.calls = calls
        self.tokens = _Spy(stores.tokens, calls)
        self.notifications = _Spy(stores.notifications, calls)
        self.receipts = _Spy(stores.receipts, calls)

    def close(self) -> None:
        self._stores.close()


class _Spy:
    def __init__(self, inner: Any, calls: Counter[str]) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name == "scan_targets":
            def scan(*a: Any, **kw: Any) -> Any:
                self._calls[name] += 1
                return self._pages(target(*a, **kw))
            return scan

        async def call(*a: Any, **kw: Any) -> Any:
            self._calls[name] += 1
            return await target(*a, **kw)
        return call

    async def _pages(self, gen: Any) -> Any:
        async for page in gen:
            self._calls["pages"] += 1
            yield page



async def test_provider_trouble_is_logged_rate_limited_and_without_tokens(world: World, caplog: Any) -> None:
    tokens = await world.register(20)
    failing = ProviderResult(Outcome.PERMANENT, 400, "InvalidRegistration")
    world.fcm.script = {t: [RETRY, OK] for t in tokens[:19]} | {tokens[19]: [failing]}
    caplog.set_level(logging.INFO, logger="pushsvc.dispatch")
    nid = await send(world)
    await world.drain()
    lines = [r.getMessage() for r in caplog.records if r.name == "pushsvc.dispatch"]
    # 19 retries, in two batches of 10: one line per wave of retries, naming the
    # platform, status, reason and count; rate-limited to a line per 10 s of the
    # (manual) clock, so the second batch's wave, 1 s later, adds none.
    retries = [line for line in lines if "retrying" in line]
    assert retries == [f"FCM answered 503 Unavailable for app {APP}; retrying 10 deliveries (attempt 1, in 1.0 s)"]
    assert [line for line in lines if "delivery failed" in line] == [
        f"FCM delivery failed for app {APP} after 1 attempt(s): 400 InvalidRegistration"
    ]
    # One summary line for the notification that finished with a failure.
    summaries = [line for line in lines if "finished with failures" in line]
    assert summaries == [f"notification {nid} of app {APP} finished with failures: 19 delivered, 1 failed, 0 invalid tokens, 0 expired"]
    assert not [line for line in lines for t in tokens if t in line]


async def _until_sent(world: World, n: int) -> None:
    """Yields to the loop until n sends are in flight (bounded)."""
    for _ in range(200):
        if world.fcm.in_flight >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"only {world.fcm.in_flight} sends in flight, want {n}")


async def test_a_drain_finishes_the_batch_in_flight_checkpoints_it_and_gives_the_partition_back(world: World) -> None:
    tokens = await world.register(30)
    nid = await send(world)  # one partition, batches of 10
    d = world.dispatcher("leaving", workers=1)
    world.fcm.gate = asyncio.Event()
    d.start()
    await _until_sent(world, 10)
    stopping = asyncio.create_task(d.stop(grace_s=5.0))
    await asyncio.sleep(0.05)
    assert await world.stores.notifications.claim("other", world.clock.now(), 30) is None, "still ours while the batch runs"
    world.fcm.gate.set()
    await asyncio.wait_for(stopping, 5)
    assert len(world.fcm.sent) == 10, "the batch in flight finished; no further batch started"
    assert (await view(world, nid)).delivered == 10, "and it was checkpointed"
    # Given back at once, not after lease_s (the manual clock has not moved).
    await world.drain("other")
    assert set(await receipts(world, nid)) == set(tokens)
    assert Counter(d.token for d in world.fcm.sent) == Counter({t: 1 for t in tokens}), "nothing sent twice"
    assert [p.finished_by for p in await world.stores.notifications.partitions(nid)] == ["other"]


async def test_a_batch_that_outlasts_the_grace_is_cancelled_and_resumes_from_the_last_checkpoint(world: World) -> None:
    tokens = await world.register(30)
    nid = await send(world)
    d = world.dispatcher("leaving", workers=1)
    world.fcm.gate = asyncio.Event()  # never set while "leaving" runs: its batch outlasts the grace
    d.start()
    await _until_sent(world, 10)
    await asyncio.wait_for(d.stop(grace_s=0.2), 5)
    assert (await view(world, nid)).delivered == 0 and not world.fcm.sent
    world.fcm.gate.set()
    await world.drain("other")  # released: no wait for the lease
    assert set(await receipts(world, nid)) == set(tokens)
    assert (await view(world, nid)).state is models.NotificationState.COMPLETED


async def test_a_draining_dispatcher_claims_nothing_new(world: World) -> None:
    await world.register(5)
    d = world.dispatcher("leaving", workers=2)
    d.start()
    d.drain()
    await asyncio.sleep(0.05)
    nid = await send(world)
    d.wake()
    await asyncio.sleep(0.05)
    await d.stop(grace_s=1.0)
    assert not world.fcm.sent and (await view(world, nid)).state is models.NotificationState.QUEUED


class _Outage:
    """The notification store, whose `claim` fails as an unreachable store does while `down` is set."""

    def __init__(self, inner: NotificationStore) -> None:
        self._inner = inner
        self.down = True
        self.claims = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        from pushsvc import errors

        self.claims += 1
        if self.down:
            raise errors.StoreUnavailable("store down (test)")
        return await self._inner.claim(*args, **kwargs)


async def test_a_store_outage_is_one_warning_however_many_workers_and_retries(world: World, caplog: Any) -> None:
    outage = _Outage(world.stores.notifications)
    d = Dispatcher(
        tokens=world.stores.tokens, notifications=outage, receipts=world.stores.receipts,  # type: ignore[arg-type]  # _Outage is a NotificationStore by duck typing
        providers={}, clock=world.clock,
        settings=world.settings.model_copy(update={"workers": 3, "store_backoff_max_s": 0.02}),
        signal=world.signal, owner="w1", sleep=world.sleep,
    )

    def lines(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records if r.name.startswith("pushsvc"))

    async def until(predicate: Any) -> None:
        for _ in range(500):
            if predicate():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("never happened")

    with caplog.at_level(logging.INFO, logger="pushsvc"):
        d.start()
        try:
            await until(lambda: outage.claims >= 15)  # every worker has failed, several times each
            assert lines("store unavailable") == 1
            outage.down = False
            await until(lambda: lines("store reachable again") == 1)
            claims = outage.claims
            outage.down = True
            await until(lambda: outage.claims >= claims + 15)
            assert (lines("store unavailable"), lines("store reachable again")) == (2, 1)  # a second outage says so again
        finally:
            await d.stop(release_leases=False)


async def test_a_send_whose_answer_was_lost_is_never_concluded_failed_by_later_503s(world: World) -> None:
    # max_attempts is 4: a token that only ever got 503s ends FAILED after 4
    # sends, but one whose first answer was lost may have been accepted then,
    # so it goes on until an answer settles it, within three times as many.
    await world.register(3)
    world.fcm.script = {"t0000": [LOST, RETRY, RETRY, RETRY, RETRY, OK], "t0001": [RETRY], "t0002": [LOST]}
    nid = await send(world)
    await world.drain()
    got = await receipts(world, nid)
    assert (got["t0000"].status, got["t0000"].attempts) == (models.DeliveryStatus.DELIVERED, 6)
    assert (got["t0001"].status, got["t0001"].attempts) == (models.DeliveryStatus.FAILED, 4)
    lost = got["t0002"]
    assert (lost.status, lost.attempts, lost.reason) == (models.DeliveryStatus.FAILED, 12, "ConnectionLost (outcome unknown)")



async def test_providers_get_the_rendered_message_whole_with_its_real_size_and_limit(world: World) -> None:
    await world.register(2, FCM)
    await world.register(2, APNS, prefix="ab")
    nid = await send(world, body="x" * 300, push_type=models.PushType.VOIP)
    await world.drain()
    assert (await view(world, nid)).delivered == 4
    stored = await world.stores.notifications.get(APP, nid)
    assert stored is not None
    fcm_sent, apns_sent = world.fcm.sent[0].rendered, world.apns.sent[0].rendered
    # Rendered once at Send and carried whole: the stored body, with the size and limit it was rendered with.
    assert fcm_sent.body == stored.rendered[FCM] and apns_sent.body == stored.rendered[APNS]
    assert fcm_sent.size_bytes == len(json.dumps(fcm_sent.body, separators=(",", ":"), ensure_ascii=False).encode())
    assert fcm_sent.limit_bytes == 4096
    assert apns_sent.size_bytes == len(apns_sent.body["payload"].encode()) > 300
    assert apns_sent.limit_bytes == 5120, "a VoIP push's limit"
    # One rendering per partition, shared by its deliveries.
    assert world.fcm.sent[0].rendered is world.fcm.sent[1].rendered
