"""Delivering one batch of a partition: send per provider as one call, regroup retries, settle every target.

`BatchDelivery.deliver` turns a batch of targets into one receipt draft each:

- The targets of one platform cross to their provider as one `send_batch`
  call (cut into chunks of at most `max_in_flight` when the batch is larger),
  and the results come back as one list. In-flight requests per provider are
  bounded by a count taken per chunk (`InFlightBudget`), not per delivery.
- After a wave, the RETRYABLE results that may be retried are regrouped by
  when they fall due: the wave draws its jitter once, so the retries of one
  wave with the same attempt count and Retry-After fall due together and are
  resent as one smaller batch; a token's delay is never shorter than its own
  Retry-After, and groups due within `_COALESCE_S` of each other go together
  (late, never early). A send whose outcome was unknown widens that token's
  bound (`RetryPolicy.attempts_allowed`).
- A retry that would land at or after the notification's `expires_at` is not
  made: the token gets EXPIRED ("TtlExpired").
- A credential rejection condemns the notification (`Condemnation`); retries
  waiting out a backoff wake at once and get a FAILED receipt with reason
  "NotificationFailed", as does every later target.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from pushsvc import logs, models
from pushsvc.clock import Clock
from pushsvc.dispatch.retry import RetryPolicy
from pushsvc.dispatch.variants import Variants
from pushsvc.metrics import Metrics, ProviderMetrics
from pushsvc.providers.base import Delivery, Outcome, Provider, ProviderResult, RenderedMessage
from pushsvc.storage import NotificationRecord, ReceiptDraft, TargetToken, TokenStore
from pushsvc.throttle import LogThrottle

log = logging.getLogger("pushsvc.dispatch")

NOTIFICATION_FAILED = "NotificationFailed"
"""The reason of a receipt for a target that was not sent because its notification failed as a whole."""

NOTIFICATION_CANCELLED = "NotificationCancelled"
"""The reason of a receipt for a target that was not sent because its notification was cancelled."""

_OUTCOME_STATUS = {
    Outcome.DELIVERED: models.DeliveryStatus.DELIVERED,
    Outcome.TOKEN_INVALID: models.DeliveryStatus.TOKEN_INVALID,
    Outcome.PERMANENT: models.DeliveryStatus.FAILED,
    Outcome.CREDENTIALS_REJECTED: models.DeliveryStatus.FAILED,
    Outcome.RETRYABLE: models.DeliveryStatus.FAILED,
}

_COALESCE_S = 0.05
"""Retries due this close after the first of a group are sent with it, as one batch."""

_DELIVERED = Outcome.DELIVERED
_STATUS_DELIVERED = models.DeliveryStatus.DELIVERED
_STATUS_DELIVERED_NAME = _STATUS_DELIVERED.name

_NOT_ATTEMPTED = ProviderResult(Outcome.RETRYABLE, reason="NotAttempted")
_NO_CREDENTIALS = ProviderResult(Outcome.PERMANENT, reason="NoCredentials")


class Condemnation:
    """Why a partition's notification stops as a whole (failed or cancelled), once anything says so.

    Set by a credential rejection in our own batch, by the notification we read
    at the start, or by the renewer (or the read before each batch) when
    another replica condemned it or a caller cancelled it. `error` is non-empty
    once it is set; `status` and `reason` are what the unsent targets' receipts
    say. The first verdict stays. Deliveries waiting out a retry backoff wake
    at once: their token gets its receipt now instead of a retry that would
    only be thrown away.
    """

    def __init__(self, view: models.NotificationView | None = None) -> None:
        self.error = ""
        self.status = models.DeliveryStatus.FAILED
        self.reason = NOTIFICATION_FAILED
        self.cancelled = False
        self.event = asyncio.Event()
        if view is not None:
            self.adopt(view)

    def condemn(self, error: str) -> None:
        if not self.error:
            self.error = error
            self.event.set()

    def cancel(self) -> None:
        if not self.error:
            self.error = NOTIFICATION_CANCELLED
            self.status = models.DeliveryStatus.CANCELLED
            self.reason = NOTIFICATION_CANCELLED
            self.cancelled = True
            self.event.set()

    def adopt(self, view: models.NotificationView) -> None:
        """Takes the verdict the store holds, if any."""
        if view.error:
            self.condemn(view.error)
        elif view.cancel_requested_at is not None:
            self.cancel()


class InFlightBudget:
    """At most `limit` requests in flight to one provider, taken a chunk at a time (one wait per chunk, not per request)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, count: int, *, express: bool = False) -> None:
        """Takes `count` (at most `limit`) places, in arrival order; an express batch's at once.

        Express batches (a few targets each, see `storage.Lane`) never queue
        behind a campaign's batches: they may take the budget over `limit` by
        at most their own size, so the bound becomes `limit` plus
        `express_workers` x `express_max_targets`.
        """
        if express or (not self._waiting and self.used + count <= self.limit):
            self.used += count
            return
        place = asyncio.get_running_loop().create_future()
        self._waiting.append((count, place))
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.release(count)  # granted as we were cancelled: hand it on
            elif (count, place) in self._waiting:  # `_grant` drops cancelled places itself
                self._waiting.remove((count, place))
                self._grant()
            raise

    def release(self, count: int) -> None:
        self.used -= count
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self.used + self._waiting[0][0] <= self.limit:
            count, place = self._waiting.popleft()
            if not place.done():
                self.used += count
                place.set_result(None)


