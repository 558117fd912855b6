"""Dispatcher: claims partitions, fans out in batches, classifies, records.

Every replica runs one. The invariants it keeps:

- A partition is worked on only under a lease, renewed while we work. A lease
  we lose (renewal or checkpoint says so) makes us stop after the batch in
  flight, so duplicates after a takeover are bounded by one batch.
- Targets are read batch by batch from one cursor per partition: memory is
  bounded by `batch_size` x `workers`, whatever the fan-out size.
- Each batch costs three store calls: its targets, its receipts, and one
  commit of the checkpoint with the counters. The receipts are written before
  the commit; a crash in between resends that batch, the receipt log's
  uniqueness keeps one receipt per token all the same, and the counters are
  reconciled with the log when the notification completes.
- Concurrent requests per provider are bounded by a semaphore.
- Credential rejection fails the whole notification at once, and still every
  target ends with one receipt: the rejection condemns the notification in the
  store (`fail`), sending stops, and each partition's lease holder gives its
  remaining targets a FAILED receipt (reason "NotificationFailed") from its
  checkpoint, the same way it would have sent them. A crash or a takeover
  resumes that sweep from the checkpoint; the last partition settles the
  notification FAILED with counters that add up.
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
from pushsvc.clock import Clock
from pushsvc.config import DispatchSettings
from pushsvc.dispatch.retry import RetryPolicy
from pushsvc.metrics import NULL_METRICS, Metrics, ProviderMetrics
from pushsvc.providers.base import Delivery, Outcome, Provider, ProviderResult, RenderedMessage
from pushsvc.receipts import ReceiptSignal
from pushsvc.storage import (
    NotificationRecord,
    NotificationStore,
    Partition,
    ReceiptDraft,
    ReceiptStore,
    TargetToken,
    TokenStore,
)
from pushsvc.throttle import LogThrottle
from pushsvc.tracing import NULL_TRACER, Tracer

log = logging.getLogger("pushsvc.dispatch")

_OUTCOME_STATUS = {
    Outcome.DELIVERED: models.DeliveryStatus.DELIVERED,
    Outcome.TOKEN_INVALID: models.DeliveryStatus.TOKEN_INVALID,
    Outcome.PERMANENT: models.DeliveryStatus.FAILED,
    Outcome.CREDENTIALS_REJECTED: models.DeliveryStatus.FAILED,
    Outcome.RETRYABLE: models.DeliveryStatus.FAILED,
}


NOTIFICATION_FAILED = "NotificationFailed"
"""The reason of a receipt for a target that was not sent because its notification failed as a whole."""


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


class _Condemnation:
    """Why a partition's notification failed as a whole, once anything says so.

    Set by a credential rejection in our own batch, by the notification we read
    at the start, or by the renewer when another replica condemned it.
    Deliveries waiting out a retry backoff wake at once: their token gets its
    receipt now instead of a retry that would only be thrown away.
    """

    def __init__(self, error: str = "") -> None:
        self.error = ""
        self.event = asyncio.Event()
        if error:
            self.condemn(error)

    def condemn(self, error: str) -> None:
        if not self.error:
            self.error = error
            self.event.set()


_RELEASE_RESERVE_S = 1.0
"""The part of the drain's grace kept for giving leases back after the batches in flight."""


_RELEASE_MIN_S = 0.1
"""What giving the leases back gets even when the grace has run out."""


class _Draining(Exception):
    """The replica drains: the partition stops at a checkpoint and is given back."""


