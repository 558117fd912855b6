"""Receipt webhooks through real HTTPS: batches, signatures, retries, pauses, leases and restarts.

The store is the in-memory adapter; the receiver is a real HTTPS server
(`receiver.Receiver`) that checks each signature itself. Timings are scaled
down (backoff in tens of milliseconds) so that minutes of an endpoint's life
take a second or two; the 60-second outage is bench/webhooks.py's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pushsvc import models
from pushsvc.clock import SystemClock
from pushsvc.prometheus import PrometheusMetrics
from pushsvc.receipts import ReceiptSignal
from pushsvc.storage import NotificationDraft, ReceiptDraft, TargetQuery, WebhookCursor
from pushsvc.storage.memory import MemoryStores
from pushsvc.webhooks import signing
from pushsvc.webhooks.httpclient import TransportPoster
from pushsvc.webhooks.sender import Endpoint, WebhookSenders, batch_id, build_senders
from tests.webhooks.receiver import SECRET, Post, Receiver

APP = "shop"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path).start()
    try:
        yield r
    finally:
        r.stop()


class World:
    """A memory store with one notification, and senders to build against it."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.clock = SystemClock()
        self.stores = MemoryStores()
        self.signal = ReceiptSignal()
        self.metrics = PrometheusMetrics()
        self.appended = 0

    async def notification(self, nid: str = "n1") -> None:
        now = self.clock.now()
        await self.stores.notifications.create(
            NotificationDraft(nid, APP, models.NotificationState.RUNNING, now, 10**6, TargetQuery("all"), {}, now), []
        )

    async def receipts(self, n: int, nid: str = "n1") -> list[str]:
        """Appends `n` receipts (tokens t<k>) and wakes the readers; returns the tokens."""
        now = self.clock.now()
        tokens = [f"t{self.appended + i}" for i in range(n)]
        self.appended += n
        drafts = [ReceiptDraft(t, models.Platform.FCM, "u", models.DeliveryStatus.DELIVERED, "m", 200, "", 1, False, now) for t in tokens]
        await self.stores.receipts.append(APP, nid, drafts, now + timedelta(days=1))
        self.signal.notify()
        return tokens

    def senders(self, owner: str = "r1", **knobs: float) -> WebhookSenders:
        endpoint = Endpoint(
            app_id=APP, name="audit", url=self.receiver.url, key=signing.signing_key(SECRET.encode()),
            max_batch=int(knobs.get("max_batch", 50)), max_delay_s=knobs.get("max_delay_s", 0.05),
            initial_backoff_s=knobs.get("initial_backoff_s", 0.05), max_backoff_s=knobs.get("max_backoff_s", 0.2),
            pause_after_s=knobs.get("pause_after_s", 0.5),
        )
        poster = TransportPoster(timeout_s=5.0, clock=self.clock, ca_pem=self.receiver.ca_file.read_bytes())
        return build_senders(
            [(endpoint, poster)], cursors=self.stores.webhooks, receipts=self.stores.receipts, signal=self.signal,
            clock=self.clock, owner=owner, lease_s=knobs.get("lease_s", 3.0), poll_interval_s=0.02, gap_grace_s=0.5,
            log_interval_s=0.2, metrics=self.metrics,
        )

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, {"app": APP, "endpoint": "audit", **labels})
        return 0.0 if value is None else value


@pytest.fixture
async def world(receiver: Receiver) -> AsyncIterator[World]:
    w = World(receiver)
    await w.notification()
    yield w