class BatchDelivery:
    """Delivers batches of targets with the retry and expiry policy; one per dispatcher."""

    def __init__(
        self,
        *,
        tokens: TokenStore,
        providers: Mapping[tuple[str, models.Platform], Provider],
        clock: Clock,
        retry: RetryPolicy,
        max_in_flight: int,
        metrics: Metrics,
        faults: LogThrottle,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._tokens = tokens
        self._providers = providers
        self._clock = clock
        self._retry = retry
        self._max_in_flight = max_in_flight
        self._budgets = {key: InFlightBudget(max_in_flight) for key in providers}
        self._metrics = metrics
        # Bound once per provider: the per-delivery cost is a few dict lookups.
        self._counters: dict[tuple[str, models.Platform], ProviderMetrics] = {
            (app_id, platform): metrics.provider(app_id, platform.value) for app_id, platform in providers
        }
        self._faults = faults
        self._sleep = sleep
        self._rand = rand

    def counters(self, app_id: str, platform: models.Platform) -> ProviderMetrics:
        counters = self._counters.get((app_id, platform))
        if counters is None:  # an app without credentials for this platform
            counters = self._counters[(app_id, platform)] = self._metrics.provider(app_id, platform.value)
        return counters

    async def deliver(
        self,
        app_id: str,
        record: NotificationRecord,
        variants: Variants,
        targets: Sequence[TargetToken],
        condemned: Condemnation,
        *,
        express: bool = False,
    ) -> list[ReceiptDraft]:
        """One receipt draft per target, in order, after its last attempt; `express` for an express-lane partition's batch."""
        drafts: list[ReceiptDraft | None] = [None] * len(targets)
        # One send per platform and variant: targets of one language share one rendered message.
        groups: dict[tuple[models.Platform, int], tuple[RenderedMessage | None, list[int]]] = {}
        for index, target in enumerate(targets):
            platform = target.platform
            message = variants.of(target).get(platform)
            group = groups.get((platform, id(message)))
            if group is None:
                group = groups[(platform, id(message))] = (message, [])
            group[1].append(index)
        runs = []
        for (platform, _), (message, indices) in groups.items():
            provider = self._providers.get((app_id, platform))
            if provider is None or message is None:
                counters = self.counters(app_id, platform)
                for index in indices:
                    drafts[index] = self._draft(targets[index], models.DeliveryStatus.FAILED, _NO_CREDENTIALS, 0)
                    counters.delivered(models.DeliveryStatus.FAILED.name, _NO_CREDENTIALS.reason)
                continue
            runs.append(
                self._deliver_platform(
                    app_id, platform, provider, message, record, targets, indices, drafts, condemned, express
                )
            )
        if len(runs) == 1:
            await runs[0]
        elif runs:
            await asyncio.gather(*runs)
        return drafts  # type: ignore[return-value]  # every target is settled by now

    def unsent(self, app_id: str, target: TargetToken, condemned: Condemnation) -> ReceiptDraft:
        """The receipt of a target that is not sent because its notification failed or was cancelled as a whole."""
        self.counters(app_id, target.platform).delivered(condemned.status.name, condemned.reason)
        return self._draft(target, condemned.status, _notification_failed(None, condemned.reason), 0)

    async def _deliver_platform(
        self,
        app_id: str,
        platform: models.Platform,
        provider: Provider,
        message: RenderedMessage,
        record: NotificationRecord,
        targets: Sequence[TargetToken],
        indices: list[int],
        drafts: list[ReceiptDraft | None],
        condemned: Condemnation,
        express: bool,
    ) -> None:
        counters = self.counters(app_id, platform)
        expires_at = record.expires_at
        clock = self._clock
        deliveries = {
            index: Delivery(targets[index].token, message, targets[index].apns_environment, expires_at) for index in indices
        }
        attempts = dict.fromkeys(indices, 0)
        last: dict[int, ProviderResult] = {}
        maybe_accepted: set[int] = set()
        """Targets a send may have reached unanswered: a later 429/5xx cannot make them FAILED (see RetryPolicy)."""
        waiting: list[tuple[float, int, list[int]]] = []
        """Groups of retries by due time (monotonic): (due, sequence, targets)."""
        sequence = 0
        ready = indices
        while True:
            if not ready:
                if not waiting:
                    return
                due, _, ready = heapq.heappop(waiting)
                # Retries falling due together go as one batch: never early, at most `_COALESCE_S` late.
                while waiting and waiting[0][0] <= due + _COALESCE_S:
                    due = max(due, waiting[0][0])
                    ready = ready + heapq.heappop(waiting)[2]
                delay = due - clock.monotonic()
                if delay > 0:
                    await self._backoff(delay, condemned)
            if condemned.error:
                for group in (ready, *(group for _, _, group in waiting)):
                    for index in group:
                        self._settle_unsent(
                            drafts, index, targets[index], counters, last.get(index), attempts[index], condemned
                        )
                return
            if expires_at is not None and clock.now() >= expires_at:
                for group in (ready, *(group for _, _, group in waiting)):
                    for index in group:
                        self._settle_expired(
                            drafts, index, targets[index], counters, last.get(index, _NOT_ATTEMPTED), attempts[index]
                        )
                return
            for index in ready:
                attempts[index] += 1
            results = await self._send(
                app_id, platform, provider, [deliveries[index] for index in ready], counters, express
            )
            answered_at = clock.now()
            delivered = counters.delivered
            # One draw of jitter per wave: the wave's retries stay together.
            draw = self._rand()

            def jitter(draw: float = draw) -> float:
                return draw
            retries: dict[float, list[int]] = {}
            answers: collections.Counter[tuple[int, str, int, float]] = collections.Counter()
            for index, result in zip(ready, results, strict=True):
                tried = attempts[index]
                if result.outcome is _DELIVERED:
                    # The hot path, inline: no coroutine or call per delivered token.
                    target = targets[index]
                    drafts[index] = ReceiptDraft(
                        token=target.token,
                        platform=target.platform,
                        user_id=target.user_id,
                        status=_STATUS_DELIVERED,
                        provider_message_id=result.provider_message_id,
                        provider_status=result.provider_status,
                        reason=result.reason,
                        attempts=tried,
                        token_removed=False,
                        at=answered_at,
                    )
                    delivered(_STATUS_DELIVERED_NAME, result.reason)
                    continue
                last[index] = result
                if result.outcome_unknown:
                    maybe_accepted.add(index)
                if result.outcome is not Outcome.RETRYABLE or tried >= self._retry.attempts_allowed(index in maybe_accepted):
                    await self._settle(app_id, drafts, index, targets[index], result, tried, counters, condemned, answered_at)
                    continue
                delay = self._retry.delay_s(tried, result.retry_after_s, jitter)
                counters.retried(result.reason)
                answers[(result.provider_status, result.reason, tried, delay)] += 1
                if expires_at is not None and answered_at + timedelta(seconds=delay) >= expires_at:
                    self._settle_expired(drafts, index, targets[index], counters, result, tried)
                else:
                    retries.setdefault(delay, []).append(index)
            # One line per answer the wave got (rate-limited), never a token.
            for (status, reason, tried, delay), count in answers.items():
                self._faults.warning(
                    f"retry {app_id} {platform.value}",
                    "%s answered %s %s for app %s; retrying %d deliver%s (attempt %d, in %.1f s)",
                    platform.name, status or "-", reason, app_id, count, "y" if count == 1 else "ies", tried, delay,
                    extra=logs.fields(app=app_id, platform=platform.value),
                )
            now = clock.monotonic()
            for delay, group in retries.items():
                sequence += 1
                heapq.heappush(waiting, (now + delay, sequence, group))
            ready = []

    async def _send(
        self,
        app_id: str,
        platform: models.Platform,
        provider: Provider,
        deliveries: list[Delivery],
        counters: ProviderMetrics,
        express: bool,
    ) -> list[ProviderResult]:
        limit = self._max_in_flight
        if len(deliveries) <= limit:
            return await self._send_chunk(app_id, platform, provider, deliveries, counters, express)
        chunks = [deliveries[lo : lo + limit] for lo in range(0, len(deliveries), limit)]
        answers = await asyncio.gather(
            *(self._send_chunk(app_id, platform, provider, c, counters, express) for c in chunks)
        )
        return [result for chunk in answers for result in chunk]

    async def _send_chunk(
        self,
        app_id: str,
        platform: models.Platform,
        provider: Provider,
        deliveries: list[Delivery],
        counters: ProviderMetrics,
        express: bool,
    ) -> list[ProviderResult]:
        budget = self._budgets.get((app_id, platform))
        if budget is None:
            budget = self._budgets[(app_id, platform)] = InFlightBudget(self._max_in_flight)
        count = len(deliveries)
        await budget.acquire(count, express=express)
        try:
            for _ in range(count):
                counters.request_started()
            started = self._clock.monotonic()
            try:
                results = await provider.send_batch(deliveries)
            except BaseException:
                seconds = self._clock.monotonic() - started
                for _ in range(count):
                    counters.request_finished("error", seconds)
                raise
            seconds = self._clock.monotonic() - started
            for result in results:
                counters.request_finished(result.outcome.value, seconds)
            return results
        finally:
            budget.release(count)

    async def _settle(
        self,
        app_id: str,
        drafts: list[ReceiptDraft | None],
        index: int,
        target: TargetToken,
        result: ProviderResult,
        attempts: int,
        counters: ProviderMetrics,
        condemned: Condemnation,
        at: datetime,
    ) -> None:
        outcome = result.outcome
        removed = False
        if outcome is Outcome.DELIVERED:
            drafts[index] = self._draft(target, models.DeliveryStatus.DELIVERED, result, attempts, at=at)
            counters.delivered("DELIVERED", result.reason)
            return
        platform = target.platform
        if outcome is Outcome.TOKEN_INVALID:
            if target.registered:
                removed = await self._tokens.delete_invalid(app_id, platform, target.token, result.invalid_since)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s token %s of app %s is invalid (%s %s); %s",
                    platform.name, logs.redact_token(target.token), app_id, result.provider_status, result.reason,
                    "removed" if removed else "kept",
                )
        elif outcome is Outcome.PERMANENT or outcome is Outcome.RETRYABLE:
            self._faults.warning(
                f"failed {app_id} {platform.value}",
                "%s delivery failed for app %s after %d attempt(s): %s %s",
                platform.name, app_id, attempts, result.provider_status or "-", result.reason,
                extra=logs.fields(app=app_id, platform=platform.value),
            )
        elif outcome is Outcome.CREDENTIALS_REJECTED:
            self._faults.log(
                logging.ERROR, f"credentials {app_id} {platform.value}",
                "%s rejected the credentials of app %s: %s %s; the notification fails",
                platform.name, app_id, result.provider_status, result.reason,
                extra=logs.fields(app=app_id, platform=platform.value),
            )
            condemned.condemn(f"{platform.name} rejected the app's credentials ({result.provider_status} {result.reason})")
        status = _OUTCOME_STATUS[outcome]
        drafts[index] = self._draft(target, status, result, attempts, removed, at)
        counters.delivered(status.name, result.reason)

    def _settle_unsent(
        self,
        drafts: list[ReceiptDraft | None],
        index: int,
        target: TargetToken,
        counters: ProviderMetrics,
        last: ProviderResult | None,
        attempts: int,
        condemned: Condemnation,
    ) -> None:
        result = _notification_failed(last, condemned.reason)
        drafts[index] = self._draft(target, condemned.status, result, attempts)
        counters.delivered(condemned.status.name, result.reason)

    def _settle_expired(
        self,
        drafts: list[ReceiptDraft | None],
        index: int,
        target: TargetToken,
        counters: ProviderMetrics,
        last: ProviderResult,
        attempts: int,
    ) -> None:
        result = _expired(last)
        drafts[index] = self._draft(target, models.DeliveryStatus.EXPIRED, result, attempts)
        counters.delivered(models.DeliveryStatus.EXPIRED.name, result.reason)

    async def _backoff(self, delay_s: float, condemned: Condemnation) -> None:
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
        at: datetime | None = None,
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
            at=at or self._clock.now(),
        )


def _expired(last: ProviderResult) -> ProviderResult:
    # Keep what the provider last said, if anything; the reason says why we stopped.
    return ProviderResult(
        Outcome.PERMANENT,
        provider_status=last.provider_status if last.reason != "NotAttempted" else 0,
        reason="TtlExpired",
        provider_message_id=last.provider_message_id,
    )


def _notification_failed(last: ProviderResult | None, reason: str) -> ProviderResult:
    # Keep what the provider last said to a token that was mid-retry.
    if last is None or last.reason == "NotAttempted":
        return ProviderResult(Outcome.PERMANENT, reason=reason)
    return ProviderResult(
        Outcome.PERMANENT, provider_status=last.provider_status, reason=reason,
        provider_message_id=last.provider_message_id,
    )
