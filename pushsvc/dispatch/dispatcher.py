"""Dispatcher: runs leased partitions: claims, renews, reads batches, records them, checkpoints, drains.

Every replica runs one. Delivering one batch (providers, retries, expiry) is
`dispatch.delivery.BatchDelivery`'s. The invariants the two keep:

- A partition is worked on only under a lease, renewed while we work. A lease
  we lose (renewal or checkpoint says so) makes us stop after the batch in
  flight, so duplicates after a takeover are bounded by one batch.
- Targets are read batch by batch from one cursor per partition: memory is
  bounded by `batch_size` x (`workers` + `express_workers`), whatever the
  fan-out size.
- Transactional sends never wait behind a campaign: priority lanes plus
  reserved workers. Send puts a notification's partitions in the express
  lane when it is high priority and targets at most `express_max_targets`
  (`planning.lane_of`), in the bulk lane otherwise; the size limit is what
  keeps a fan-out out of the express lane, whatever its priority. Every
  worker claims express partitions first. On top of the `workers` that then
  claim bulk ones, each replica runs `express_workers` that claim only
  express ones, so however many bulk partitions a campaign has, every
  replica has a worker free for the next express send: it holds on one
  replica as on many, with no coordination between them. (Interleaving the
  queue instead would still leave a send waiting for a worker to finish a
  bulk batch.)
- Each batch costs three store calls: its targets, its receipts, and one
  commit of the checkpoint with the counters; from the second batch on, a
  key read of the notification too, to stop at once when it was cancelled.
  The receipts are written before
  the commit; a crash in between resends that batch, the receipt log's
  uniqueness keeps one receipt per token all the same, and the counters are
  reconciled with the log when the notification completes.
- Concurrent requests per provider are bounded by a count taken per batch
  sent (`delivery.InFlightBudget`, `max_in_flight_per_provider`); an express
  batch takes its places at once instead of queueing behind bulk batches, so
  the bound is exceeded by at most the express batches in flight.
- A batch's retries are regrouped: those falling due together are resent as
  one smaller batch, and the batch's receipts are written after its last
  retry (or expiry, or condemnation).
- Credential rejection fails the whole notification at once, and still every
  target ends with one receipt: the rejection condemns the notification in the
  store (`fail`), sending stops, and each partition's lease holder gives its
  remaining targets a FAILED receipt (reason "NotificationFailed") from its
  checkpoint, the same way it would have sent them. A crash or a takeover
  resumes that sweep from the checkpoint; the last partition settles the
  notification FAILED with counters that add up.
- Cancellation takes the same path: `cancel` in the store marks the
  notification; the record read at the start, or the read of it before each
  later batch, notices, so no new batch is sent after the ones in flight; the
  remaining targets get a CANCELLED receipt (reason "NotificationCancelled")
  instead of a FAILED one, and the last partition settles it CANCELLED.
- A throttled notification (`max_per_second` > 0) has one send budget shared
  by every worker of every replica, kept in the store: before sending a batch
  its worker books the batch's sends (`NotificationStore.reserve`, one atomic
  step on the notification's next free instant) and waits until the start it
  was given. Bookings never overlap, so the rate holds for any replica count
  and any progress of the partitions, with nothing to rebalance (shares per
  partition would have to be handed on as partitions finish, and a replica
  that died with a share would hold it until its lease ran out). Its batches
  are small, `max_per_second / 5` targets (at least 1, at most
  `batch_size`): a batch is 200 ms of the budget, so a 10 s window holds
  its count within 2% whatever batch it cuts, and each of the workers on
  the notification has 200 ms per booked batch for its store calls (a
  loaded machine missed the rate with 100 ms). A booking may start one
  batch in the past (GCRA's tolerance): a worker that comes back late takes
  back that much of the time it missed, so a busy machine does not fall
  short of the rate, and a window gets at most one batch more (4% in all).
  A waiting worker holds one partition and its lease (the renewer keeps
  renewing it); it waits for at most the batches booked before its own, one
  per worker on the notification, and a cancel or a lost lease ends the wait
  at once. It is one of the replica's workers; the others claim other
  notifications' partitions, and a throttled notification never goes in the
  express lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from pushsvc import errors, logs, models
from pushsvc.channels import registry
from pushsvc.clock import Clock
from pushsvc.config import DispatchSettings
from pushsvc.dispatch.delivery import BatchDelivery, Condemnation
from pushsvc.dispatch.retry import RetryPolicy
from pushsvc.dispatch.variants import Variants
from pushsvc.metrics import NULL_METRICS, Metrics
from pushsvc.providers.base import Provider, RenderedMessage
from pushsvc.receipts import ReceiptSignal
from pushsvc.storage import (
    Lane,
    NotificationRecord,
    NotificationStore,
    Partition,
    ReceiptStore,
    TargetToken,
    TokenStore,
    booked,
)
from pushsvc.throttle import LogThrottle
from pushsvc.tracing import NULL_TRACER, Tracer

log = logging.getLogger("pushsvc.dispatch")

class _LeaseLost(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class DispatcherDrain:
    """What stopping the dispatcher did, for the drain's log lines."""

    partitions_in_flight: int
    """Partitions being worked on when the drain began."""
    batches_cancelled: int
    """Workers still in a batch when their share of the grace ran out."""
    released: int | None
    """Leases given back (at a checkpoint, or all at the end); None when the store did not answer in time."""