class Dispatcher:
    """Runs `settings.workers` partition workers until stopped."""

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
        self._sleep = sleep
        self._rand = rand
        self._retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            initial_backoff_s=settings.initial_backoff_s,
            max_backoff_s=settings.max_backoff_s,
        )
        self._limits = {key: asyncio.Semaphore(settings.max_in_flight_per_provider) for key in providers}
        self._metrics = metrics
        self._tracer = tracer
        # Bound once per provider: the per-delivery cost is a few dict lookups.
        self._counters: dict[tuple[str, models.Platform], ProviderMetrics] = {
            (app_id, platform): metrics.provider(app_id, platform.value) for app_id, platform in providers
        }
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
        self._tasks = [asyncio.create_task(self._worker(i), name=f"{self.owner}-{i}") for i in range(self._settings.workers)]

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

    async def _worker(self, index: int) -> None:
        backoff_s = self._settings.poll_interval_s
        while not self._stopping:
            try:
                worked = await self.run_once()
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

    async def run_once(self) -> bool:
        """Claims and works one partition; False when nothing was runnable."""
        async with self._claiming:
            part = await self._notifications.claim(self.owner, self._clock.now(), self._settings.lease_s)
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
        rendered = {p: RenderedMessage(p, body, 0, 0) for p, body in record.rendered.items()}
        lost = asyncio.Event()
        condemned = _Condemnation(record.view.error)
        renewer = asyncio.create_task(self._renew(part, lost, condemned))
        try:
            await self._fan_out(part, record, rendered, lost, condemned)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew(self, part: Partition, lost: asyncio.Event, condemned: _Condemnation) -> None:
        while True:
            await asyncio.sleep(self._settings.lease_s / 3)
            try:
                if not await self._notifications.renew(part.partition_id, self.owner, self._clock.now(), self._settings.lease_s):
                    lost.set()
                    return
                if not condemned.error:
                    # Another replica's partition may have condemned the
                    # notification: this one stops sending within a renewal.
                    record = await self._notifications.get(part.app_id, part.notification_id)
                    if record is not None and record.view.error:
                        condemned.condemn(record.view.error)
            except errors.StoreUnavailable:
                continue

    async def _fan_out(
        self,
        part: Partition,
        record: NotificationRecord,
        rendered: Mapping[models.Platform, RenderedMessage],
        lost: asyncio.Event,
        condemned: _Condemnation,
    ) -> None:
        retention = timedelta(days=self._settings.receipt_retention_days)
        # One span per batch (pushsvc.tracing): open while this loop's body sends, writes and checkpoints it.
        traced = self._tracer.batches(part.app_id, part.notification_id, self._batches(part, record))
        async with contextlib.aclosing(traced) as batches:
            async for batch, next_checkpoint in batches:
                if lost.is_set():
                    raise _LeaseLost()
                if self._stopping:
                    raise _Draining()
                was_condemned = bool(condemned.error)
                if was_condemned:
                    drafts = [self._unsent(part.app_id, t) for t in batch]
                else:
                    drafts = await asyncio.gather(
                        *(self._deliver(part.app_id, record, rendered, t, condemned) for t in batch)
                    )
                now = self._clock.now()
                written = await self._receipts.append(part.app_id, part.notification_id, drafts, now + retention)
                counts = Counter(receipt.status for receipt in written)
                if condemned.error and not was_condemned:
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

    async def _batches(self, part: Partition, record: NotificationRecord) -> AsyncGenerator[tuple[list[TargetToken], Any], None]:
        """The partition's targets, batch by batch, each with the checkpoint that follows it."""
        size = self._settings.batch_size
        if record.query is not None:
            async with contextlib.aclosing(
                self._tokens.scan_targets(part.app_id, record.query, part.buckets, part.checkpoint, size)
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

    def _counters_of(self, app_id: str, platform: models.Platform) -> ProviderMetrics:
        counters = self._counters.get((app_id, platform))
        if counters is None:  # an app without credentials for this platform
            counters = self._counters[(app_id, platform)] = self._metrics.provider(app_id, platform.value)
        return counters

    async def _deliver(
        self,
        app_id: str,
        record: NotificationRecord,
        rendered: Mapping[models.Platform, RenderedMessage],
        target: TargetToken,
        condemned: _Condemnation,
    ) -> ReceiptDraft:
        counters = self._counters_of(app_id, target.platform)
        draft = await self._attempt(app_id, record, rendered, target, condemned, counters)
        counters.delivered(draft.status.name, draft.reason)
        return draft

    async def _attempt(
        self,
        app_id: str,
        record: NotificationRecord,
        rendered: Mapping[models.Platform, RenderedMessage],
        target: TargetToken,
        condemned: _Condemnation,
        counters: ProviderMetrics,
    ) -> ReceiptDraft:
        provider = self._providers.get((app_id, target.platform))
        message = rendered.get(target.platform)
        if provider is None or message is None:
            return self._draft(target, models.DeliveryStatus.FAILED, ProviderResult(Outcome.PERMANENT, reason="NoCredentials"), 0)
        delivery = Delivery(
            token=target.token, rendered=message, apns_environment=target.apns_environment, expires_at=record.expires_at
        )
        attempts = 0
        # Once a send may have been accepted without our hearing of it, a
        # later 429/5xx cannot make the push FAILED: the token is retried
        # until an answer settles it, within a wider bound (see RetryPolicy).
        maybe_accepted = False
        result = ProviderResult(Outcome.RETRYABLE, reason="NotAttempted")
        while True:
            if condemned.error:
                return self._draft(target, models.DeliveryStatus.FAILED, _notification_failed(result), attempts)
            if record.expires_at is not None and self._clock.now() >= record.expires_at:
                return self._draft(target, models.DeliveryStatus.EXPIRED, _expired(result), attempts)
            attempts += 1
            async with self._limits[(app_id, target.platform)]:
                counters.request_started()
                started = self._clock.monotonic()
                try:
                    result = await provider.send(delivery)
                except BaseException:
                    counters.request_finished("error", self._clock.monotonic() - started)
                    raise
                counters.request_finished(result.outcome.value, self._clock.monotonic() - started)
            maybe_accepted = maybe_accepted or result.outcome_unknown
            if result.outcome is Outcome.RETRYABLE and attempts < self._retry.attempts_allowed(maybe_accepted):
                counters.retried(result.reason)
                delay = self._retry.delay_s(attempts, result.retry_after_s, self._rand)
                self._faults.warning(
                    f"retry {app_id} {target.platform.value}",
                    "%s answered %s %s for app %s; retrying (attempt %d, in %.1f s)",
                    target.platform.name, result.provider_status or "-", result.reason, app_id, attempts, delay,
                    extra=logs.fields(app=app_id, platform=target.platform.value),
                )
                if record.expires_at is not None and self._clock.now() + timedelta(seconds=delay) >= record.expires_at:
                    return self._draft(target, models.DeliveryStatus.EXPIRED, _expired(result), attempts)
                await self._backoff(delay, condemned)
                continue
            break
        removed = False
        if result.outcome is Outcome.TOKEN_INVALID and target.registered:
            removed = await self._tokens.delete_invalid(app_id, target.platform, target.token, result.invalid_since)
        if result.outcome is Outcome.TOKEN_INVALID and log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s token %s of app %s is invalid (%s %s); %s",
                target.platform.name, logs.redact_token(target.token), app_id, result.provider_status, result.reason,
                "removed" if removed else "kept",
            )
        if result.outcome in (Outcome.PERMANENT, Outcome.RETRYABLE):
            self._faults.warning(
                f"failed {app_id} {target.platform.value}",
                "%s delivery failed for app %s after %d attempt(s): %s %s",
                target.platform.name, app_id, attempts, result.provider_status or "-", result.reason,
                extra=logs.fields(app=app_id, platform=target.platform.value),
            )
        if result.outcome is Outcome.CREDENTIALS_REJECTED:
            self._faults.log(
                logging.ERROR, f"credentials {app_id} {target.platform.value}",
                "%s rejected the credentials of app %s: %s %s; the notification fails",
                target.platform.name, app_id, result.provider_status, result.reason,
                extra=logs.fields(app=app_id, platform=target.platform.value),
            )
            condemned.condemn(
                f"{target.platform.name} rejected the app's credentials ({result.provider_status} {result.reason})"
            )
        return self._draft(target, _OUTCOME_STATUS[result.outcome], result, attempts, removed)

    def _unsent(self, app_id: str, target: TargetToken) -> ReceiptDraft:
        """The receipt of a target that is not sent because its notification failed as a whole."""
        self._counters_of(app_id, target.platform).delivered(models.DeliveryStatus.FAILED.name, NOTIFICATION_FAILED)
        return self._draft(target, models.DeliveryStatus.FAILED, _notification_failed(None), 0)

    async def _backoff(self, delay_s: float, condemned: _Condemnation) -> None:
        """Sleeps `delay_s`, or less when the notification is condemned meanwhile."""
        if condemned.error:
            return
        sleeper = asyncio.ensure_future(self._sleep(delay_s))
        waiter = asyncio.ensure_future(condemned.event.wait())
        try:
            await asyncio.wait((sleeper, waiter), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()

    def _draft(
        self,
        target: TargetToken,
        status: models.DeliveryStatus,
        result: ProviderResult,
        attempts: int,
        removed: bool = False,
    ) -> ReceiptDraft:
        return ReceiptDraft(
            token=target.token,
            platform=target.platform,
            user_id=target.user_id,
            status=status,
            provider_message_id=result.provider_message_id,
            provider_status=result.provider_status,
            reason=result.reason,
            attempts=attempts,
            token_removed=removed,
            at=self._clock.now(),
        )


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


def _expired(last: ProviderResult) -> ProviderResult:
    # Keep what the provider last said, if anything; the reason says why we stopped.
    return ProviderResult(
        Outcome.PERMANENT,
        provider_status=last.provider_status if last.reason != "NotAttempted" else 0,
        reason="TtlExpired",
        provider_message_id=last.provider_message_id,
    )


def _notification_failed(last: ProviderResult | None) -> ProviderResult:
    # Keep what the provider last said to a token that was mid-retry.
    if last is None or last.reason == "NotAttempted":
        return ProviderResult(Outcome.PERMANENT, reason=NOTIFICATION_FAILED)
    return ProviderResult(
        Outcome.PERMANENT, provider_status=last.provider_status, reason=NOTIFICATION_FAILED,
        provider_message_id=last.provider_message_id,
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
