"""Sending an app's receipts to its webhook endpoints: one task per endpoint, owned by `WebhookSenders`.

An endpoint follows its app's receipt log, which is dense (see
`pushsvc.receipts`): the stored cursor says that every receipt numbered up
to `seq` was acknowledged. A batch is the next receipts after it, at most
`max_batch`, sent once it is full or its first receipt has waited
`max_delay_s`. Before its first POST the batch's range is stored on the
cursor (`batch_end`), so every retry of it, after a restart or on another
replica too, carries the same receipts under the same `webhook-id`; only a
2xx moves the cursor past it. Hence at least once, and a duplicate is always
a whole batch repeated under the id the receiver already saw.

A failed POST is retried after a backoff that doubles up to `max_backoff_s`
(stored with the cursor, so neither a restart nor another replica tries
sooner); an endpoint failing for `pause_after_s` counts as paused in metrics
and the log until a POST succeeds. Each endpoint's lease (like a partition's)
lets one replica send to it at a time. The tasks only read the receipt log and
write their cursor: the fan-out never waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from pushsvc import errors, models
from pushsvc.clock import Clock
from pushsvc.logs import fields
from pushsvc.metrics import NULL_METRICS, Metrics, WebhookMetrics
from pushsvc.receipts import READ_LIMIT, DenseReader, ReceiptSignal
from pushsvc.storage import ReceiptStore, WebhookCursor, WebhookCursorStore
from pushsvc.throttle import LogThrottle
from pushsvc.webhooks import signing
from pushsvc.webhooks.poster import PostFailed, WebhookPoster

log = logging.getLogger("pushsvc.webhooks")

EVENT_TYPE = "receipts.batch"
_STORE_RETRY_S = 1.0
"""Wait after a store call failed before the sender tries again."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One configured endpoint, with its secret resolved to an HMAC key."""

    app_id: str
    name: str
    """Its stable name: the cursor's key and the metrics label."""
    url: str
    key: bytes = dataclasses.field(repr=False)
    max_batch: int = 100
    max_delay_s: float = 1.0
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    pause_after_s: float = 60.0