_RELEASE_RESERVE_S = 1.0
"""The part of the drain's grace kept for giving leases back after the batches in flight."""


_RELEASE_MIN_S = 0.1
"""What giving the leases back gets even when the grace has run out."""


_THROTTLED_BATCHES_PER_S = 5
"""A throttled notification's batches per second (at most): its batch is 200 ms of its rate."""


class _Draining(Exception):
    """The replica drains: the partition stops at a checkpoint and is given back."""


class Dispatcher:
    """Runs `settings.workers` partition workers, and `settings.express_workers` express-only ones, until stopped."""

    def __init__(
        self,
        *,
        tokens: TokenStore,
        notifications: NotificationStore,
        receipts: ReceiptStore,
        providers: Mapping[tuple[str, models.Platform], Provider],
        clock: Clock,
        settings: DispatchSettings,
        signal: ReceiptSignal,
        owner: str | None = None,
        replica_id: str = "",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        metrics: Metrics = NULL_METRICS,
        tracer: Tracer = NULL_TRACER,
        restore_rendering: Callable[[models.Platform, Mapping[str, Any]], RenderedMessage] = registry.restore_rendering,
    ) -> None:
        self._tokens = tokens
        self._notifications = notifications
        self._receipts = receipts
        self._providers = providers
        self._clock = clock
        # Provider trouble is logged rate-limited, and never with a token: a
        # provider in trouble answers every request the same way.
        self._faults = LogThrottle(log, clock, interval_s=settings.fault_log_interval_s)
        self._store_down = False
        """Whether a worker has said the store is unavailable and none has worked since (one line per outage)."""
        self._settings = settings
        self._signal = signal
        # An owner is `<replica>/<incarnation>`: leases name the incarnation, so a
        # restarted replica can tell its dead predecessor's leases from live ones.
        self.replica_id = replica_id or f"dispatcher-{uuid.uuid4().hex[:12]}"
        self.owner = owner or f"{self.replica_id}/{uuid.uuid4().hex[:12]}"
        self._delivery = BatchDelivery(
            tokens=tokens,
            providers=providers,
            clock=clock,
            retry=RetryPolicy(
                max_attempts=settings.max_attempts,
                initial_backoff_s=settings.initial_backoff_s,
                max_backoff_s=settings.max_backoff_s,
            ),
            max_in_flight=settings.max_in_flight_per_provider,
            metrics=metrics,
            faults=self._faults,
            sleep=sleep,
            rand=rand,
        )
        self._tracer = tracer
        self._sleep = sleep
        # Send stores each platform's rendered body; its channel makes the message whole again.
        self._restore_rendering = restore_rendering
        self._wake = asyncio.Event()
        # Idle workers poll together; one claim at a time per replica is enough,
        # and it spares the store a burst of racing claims.
        self._claiming = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._working = 0
        """Partitions this replica works on now."""
        self._released_at_checkpoint = 0

    async def reclaim(self) -> int:
        """Frees the leases an earlier incarnation of this replica held when it died.

        Called once before `start()`: those partitions resume now instead of
        when their leases expire. A store that cannot be reached leaves them to
        expire. Returns how many were freed.
        """
        try:
            freed = await self._notifications.release_replica(self.replica_id, self.owner, self._clock.now())
        except errors.StoreUnavailable as exc:
            log.warning("could not reclaim the leases of replica %s; they expire in %.0f s: %s",
                        self.replica_id, self._settings.lease_s, exc)
            return 0
        if freed:
            log.info("replica %s restarted: resuming %d partition(s) its earlier run held", self.replica_id, freed)
        return freed

    def start(self) -> None:
        """Starts the workers; they run until `stop()`."""
        self._stopping = False
        workers = self._settings.workers
        # An API-only replica (no workers) sends nothing, express included.
        express = self._settings.express_workers if workers else 0
        self._tasks = [asyncio.create_task(self._worker(i), name=f"{self.owner}-{i}") for i in range(workers)]
        self._tasks += [
            asyncio.create_task(self._worker(workers + i, Lane.EXPRESS), name=f"{self.owner}-express-{i}")
            for i in range(express)
        ]

    @property
    def working(self) -> int:
        """Partitions this replica is sending now."""
        return self._working

    def wake(self) -> None:
        """Makes idle workers look for work now instead of at the next poll."""
        self._wake.set()

    def drain(self) -> None:
        """Claims no new partition from now on; a partition in flight stops after its current batch is checkpointed."""
        self._stopping = True
        self._wake.set()

    async def stop(self, *, release_leases: bool = True, grace_s: float = 0.0) -> DispatcherDrain:
        """Stops the workers, then gives back our leases so another replica resumes at once; within `grace_s`.

        Batches in flight get most of `grace_s` to finish and be checkpointed
        (see `drain`); then the workers are cancelled. Giving back the leases
        gets the rest: a store that does not answer by then leaves them to
        expire, and the drain goes on. `release_leases=False` leaves the
        leases to expire, as a crash would.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        in_flight = self._working
        self.drain()
        cancelled = self._working
        if self._tasks and grace_s > 0:
            # The release is one store call: a short reserve is plenty when the store answers.
            reserve_s = min(_RELEASE_RESERVE_S, grace_s / 4) if release_leases else 0.0
            _, running = await asyncio.wait(self._tasks, timeout=max(0.0, grace_s - reserve_s))
            # Workers still running are in a batch, or waiting on the store for a claim.
            cancelled = self._working
            if cancelled:
                log.warning(
                    "drain grace ran out with %d batch(es) in flight; cancelled, they resume elsewhere from the last checkpoint",
                    cancelled,
                )
        for task in self._tasks:
            task.cancel()
        # A worker stuck in a store call ends when cancelled; awaiting it is quick.
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        released: int | None = None
        if release_leases:
            try:
                # At least a moment even when the grace is spent (grace 0: stop now, but do hand back).
                async with asyncio.timeout(max(_RELEASE_MIN_S, deadline - loop.time())):
                    released = self._released_at_checkpoint + await self._notifications.release_all(self.owner, self._clock.now())
            except (TimeoutError, errors.StoreUnavailable) as exc:
                log.warning(
                    "could not give back the leases of %s (%s); they expire in %.0f s",
                    self.owner, "store did not answer within the grace" if isinstance(exc, TimeoutError) else exc,
                    self._settings.lease_s,
                )
        return DispatcherDrain(in_flight, cancelled, released)

    async def _worker(self, index: int, lane: Lane | None = None) -> None:
        backoff_s = self._settings.poll_interval_s
        while not self._stopping:
            try:
                worked = await self.run_once(lane)
                backoff_s = self._settings.poll_interval_s
                if self._store_down:
                    self._store_down = False
                    log.info("store reachable again, dispatcher %s resumes", self.owner)
            except errors.StoreUnavailable as exc:
                # Every worker meets the same outage, at every retry: the first says so, once.
                if not self._store_down:
                    self._store_down = True
                    log.warning("store unavailable, dispatcher %s waits: %s", self.owner, exc)
                worked = False
                backoff_s = min(backoff_s * 2, self._settings.store_backoff_max_s)
            except Exception:
                log.exception("dispatcher %s worker %d failed; continuing", self.owner, index)
                worked = False
            if not worked and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff_s)

    async def run_once(self, lane: Lane | None = None) -> bool:
        """Claims and works one partition of `lane` (None: express first, then bulk); False when nothing was runnable."""
        async with self._claiming:
            part = await self._notifications.claim(self.owner, self._clock.now(), self._settings.lease_s, lane)
        if part is None:
            return False
        self._working += 1
        try:
            with logs.bound_notification(part.notification_id):
                await self._run_partition(part)
        except _LeaseLost:
            log.warning("lost the lease on %s; another replica resumes it", part.partition_id)
        except _Draining:
            # Checkpointed: another replica resumes it now, not after the lease.
            with contextlib.suppress(errors.StoreUnavailable):
                await self._notifications.release(part.partition_id, self.owner, self._clock.now())
                self._released_at_checkpoint += 1
        except (asyncio.CancelledError, errors.StoreUnavailable):
            raise
        except Exception:
            # Give the partition back a little later rather than hot-looping on it.
            retry_at = self._clock.now() + timedelta(seconds=self._settings.failed_partition_retry_s)
            await self._notifications.release(part.partition_id, self.owner, retry_at)
            raise
        finally:
            self._working -= 1
        return True

    async def _run_partition(self, part: Partition) -> None:
        now = self._clock.now()
        record = await self._notifications.get(part.app_id, part.notification_id)
        if record is None:
            if now - part.created_at > timedelta(seconds=self._settings.orphan_after_s):
                await self._notifications.drop_partition(part.partition_id)
            else:
                # The Send that wrote it may still be storing the notification.
                retry_at = now + timedelta(seconds=self._settings.unstored_partition_retry_s)
                await self._notifications.release(part.partition_id, self.owner, retry_at)
            return
        if record.view.state.finished:
            await self._notifications.finish_partition(part.partition_id, self.owner, now)
            return
        await self._notifications.mark_running(part.notification_id, now)
        # Rendered once at Send; restored whole (sizes included) once per partition, localized variants too.
        rendered = {p: self._restore_rendering(p, body) for p, body in record.rendered.items()}
        variants = Variants(rendered, record.localized, self._restore_rendering)
        lost = asyncio.Event()
        condemned = Condemnation(record.view)
        renewer = asyncio.create_task(self._renew(part, lost, condemned))
        try:
            await self._fan_out(part, record, variants, lost, condemned)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew(self, part: Partition, lost: asyncio.Event, condemned: Condemnation) -> None:
        while True:
            await asyncio.sleep(self._settings.lease_s / 3)
            try:
                if not await self._notifications.renew(part.partition_id, self.owner, self._clock.now(), self._settings.lease_s):
                    lost.set()
                    return
                if not condemned.error:
                    # Another replica's partition may have condemned the
                    # notification, or a caller cancelled it: this one stops
                    # sending within a renewal.
                    record = await self._notifications.get(part.app_id, part.notification_id)
                    if record is not None:
                        condemned.adopt(record.view)
            except errors.StoreUnavailable:
                continue

    async def _fan_out(
        self,
        part: Partition,
        record: NotificationRecord,
        variants: Variants,
        lost: asyncio.Event,
        condemned: Condemnation,
    ) -> None:
        retention = timedelta(days=self._settings.receipt_retention_days)
        # One span per batch (pushsvc.tracing): open while this loop's body sends, writes and checkpoints it.
        traced = self._tracer.batches(part.app_id, part.notification_id, self._batches(part, record), link=record.traceparent)
        first = True
        async with contextlib.aclosing(traced) as batches:
            async for batch, next_checkpoint in batches:
                if lost.is_set():
                    raise _LeaseLost()
                if self._stopping:
                    raise _Draining()
                if not first and not condemned.error:
                    # A cancel stops the fan-out before its next batch on every
                    # replica, not at the next renewal: one key read per batch.
                    fresh_record = await self._notifications.get(part.app_id, part.notification_id)
                    if fresh_record is not None:
                        condemned.adopt(fresh_record.view)
                first = False
                rate = record.view.max_per_second
                if rate and not condemned.error:
                    await self._take_turn(part, len(batch), rate, lost, condemned)
                was_condemned = bool(condemned.error)
                if was_condemned:
                    drafts = [self._delivery.unsent(part.app_id, t, condemned) for t in batch]
                else:
                    drafts = await self._delivery.deliver(
                        part.app_id, record, variants, batch, condemned, express=part.lane is Lane.EXPRESS
                    )
                now = self._clock.now()
                written = await self._receipts.append(part.app_id, part.notification_id, drafts, now + retention)
                counts = Counter(receipt.status for receipt in written)
                if condemned.error and not was_condemned and not condemned.cancelled:
                    # After this batch's receipts, before its checkpoint: a crash
                    # in between resends the batch, which condemns it again.
                    await self._notifications.fail(part.notification_id, condemned.error, now)
                committed = await self._notifications.commit_batch(
                    part.partition_id, self.owner, next_checkpoint, counts, now, self._settings.lease_s
                )
                self._signal.notify()
                if not committed:
                    fresh = await self._notifications.get(part.app_id, part.notification_id)
                    if fresh is None or fresh.view.state.finished:
                        return  # failed or cancelled elsewhere: its partitions are retired
                    raise _LeaseLost()
        finished = await self._notifications.finish_partition(part.partition_id, self.owner, self._clock.now())
        self._signal.notify()
        if finished is not None and finished.state is models.NotificationState.COMPLETED:
            _log_summary(finished)

    async def _take_turn(
        self, part: Partition, count: int, rate: int, lost: asyncio.Event, condemned: Condemnation
    ) -> None:
        """Books `count` sends of a throttled notification's shared budget and waits for their start.

        The wait ends early when the notification is condemned or cancelled
        (its targets then get their receipts unsent) or the lease is lost
        (raises `_LeaseLost`: the booking is forfeited, nothing is sent). A
        drain does not end it: the batch counts as in flight once booked.
        """
        # GCRA's tolerance of one batch: a booking that comes late (a slow store
        # call, a busy machine) may take back that much of the time it missed,
        # and no more, so a window gets at most one batch more than its share.
        length = booked(count, rate)
        start = await self._notifications.reserve(part.notification_id, count, rate, self._clock.now() - length)
        delay_s = (start - self._clock.now()).total_seconds()
        if delay_s > 0:
            sleeper = asyncio.ensure_future(self._sleep(delay_s))
            waiters = [asyncio.ensure_future(condemned.event.wait()), asyncio.ensure_future(lost.wait())]
            try:
                await asyncio.wait((sleeper, *waiters), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, *waiters):
                    task.cancel()
        if lost.is_set():
            raise _LeaseLost()

    def _batch_size(self, record: NotificationRecord) -> int:
        """Targets per batch: `batch_size`, or 200 ms of a throttled notification's budget (see the module docstring)."""
        rate = record.view.max_per_second
        if not rate:
            return self._settings.batch_size
        return max(1, min(self._settings.batch_size, rate // _THROTTLED_BATCHES_PER_S))

    async def _batches(self, part: Partition, record: NotificationRecord) -> AsyncGenerator[tuple[list[TargetToken], Any], None]:
        """The partition's targets, batch by batch, each with the checkpoint that follows it."""
        size = self._batch_size(record)
        if record.query is not None:
            query = record.query
            if part.timezones is not None:
                # A local-time send: this partition's due group of zones only.
                query = dataclasses.replace(query, timezones=part.timezones)
            async with contextlib.aclosing(
                self._tokens.scan_targets(part.app_id, query, part.buckets, part.checkpoint, size)
            ) as pages:
                async for page in pages:
                    yield page, page[-1].ref
            return
        offset = int(part.checkpoint or 0)
        while offset < len(part.devices):
            devices = part.devices[offset : offset + size]
            registered = await self._tokens.lookup(part.app_id, devices)
            offset += len(devices)
            yield [registered.get((d.platform, d.token)) or _unregistered(d) for d in devices], offset


def _unregistered(d: models.Device) -> TargetToken:
    return TargetToken(
        ref=None,
        token=d.token,
        platform=d.platform,
        user_id="",
        apns_environment=d.apns_environment,
        registered=False,
        last_seen_at=None,
    )


def _log_summary(view: models.NotificationView) -> None:
    # One line per notification that finished with failures; a clean one stays quiet.
    if not (view.failed or view.invalid_tokens or view.expired):
        return
    log.warning(
        "notification %s of app %s finished with failures: %d delivered, %d failed, %d invalid tokens, %d expired",
        view.notification_id, view.app_id, view.delivered, view.failed, view.invalid_tokens, view.expired,
        extra=logs.fields(app=view.app_id),
    )