async def until(predicate: object, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():  # type: ignore[operator]  # a callable, typed loosely for brevity
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def delivered_tokens(posts: list[Post]) -> list[str]:
    return [t for p in posts for t in p.tokens]


async def test_batches_carry_every_receipt_in_order_signed_and_at_most_max_batch(world: World) -> None:
    senders = world.senders(max_batch=40)
    senders.start()
    try:
        await asyncio.sleep(0.1)  # the cursor starts at the log's end: receipts from now on
        tokens = await world.receipts(100)
        tokens += await world.receipts(30)
        await until(lambda: len(delivered_tokens(world.receiver.accepted())) >= 130)
        # The receiver has a batch before the sender has its answer: counted once the answer is in.
        await until(lambda: world.sample("pushsvc_webhook_receipts_total") >= 130)
    finally:
        await senders.stop(1.0)
    posts = world.receiver.accepted()
    assert delivered_tokens(posts) == tokens, "every receipt once, in log order"
    assert all(p.signature_ok for p in world.receiver.all_posts()), "each POST verifies against the secret"
    assert max(len(p.tokens) for p in posts) == 40 and all(len(p.tokens) <= 40 for p in posts)
    assert len({p.message_id for p in posts}) == len(posts), "one id per batch"
    assert abs(posts[0].timestamp - time.time()) < 30
    first = posts[0].body
    assert first["type"] == "receipts.batch" and first["data"]["app_id"] == APP
    assert first["data"]["receipts"][0] == {
        "cursor": "1.1", "notification_id": "n1", "token": "t0", "platform": "fcm", "user_id": "u",
        "status": "delivered", "provider_message_id": "m", "provider_status": 200, "reason": "", "attempts": 1,
        "token_removed": False, "at": first["data"]["receipts"][0]["at"],
    }
    assert world.sample("pushsvc_webhook_receipts_total") == 130
    # The cursor in the store says all of it was acknowledged.
    assert await world.stores.webhooks.lease(APP, "audit", "r1", 0, world.clock.now(), 1) == WebhookCursor(seq=130)


async def test_a_partial_batch_goes_out_after_max_delay(world: World) -> None:
    senders = world.senders(max_batch=100, max_delay_s=0.3)
    senders.start()
    try:
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        await world.receipts(3)
        await until(lambda: world.receiver.accepted())
        waited = time.monotonic() - t0
    finally:
        await senders.stop(1.0)
    assert [p.tokens for p in world.receiver.accepted()] == [["t0", "t1", "t2"]]
    assert 0.25 <= waited < 5.0, waited


async def test_a_receiver_down_for_a_while_loses_nothing_is_not_hammered_and_is_paused_then_resumed(world: World) -> None:
    senders = world.senders(max_batch=25, initial_backoff_s=0.05, max_backoff_s=0.2, pause_after_s=0.5)
    senders.start()
    try:
        await asyncio.sleep(0.1)
        tokens = await world.receipts(60)
        await until(lambda: len(delivered_tokens(world.receiver.accepted())) >= 25)
        world.receiver.status = 503
        down_at = time.monotonic()
        tokens += await world.receipts(60)
        await asyncio.sleep(1.5)
        assert world.sample("pushsvc_webhook_paused") == 1, "failing past pause_after_s: paused"
        failed = [p for p in world.receiver.all_posts() if p.status == 503]
        # Backoff from 0.05 s doubling to 0.2 s, jittered down to half: at most ~1.5/0.1 + the ramp.
        assert 3 <= len(failed) <= 20, f"{len(failed)} attempts in 1.5 s"
        world.receiver.status = 200
        up_at = time.monotonic()
        tokens += await world.receipts(10)
        await until(lambda: len(set(delivered_tokens(world.receiver.accepted()))) >= 130)
        recovered_s = time.monotonic() - up_at
    finally:
        await senders.stop(1.0)
    accepted = world.receiver.accepted()
    got = delivered_tokens(accepted)
    assert set(got) == set(tokens) and len(got) == len(tokens), "nothing lost, nothing twice once acknowledged"
    assert got == tokens
    # Every failed attempt offered the batch that then succeeded: same id, same receipts.
    failed = [p for p in world.receiver.all_posts() if p.status == 503]
    assert len({p.message_id for p in failed}) == 1
    retried = next(p for p in accepted if p.message_id == failed[0].message_id)
    assert retried.tokens == failed[0].tokens and retried.at > down_at
    assert recovered_s < 2.0, "back within about one max_backoff_s"
    assert world.sample("pushsvc_webhook_paused") == 0
    assert world.sample("pushsvc_webhook_posts_total", result="http_5xx") == len(failed)


async def test_an_unreachable_endpoint_is_retried_with_backoff_stored_in_the_cursor(world: World, tmp_path: Path) -> None:
    world.receiver.stop()  # nothing listens there any more: connection refused
    senders = world.senders(initial_backoff_s=5.0, max_backoff_s=5.0)
    senders.start()
    try:
        await asyncio.sleep(0.1)
        await world.receipts(5)
        await until(lambda: world.sample("pushsvc_webhook_posts_total", result="connect") >= 1)
        await asyncio.sleep(0.1)
        attempts = world.sample("pushsvc_webhook_posts_total", result="connect")
    finally:
        await senders.stop(1.0)
    assert attempts == 1, "no hot loop: the next attempt waits its backoff"
    cursor = await world.stores.webhooks.lease(APP, "audit", "r1", 0, world.clock.now(), 1)
    assert cursor is not None and cursor.seq == 0 and cursor.batch_end == 5 and cursor.failures == 1
    assert cursor.retry_at is not None and cursor.retry_at > world.clock.now()
    await world.stores.webhooks.release(APP, "audit", "r1")
    # Another replica taking over (or this one restarted) honours the stored backoff, and reports the
    # endpoint paused at once when it has failed for long enough, before any attempt of its own.
    again = world.senders(owner="r2", initial_backoff_s=5.0, max_backoff_s=5.0, pause_after_s=0.05)
    again.start()
    try:
        await until(lambda: world.sample("pushsvc_webhook_paused") == 1, within_s=3.0)
        await asyncio.sleep(0.2)
    finally:
        await again.stop(1.0)
    assert world.sample("pushsvc_webhook_posts_total", result="connect") == 1


async def test_only_the_lease_holder_sends_and_a_restart_resumes_from_the_cursor(world: World) -> None:
    # A lease far longer than the test, so that r2 cannot take over by expiry even when the machine stalls
    # (a 3 s lease expired in a slow CI run); r1's restart takes it back at once, whatever its length.
    a, b = world.senders(owner="r1", lease_s=60.0), world.senders(owner="r2", lease_s=60.0)
    restarted: WebhookSenders | None = None
    a.start()
    await asyncio.sleep(0.1)
    b.start()
    try:
        tokens = await world.receipts(70)
        await until(lambda: len(delivered_tokens(world.receiver.accepted())) >= 70)
        assert a.senders[0].leased and not b.senders[0].leased
        # r1 dies without giving its lease back (a task cancelled, no release): nobody sends until it expires...
        for task in a._tasks:
            task.cancel()
        tokens += await world.receipts(30)
        await asyncio.sleep(0.5)
        assert len(delivered_tokens(world.receiver.accepted())) == 70
        # ... unless r1 restarts: the same owner takes its endpoint back at once, from the stored cursor.
        restarted = world.senders(owner="r1", lease_s=60.0)
        restarted.start()
        await until(lambda: len(delivered_tokens(world.receiver.accepted())) >= 100, within_s=2.0)
    finally:
        await a.stop(1.0)
        await b.stop(1.0)
        if restarted is not None:
            await restarted.stop(1.0)
    assert delivered_tokens(world.receiver.accepted()) == tokens
    # Given back on stop, the lease passes at once: r2 can take it now.
    assert await world.stores.webhooks.lease(APP, "audit", "r2", 0, world.clock.now(), 1) is not None


async def test_a_batch_cut_short_is_offered_again_whole_under_its_id(world: World) -> None:
    first = world.senders(max_batch=20)
    first.start()
    await asyncio.sleep(0.1)
    world.receiver.status = 500
    tokens = await world.receipts(20)
    await until(lambda: world.receiver.all_posts())
    await first.stop(1.0)  # stopped while the batch is unacknowledged
    offered = world.receiver.all_posts()[0]
    tokens += await world.receipts(20)  # more arrive meanwhile: they must not join the stored batch
    world.receiver.status = 200
    second = world.senders(max_batch=20, owner="r2")
    second.start()
    try:
        await until(lambda: len(delivered_tokens(world.receiver.accepted())) >= 40)
    finally:
        await second.stop(1.0)
    accepted = world.receiver.accepted()
    assert accepted[0].message_id == offered.message_id == batch_id(APP, "audit", 0, 20)
    assert accepted[0].tokens == offered.tokens
    assert delivered_tokens(accepted) == tokens
    assert Counter(p.message_id for p in accepted).most_common(1)[0][1] == 1