def batch_id(app_id: str, endpoint: str, first_after: int, last: int) -> str:
    """The idempotency id of the batch of receipts numbered (first_after, last]: the same for every retry."""
    digest = hashlib.sha256(f"{app_id}\x00{endpoint}\x00{first_after}\x00{last}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def receipt_json(r: models.Receipt) -> dict[str, object]:
    """One receipt in a batch body."""
    return {
        "cursor": r.cursor,
        "notification_id": r.notification_id,
        "token": r.token,
        "platform": r.platform.value,
        "user_id": r.user_id,
        "status": r.status.value,
        "provider_message_id": r.provider_message_id,
        "provider_status": r.provider_status,
        "reason": r.reason,
        "attempts": r.attempts,
        "token_removed": r.token_removed,
        "at": r.at.isoformat(),
    }


def batch_body(app_id: str, receipts: Sequence[models.Receipt], at: datetime) -> bytes:
    """A batch as JSON: `{"type", "timestamp", "data": {"app_id", "receipts": [...]}}`."""
    return json.dumps(
        {"type": EVENT_TYPE, "timestamp": at.isoformat(), "data": {"app_id": app_id, "receipts": [receipt_json(r) for r in receipts]}},
        separators=(",", ":"),
    ).encode()


def _result(status: int) -> str:
    return "ok" if 200 <= status < 300 else "http_4xx" if 400 <= status < 500 else "http_5xx"


class _LeaseLost(Exception):
    """Another owner holds the endpoint now: stop sending, and ask for the lease again."""


class EndpointSender:
    """Delivers one endpoint's batches for as long as it runs (cancel it to stop)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        poster: WebhookPoster,
        cursors: WebhookCursorStore,
        receipts: ReceiptStore,
        signal: ReceiptSignal,
        clock: Clock,
        owner: str,
        lease_s: float,
        poll_interval_s: float,
        gap_grace_s: float,
        metrics: WebhookMetrics,
        throttle: LogThrottle,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._poster = poster
        self._cursors = cursors
        self._receipts = receipts
        self._signal = signal
        self._clock = clock
        self._owner = owner
        self._lease_s = lease_s
        self._poll_s = poll_interval_s
        self._grace_s = gap_grace_s
        self._metrics = metrics
        self._throttle = throttle
        self._rng = rng or random.Random()
        self._cursor: WebhookCursor | None = None
        self._renewed_at = 0.0
        self._paused = False
        self.leased = False
        """Whether this sender holds the endpoint's lease now."""

    @property
    def _log_key(self) -> str:
        return f"webhook:{self.endpoint.app_id}:{self.endpoint.name}"

    async def run(self) -> None:
        """Takes the endpoint's lease when it is free and delivers; never returns (cancel it)."""
        while True:
            try:
                await self._acquire()
                if self._cursor is None:
                    await asyncio.sleep(self._lease_s / 3)  # another replica sends to it
                    continue
                await self._deliver()
            except _LeaseLost:
                self._throttle.warning(
                    self._log_key, "webhook %s of app %s: lease lost to another replica; it sends from now on",
                    self.endpoint.name, self.endpoint.app_id,
                )
            except errors.StoreUnavailable as exc:
                self._throttle.warning(
                    self._log_key, "webhook %s of app %s: store unavailable (%s); retrying",
                    self.endpoint.name, self.endpoint.app_id, exc,
                )
                await asyncio.sleep(_STORE_RETRY_S)
            except Exception:
                # Not the endpoint's fault nor the store's: logged with its traceback, and the sender goes on.
                log.exception("webhook %s of app %s: sender failed; retrying", self.endpoint.name, self.endpoint.app_id)
                await asyncio.sleep(_STORE_RETRY_S)
            self.leased = False
            self._cursor = None

    async def release(self) -> None:
        """Gives the lease back (after `run` was cancelled), so another replica can go on at once."""
        if self.leased:
            self.leased = False
            await self._cursors.release(self.endpoint.app_id, self.endpoint.name, self._owner)

    async def _acquire(self) -> None:
        e = self.endpoint
        start = await self._receipts.last_seq(e.app_id)
        self._cursor = await self._cursors.lease(e.app_id, e.name, self._owner, start, self._clock.now(), self._lease_s)
        if self._cursor is not None:
            self.leased = True
            self._renewed_at = self._clock.monotonic()
            since = self._cursor.failing_since
            # Failing for long before this replica took over (or before its restart): paused from the start.
            self._paused = since is not None and (self._clock.now() - since).total_seconds() >= e.pause_after_s
            self._metrics.set_paused(self._paused)
            log.info(
                "webhook %s of app %s: sending from receipt %d", e.name, e.app_id, self._cursor.seq,
                extra=fields(app_id=e.app_id, endpoint=e.name),
            )

    async def _save(self, cursor: WebhookCursor) -> None:
        if not await self._cursors.save(
            self.endpoint.app_id, self.endpoint.name, self._owner, cursor, self._clock.now(), self._lease_s
        ):
            raise _LeaseLost()
        self._cursor = cursor
        self._renewed_at = self._clock.monotonic()

    async def _renew_if_due(self) -> None:
        assert self._cursor is not None
        if self._clock.monotonic() - self._renewed_at >= self._lease_s / 3:
            await self._save(self._cursor)

    async def _wait(self, seconds: float) -> None:
        """Sleeps `seconds`, renewing the lease on the way."""
        end = self._clock.monotonic() + seconds
        while (left := end - self._clock.monotonic()) > 0:
            await asyncio.sleep(min(left, self._lease_s / 3))
            await self._renew_if_due()

    async def _deliver(self) -> None:
        pending: list[models.Receipt] | None = None
        while True:
            cursor = self._cursor
            assert cursor is not None
            if cursor.retry_at is not None:
                wait_s = (cursor.retry_at - self._clock.now()).total_seconds()
                if wait_s > 0:
                    await self._wait(wait_s)
            if cursor.batch_end > cursor.seq:
                if pending is None:  # a batch offered before a restart, or by another replica: the same range again
                    pending = await self._read_range(cursor.seq, cursor.batch_end)
            else:
                pending, end = await self._collect(cursor.seq)
                if not pending:
                    if end > cursor.seq:  # only numbers without a receipt (a retried token's, or a dead writer's)
                        await self._save(dataclasses.replace(cursor, seq=end))
                    continue
                await self._save(dataclasses.replace(cursor, batch_end=end))
            if await self._post(pending):
                pending = None

    async def _read_range(self, after: int, last: int) -> list[models.Receipt]:
        out: list[models.Receipt] = []
        while after < last:
            entries = await self._receipts.read_app(self.endpoint.app_id, after, min(READ_LIMIT, last - after))
            if not entries:
                break  # swept past retention
            for entry in entries:
                if entry.seq > last:
                    return out
                if entry.receipt is not None:
                    out.append(entry.receipt)
            after = entries[-1].seq
        return out

    async def _collect(self, after: int) -> tuple[list[models.Receipt], int]:
        """The next batch after `after` and the last number it covers, waiting up to `max_delay_s` for it to fill."""
        e = self.endpoint
        # Pages of one batch (plus one entry, to see past a filler): no reading ahead of what is sent.
        page = min(READ_LIMIT, e.max_batch + 1)
        reader = DenseReader(
            lambda n: self._receipts.read_app(e.app_id, n, page), after, self._clock.monotonic, self._grace_s,
            key=lambda entry: entry.seq, page=page,
        )
        batch: list[models.Receipt] = []
        first_at = 0.0
        while True:
            async with contextlib.aclosing(reader.drain()) as entries:
                async for receipt in entries:
                    if not batch:
                        first_at = self._clock.monotonic()
                    batch.append(receipt)
                    if len(batch) >= e.max_batch:
                        break
            if len(batch) >= e.max_batch:
                return batch, reader.last
            if batch:
                left = e.max_delay_s - (self._clock.monotonic() - first_at)
                if left <= 0:
                    return batch, reader.last
                timeout = min(self._poll_s, left)
            elif reader.last > after:
                return batch, reader.last
            else:
                timeout = self._poll_s
            await self._renew_if_due()
            await self._signal.wait(timeout)

    async def _post(self, receipts: list[models.Receipt]) -> bool:
        """Offers the cursor's batch once; True when the endpoint acknowledged it (and the cursor moved past it)."""
        e, cursor = self.endpoint, self._cursor
        assert cursor is not None
        if not receipts:  # every receipt of the range was swept past retention
            await self._save(WebhookCursor(seq=cursor.batch_end))
            return True
        await self._renew_if_due()
        now = self._clock.now()
        body = batch_body(e.app_id, receipts, now)
        message_id = batch_id(e.app_id, e.name, cursor.seq, cursor.batch_end)
        headers = signing.headers(e.key, message_id, int(self._clock.time()), body)
        try:
            status = await self._poster.post(e.url, body, headers)
            result, detail = _result(status), f"HTTP {status}"
        except PostFailed as exc:
            result, detail = exc.reason, str(exc)
        self._metrics.posted(result, len(receipts))
        now = self._clock.now()
        if result == "ok":
            await self._save(WebhookCursor(seq=cursor.batch_end))
            if self._paused:
                self._paused = False
                self._metrics.set_paused(False)
                log.warning(
                    "webhook %s of app %s: delivering again after %d failed attempt(s)", e.name, e.app_id, cursor.failures,
                    extra=fields(app_id=e.app_id, endpoint=e.name),
                )
            return True
        failures = cursor.failures + 1
        since = cursor.failing_since or now
        backoff_s = min(e.initial_backoff_s * 2 ** min(failures - 1, 30), e.max_backoff_s)
        backoff_s *= self._rng.uniform(0.5, 1.0)
        retry_at = now + timedelta(seconds=backoff_s)
        await self._save(dataclasses.replace(cursor, failures=failures, failing_since=since, retry_at=retry_at))
        failing_s = (now - since).total_seconds()
        if failing_s >= e.pause_after_s and not self._paused:
            self._paused = True
            self._metrics.set_paused(True)
        self._throttle.warning(
            self._log_key,
            "webhook %s of app %s: batch %s (%d receipt(s)) failed: %s; attempt %d, failing for %.0f s, %snext attempt in %.1f s",
            e.name, e.app_id, message_id, len(receipts), detail, failures, failing_s,
            "paused, " if self._paused else "", backoff_s,
            extra=fields(app_id=e.app_id, endpoint=e.name, result=result),
        )
        return False


class WebhookSenders:
    """Owns one `EndpointSender` task per endpoint: starts them, and stops them (releasing their leases)."""

    def __init__(self, senders: Sequence[EndpointSender], posters: Sequence[WebhookPoster]) -> None:
        self.senders = list(senders)
        self._posters = list(posters)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Starts a task per endpoint."""
        for s in self.senders:
            self._tasks.append(
                asyncio.create_task(s.run(), name=f"pushsvc-webhook-{s.endpoint.app_id}-{s.endpoint.name}")
            )

    async def stop(self, timeout_s: float) -> None:
        """Cancels the tasks (a POST in flight is offered again later under its id), gives the leases back, closes."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        releasing = [asyncio.ensure_future(s.release()) for s in self.senders]
        closing = [asyncio.ensure_future(p.aclose()) for p in self._posters]
        if releasing or closing:
            _, late = await asyncio.wait([*releasing, *closing], timeout=max(timeout_s, 0.1))
            for task in late:
                task.cancel()
            for task in [*releasing, *closing]:
                with contextlib.suppress(BaseException):
                    await task


def build_senders(
    endpoints: Sequence[tuple[Endpoint, WebhookPoster]],
    *,
    cursors: WebhookCursorStore,
    receipts: ReceiptStore,
    signal: ReceiptSignal,
    clock: Clock,
    owner: str,
    lease_s: float,
    poll_interval_s: float,
    gap_grace_s: float,
    log_interval_s: float,
    metrics: Metrics = NULL_METRICS,
) -> WebhookSenders:
    """A sender per endpoint, sharing one log throttle (one line per endpoint per `log_interval_s`)."""
    throttle = LogThrottle(log, clock, interval_s=log_interval_s)
    senders = [
        EndpointSender(
            endpoint, poster=poster, cursors=cursors, receipts=receipts, signal=signal, clock=clock, owner=owner,
            lease_s=lease_s, poll_interval_s=poll_interval_s, gap_grace_s=gap_grace_s,
            metrics=metrics.webhook(endpoint.app_id, endpoint.name), throttle=throttle,
        )
        for endpoint, poster in endpoints
    ]
    return WebhookSenders(senders, [poster for _, poster in endpoints])
