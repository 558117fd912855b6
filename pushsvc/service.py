"""PushService: the transport-neutral use cases every entrypoint calls.

Send's contract: it validates everything that can be known up front (request
shape, credentials for each targeted platform, rendered payload sizes), then
stores the notification and its partitions durably and returns. Delivery is
the dispatcher's job. An oversized payload is rejected here so it can never
fan out into a million per-token failures.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pushsvc import errors, locales, logs, models, pagetokens, validation
from pushsvc.apps import AppProfile
from pushsvc.clock import Clock
from pushsvc.config import DispatchSettings
from pushsvc.dispatch.planning import due_groups, lane_of, plan_local_devices, plan_local_time, plan_partitions
from pushsvc.errors import FieldViolation
from pushsvc.receipts import ReceiptFeed, parse_cursor
from pushsvc.storage import (
    BadCursor,
    DuplicateKey,
    NotificationDraft,
    NotificationStore,
    Page,
    PartitionPlan,
    TargetQuery,
    TokenStore,
)
from pushsvc.tracing import NULL_TRACER, Tracer

_T = TypeVar("_T")
"""A listing's item type (`PushService._page`)."""


class PushService:
    """Register, unregister, prune, send, inspect and stream receipts."""

    def __init__(
        self,
        *,
        tokens: TokenStore,
        notifications: NotificationStore,
        feed: ReceiptFeed,
        apps: Mapping[str, AppProfile],
        clock: Clock,
        dispatch: DispatchSettings,
        stale_after_days: float,
        limits: validation.Limits | None = None,
        on_queued: Callable[[], None] = lambda: None,
        tracer: Tracer = NULL_TRACER,
    ) -> None:
        self._tokens = tokens
        self._notifications = notifications
        self._feed = feed
        self._apps = apps
        self._clock = clock
        self._dispatch = dispatch
        self._stale_after_s = stale_after_days * 86400
        self._limits = limits or validation.Limits()
        self._on_queued = on_queued
        self._tracer = tracer
        self._depth = 0
        self._depth_at = -math.inf

    # ------------------------------------------------------------ tokens

    async def register_token(self, reg: models.TokenRegistration) -> tuple[models.DeviceToken, bool]:
        """Upserts a token; returns it and whether it was new."""
        validation.validate_registration(reg, self._limits)
        v = validation.Violations()
        self._check_app_token(v, reg.app_id, reg.platform, reg.token, "token")
        v.raise_if_any()
        return await self._tokens.upsert(reg, self._clock.now())

    async def register_tokens(
        self, app_id: str, regs: Sequence[models.TokenRegistration]
    ) -> list[models.RegistrationResult]:
        """Upserts a batch of one app's tokens, each as `register_token` would; one result per item.

        A bad item gets its violations (named `items[i].<field>`) and the rest
        are still stored, in item order. Only a bad app_id or batch size fails
        the whole call.
        """
        validation.validate_batch(app_id, len(regs), self._limits)
        results: list[models.RegistrationResult | None] = [None] * len(regs)
        valid: list[models.TokenRegistration] = []
        positions: list[int] = []
        v = validation.Violations()
        check, limits = validation.check_registration, self._limits
        profile = self._apps.get(app_id)
        app_checks = profile.token_checks if profile is not None else {}
        for i, reg in enumerate(regs):
            check(v, reg, limits)
            if not v.items and (app_check := app_checks.get(reg.platform)) is not None and (problem := app_check(reg.token)):
                v.add("token", problem)
            if v.items:
                results[i] = models.RegistrationResult(
                    i, violations=tuple(FieldViolation(f"items[{i}].{x.field}", x.description) for x in v.items)
                )
                v.items = []
            else:
                valid.append(reg if reg.app_id == app_id else dataclasses.replace(reg, app_id=app_id))
                positions.append(i)
        created = await self._tokens.upsert_many(valid, self._clock.now()) if valid else []
        for i, new in zip(positions, created, strict=True):
            results[i] = models.RegistrationResult(i, created=new)
        return [r for r in results if r is not None]

    def _check_app_token(
        self, v: validation.Violations, app_id: str, platform: models.Platform, token: str, field: str
    ) -> None:
        # The app's own rules (Channel.app_token_check: a token's host against the app's allow-list);
        # an app this replica does not serve has none beyond the token's shape.
        app = self._apps.get(app_id)
        check = app.token_checks.get(platform) if app is not None else None
        if check is not None and (problem := check(token)):
            v.add(field, problem)

    async def unregister_token(self, app_id: str, platform: models.Platform, token: str) -> bool:
        """Removes a token; unknown tokens are not an error."""
        validation.validate_token_ref(app_id, platform, token, self._limits)
        return await self._tokens.delete(app_id, platform, token)

    async def prune(self, cmd: models.PruneCommand) -> int:
        """Removes (or counts, with dry_run) tokens not seen for stale_after."""
        validation.validate_prune(cmd, self._limits)
        stale_after_s = self._stale_after_s if cmd.stale_after_s is None else cmd.stale_after_s
        cutoff = self._clock.now() - timedelta(seconds=stale_after_s)
        return await self._tokens.prune(cmd.app_id, cutoff, cmd.platforms, cmd.dry_run)

    # ------------------------------------------------------------ send

    async def send(self, cmd: models.SendCommand) -> models.SendResult:
        """Validates, stores durably, and returns; delivery is asynchronous."""
        now = self._clock.now()
        ahead_s = (cmd.send_at - now).total_seconds() if cmd.send_at else None
        validation.validate_send(cmd, ahead_s, self._limits)
        app = self._apps.get(cmd.app_id)
        if app is None:
            raise errors.FailedPrecondition(f"app {cmd.app_id!r} is not configured on this server")
        target = cmd.target
        query: TargetQuery | None = None
        devices: list[models.Device] = []
        if target.kind == "devices":
            v = validation.Violations()
            for i, device in enumerate(target.devices):
                self._check_app_token(v, cmd.app_id, device.platform, device.token, f"target.devices.devices[{i}].token")
            v.raise_if_any()
            devices = _unique_devices(d for d in target.devices if target.selects(d.platform))
            platforms = {d.platform for d in devices}
            missing = platforms - app.platforms
        else:
            query = TargetQuery(
                kind=target.kind, user_ids=tuple(dict.fromkeys(target.user_ids)), topic=target.topic,
                platforms=target.platforms,
            )
            platforms = set(target.platforms or models.PLATFORMS)
            missing = set()
            for p in platforms - app.platforms:
                # A platform without credentials matters only if it has targets.
                if await self._tokens.count_targets(cmd.app_id, query.restricted_to(frozenset({p}))):
                    missing.add(p)
            platforms &= app.platforms
        if missing:
            names = ", ".join(sorted(p.name for p in missing))
            raise errors.FailedPrecondition(f"app {cmd.app_id!r} has no credentials for {names}")
        # The id is drawn before rendering: the payload carries it (Renderer).
        notification_id = uuid.uuid4().hex
        rendered, localized = self._render(app, cmd.message, platforms, notification_id)
        if query is not None:
            if platforms != set(models.PLATFORMS) and not target.platforms:
                query = query.restricted_to(frozenset(platforms))
            targeted = await self._tokens.count_targets(cmd.app_id, query) if platforms else 0
        else:
            targeted = len(devices)
        if cmd.validate_only:
            return models.SendResult(notification_id="", duplicate=False, targeted=targeted)
        if cmd.idempotency_key:
            existing = await self._notifications.find_by_idempotency_key(cmd.app_id, cmd.idempotency_key)
            if existing is not None:
                logs.notification_id.set(existing.notification_id)
                return models.SendResult(existing.notification_id, True, existing.targeted)
        await self._check_queue_depth()
        # The Send's own rate, else the app's default (0 there too: unthrottled).
        rate = cmd.max_per_second or app.default_max_per_second
        return await self._store(
            cmd, now, query, devices, platforms, rendered, localized, targeted, notification_id, rate
        )

    def _render(
        self, app: AppProfile, message: models.Message, platforms: set[models.Platform], notification_id: str
    ) -> tuple[dict[models.Platform, Mapping[str, Any]], dict[str, dict[models.Platform, Mapping[str, Any]]]]:
        """The message rendered once per platform, and each localized variant once per platform; sizes checked."""
        v = validation.Violations()
        rendered: dict[models.Platform, Mapping[str, Any]] = {}
        localized: dict[str, dict[models.Platform, Mapping[str, Any]]] = {}
        variants = [("", "message", message)] + [
            (tag, f"message.localized[{tag}]", _marked(message.variant(tag), tag)) for tag in message.localized
        ]
        for tag, field, content in variants:
            bodies = localized.setdefault(tag, {}) if tag else rendered
            for platform in sorted(platforms, key=lambda p: p.value):
                r = app.renderers[platform](content, notification_id=notification_id)
                if r.size_bytes > r.limit_bytes:
                    v.add(field, f"the {platform.name} payload is {r.size_bytes} bytes; the limit is {r.limit_bytes}")
                bodies[platform] = r.body
        v.raise_if_any()
        return rendered, localized

    async def _check_queue_depth(self) -> None:
        mono = self._clock.monotonic()
        if mono - self._depth_at > self._dispatch.queue_depth_cache_s:
            self._depth = await self._notifications.queue_depth()
            self._depth_at = mono
        if self._depth >= self._dispatch.max_queue_depth:
            raise errors.ResourceExhausted(
                f"{self._depth} notifications are queued (limit {self._dispatch.max_queue_depth}); retry later"
            )
        self._depth += 1

    async def _store(
        self,
        cmd: models.SendCommand,
        now: datetime,
        query: TargetQuery | None,
        devices: list[models.Device],
        platforms: set[models.Platform],
        rendered: dict[models.Platform, Mapping[str, Any]],
        localized: dict[str, dict[models.Platform, Mapping[str, Any]]],
        targeted: int,
        notification_id: str,
        max_per_second: int,
    ) -> models.SendResult:
        start = cmd.send_at if cmd.send_at is not None and cmd.send_at > now else now
        ends_at = start
        if not platforms:
            plans: list[PartitionPlan] = []
        elif cmd.local_time is not None:
            plans = await self._plan_local_time(cmd.app_id, cmd.local_time, cmd.send_at or now, query, devices)
            if plans:
                # Each partition waits for its group's instant; the notification is runnable with the first.
                start = max(now, min(p.runnable_at or now for p in plans))
                ends_at = max(start, max(p.runnable_at or now for p in plans))
        else:
            plans = plan_partitions(
                targeted=targeted,
                devices=None if query is not None else devices,
                partition_size=self._dispatch.partition_size,
                max_partitions=self._dispatch.max_partitions,
            )
        scheduled = start > now
        draft = NotificationDraft(
            notification_id=notification_id,
            app_id=cmd.app_id,
            state=models.NotificationState.SCHEDULED if scheduled else models.NotificationState.QUEUED,
            created_at=now,
            targeted=targeted,
            query=query,
            rendered=rendered,
            runnable_at=start,
            target_kind=cmd.target.kind,
            send_at=cmd.send_at,
            # A local-time send's ttl counts from its last group's instant, so no group expires before its turn.
            expires_at=ends_at + timedelta(seconds=cmd.message.ttl_s) if cmd.message.ttl_s is not None else None,
            idempotency_key=cmd.idempotency_key,
            localized=localized,
            # The Send's span, so each batch span of the fan-out can link back to it.
            traceparent=self._tracer.current_traceparent(),
            lane=lane_of(
                priority=cmd.message.priority, targeted=targeted, express_max_targets=self._dispatch.express_max_targets,
                local_time=cmd.local_time is not None,
                max_per_second=max_per_second,
            ),
            max_per_second=max_per_second,
        )
        # The rest of this call's log lines (the audit line among them) name the notification.
        logs.notification_id.set(draft.notification_id)
        try:
            view = await self._notifications.create(draft, plans)
        except DuplicateKey as dup:
            logs.notification_id.set(dup.notification_id)
            return models.SendResult(dup.notification_id, True, targeted)
        self._on_queued()
        return models.SendResult(view.notification_id, False, targeted)

    async def _plan_local_time(
        self, app_id: str, at: models.LocalTime, reference: datetime, query: TargetQuery | None,
        devices: list[models.Device],
    ) -> list[PartitionPlan]:
        """A local-time send's partitions: one set per due instant, from the targets' stored zones."""
        if query is not None:
            counts = await self._tokens.count_by_timezone(app_id, query)
            return plan_local_time(
                groups=due_groups(at, reference, counts),
                partition_size=self._dispatch.partition_size,
                max_partitions=self._dispatch.max_partitions,
            )
        registered = await self._tokens.lookup(app_id, devices)
        return plan_local_devices(
            at=at, reference=reference, devices=devices,
            zones={key: t.timezone for key, t in registered.items()}, partition_size=self._dispatch.partition_size,
        )

    # ------------------------------------------------------------ inspect

    async def get_notification(self, app_id: str, notification_id: str) -> models.NotificationView:
        """Returns a notification's state and counters."""
        self._check_ids(app_id, notification_id)
        record = await self._notifications.get(app_id, notification_id)
        if record is None:
            raise errors.NotFound(f"notification {notification_id!r} not found for app {app_id!r}")
        view = record.view
        if view.state.finished:
            return view
        # Waiting: the planned targets of partitions not yet due that nobody has
        # started (only a local-time send plans per-partition targets).
        now = self._clock.now()
        waiting = sum(
            p.targets
            for p in await self._notifications.partitions(notification_id)
            if not p.done and not p.claims and p.not_before is not None and p.not_before > now
        )
        return dataclasses.replace(view, waiting=waiting) if waiting else view

    async def stream_receipts(
        self, app_id: str, notification_id: str, after: str
    ) -> AsyncIterator[models.Receipt]:
        """Receipts of one notification (ends by itself), or the app's live feed (endless)."""
        self._check_ids(app_id, notification_id)
        seq, nseq = parse_cursor(after) if after else (None, 0)
        if notification_id:
            if await self._notifications.get(app_id, notification_id) is None:
                raise errors.NotFound(f"notification {notification_id!r} not found for app {app_id!r}")
            return self._feed.follow_notification(app_id, notification_id, nseq)
        return self._feed.follow_app(app_id, seq)

    async def cancel_notification(self, app_id: str, notification_id: str) -> models.NotificationView:
        """Cancels an unfinished notification; its unsent targets get CANCELLED receipts.

        Cancelling one that is cancelled or being cancelled returns it as it is;
        one that has finished otherwise (or is failing as a whole) is
        FAILED_PRECONDITION.
        """
        validation.validate_notification_ref(app_id, notification_id, self._limits)
        view = await self._notifications.cancel(app_id, notification_id, self._clock.now())
        if view is None:
            raise errors.NotFound(f"notification {notification_id!r} not found for app {app_id!r}")
        if view.state is models.NotificationState.CANCELLED or (
            not view.state.finished and view.cancel_requested_at is not None
        ):
            # The sweep of a scheduled notification runs now, not at its send time.
            self._on_queued()
            return view
        if view.state.finished:
            raise errors.FailedPrecondition(
                f"notification {notification_id!r} has already finished ({view.state.value}); nothing to cancel"
            )
        raise errors.FailedPrecondition(
            f"notification {notification_id!r} is failing as a whole ({view.error}); it cannot be cancelled"
        )

    # ------------------------------------------------------------ look up

    async def get_token(self, app_id: str, platform: models.Platform, token: str) -> models.DeviceToken:
        """Returns one registered token."""
        validation.validate_token_ref(app_id, platform, token, self._limits)
        found = await self._tokens.get(app_id, platform, token)
        if found is None:
            raise errors.NotFound(f"{platform.name} token not registered for app {app_id!r}")
        return found

    async def list_tokens(
        self, where: models.TokenFilter, page_size: int, page_token: str
    ) -> tuple[list[models.DeviceToken], str]:
        """A page of the app's tokens and the token of the next page ("" on the last)."""
        v = validation.validate_token_filter(where, self._limits)
        return await self._page(v, where, page_size, page_token, self._tokens.list)

    async def list_notifications(
        self, where: models.NotificationFilter, page_size: int, page_token: str
    ) -> tuple[list[models.NotificationView], str]:
        """A page of the app's notifications, newest first, and the token of the next page ("" on the last)."""
        v = validation.validate_notification_filter(where, self._limits)
        return await self._page(v, where, page_size, page_token, self._notifications.list)

    async def _page(
        self,
        v: validation.Violations,
        where: Any,
        page_size: int,
        page_token: str,
        fetch: Callable[[Any, tuple[str, ...] | None, int], Awaitable[Page[_T]]],
    ) -> tuple[list[_T], str]:
        """One page of a listing whose filter `where` was checked into `v`: the page token decoded, and the next one made."""
        limit = validation.page_size(v, page_size, self._limits)
        v.raise_if_any()
        after = pagetokens.decode(page_token, where)
        try:
            page = await fetch(where, after, limit)
        except BadCursor:
            raise pagetokens.bad_key() from None
        return page.items, pagetokens.encode(page.after, where)

    def _check_ids(self, app_id: str, notification_id: str) -> None:
        v = validation.Violations()
        validation.check_app_id(v, app_id, self._limits)
        validation.check_notification_id(v, notification_id, self._limits)
        v.raise_if_any()


def _unique_devices(devices: Any) -> list[models.Device]:
    seen: set[tuple[models.Platform, str]] = set()
    out = []
    for d in devices:
        key = (d.platform, d.token)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _marked(variant: models.Message, tag: str) -> models.Message:
    """A variant whose pushes name it: `locales.VARIANT_KEY` in their data, rendered and size-checked like any key."""
    return dataclasses.replace(variant, data={**variant.data, locales.VARIANT_KEY: tag})


__all__ = ["PushService"]
