"""Storage ports: the token registry, the notification queue and the receipt log.

These Protocols are the contract that `tests/storage/` enforces against every
backend. Domain values go in and come out; each adapter owns its schema and
encodes it, so nothing above `storage/` names a document field. The
guarantees callers rely on:

- Token registry: (app_id, platform, token) is unique; `upsert` is idempotent and
  keeps `created_at`; a device_id holding another token of the same app and
  platform loses that token. Register, unregister, rotation and lookups are
  key operations; a fan-out reads its targets through one cursor per partition.
- Notification queue: a partition is leased to at most one owner at a time
  (`claim` is a single atomic find-and-modify); a lease that is not renewed
  expires, and the partition resumes from its last checkpoint; finishing a
  partition is counted exactly once. When the last partition finishes, the
  counters are reconciled with the receipt log, so they agree with it after
  any crash; `targeted` never shrinks below what Send counted, and targets
  that were no longer registered are reported as `vanished`.
- Receipt log: one receipt per (notification, platform, token), however often
  a batch is retried; every receipt gets a dense per-app sequence number and a
  dense per-notification sequence number, so readers resume by cursor without
  loss or repetition.
- Throttle: a throttled notification's next free send instant is booked by
  one atomic step (`NotificationStore.reserve`), so bookings from every
  replica never overlap.
- Webhook cursors: per (app, endpoint), how far along the app's receipt log
  the endpoint has acknowledged, leased to one owner at a time like a
  partition; a cursor is only written by its lease holder and its `seq`
  never goes backwards.

All methods raise `pushsvc.errors.StoreUnavailable` when the store cannot be
reached.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from pushsvc import models

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class Page(Generic[_T]):
    """One page of a listing, and where the next one starts."""

    items: list[_T]
    after: tuple[str, ...] | None
    """The key to pass back as `after` for the next page (strings only, so the service can
    encode it as an opaque page token); None on the last page."""


class BadCursor(ValueError):
    """An `after` key that this listing did not hand out (wrong shape or values)."""


def parse_notification_position(after: tuple[str, ...]) -> tuple[datetime, str]:
    """A notification listing's `after`, (created_at ISO 8601 with offset, notification_id), read back.

    Every adapter writes it the same way; raises BadCursor for anything else,
    including instants that no store can hold once moved to UTC.
    """
    if len(after) != 2:
        raise BadCursor("not a notification listing position")
    try:
        at = datetime.fromisoformat(after[0])
        if at.tzinfo is None:
            raise ValueError("no offset")
        at = at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadCursor("not a notification listing position") from None
    return at, after[1]


@dataclasses.dataclass(slots=True)  # not frozen: built once per delivery, and frozen init costs 4x
class TargetToken:
    """A token as the dispatcher needs it (a value: never mutated)."""

    ref: Any
    """Opaque, ordered position of the token in its partition; only the adapter reads it."""
    token: str
    platform: models.Platform
    user_id: str
    apns_environment: models.ApnsEnvironment
    registered: bool
    last_seen_at: datetime | None
    locale: str = ""
    """The registered locale, which chooses the message's variant; "" for unregistered devices."""
    timezone: str = ""
    """The registered zone name, as stored. Set by `lookup` (a local-time Send groups a device list by it);
    `scan_targets` may leave it "", since its query already names the zones it wants."""


@dataclasses.dataclass(frozen=True, slots=True)
class TargetQuery:
    """A stored-token selector: users, a topic or the whole app, plus a platform filter."""

    kind: str
    """"users", "topic" or "all"."""
    user_ids: tuple[str, ...] = ()
    topic: str = ""
    platforms: frozenset[models.Platform] = frozenset()
    timezones: frozenset[str] | None = None
    """Only tokens whose stored zone name is one of these ("" selects tokens with none); None: any zone.
    A local-time send's partitions each scan one due group's zones."""

    def restricted_to(self, platforms: frozenset[models.Platform]) -> TargetQuery:
        """The same selector with another platform filter."""
        return dataclasses.replace(self, platforms=platforms)


class TokenStore(Protocol):
    """The device-token registry."""

    async def upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        """Inserts or refreshes a token; returns it and whether it was created."""
        ...

    async def upsert_many(self, regs: Sequence[models.TokenRegistration], now: datetime) -> list[bool]:
        """`upsert` of each registration, in order, as one call; returns whether each was created.

        Equivalent to calling `upsert` on each in turn (device_id rotation
        included, so a device listed twice keeps its later token), except that
        a token rotated away and registered again within the same call may be
        reported as refreshed and keep its first `created_at`. Idempotent: repeating a call changes only
        `last_seen_at`.
        """
        ...

    async def insert_new(self, regs: Sequence[models.TokenRegistration], now: datetime) -> int:
        """Bulk import: inserts the tokens not registered yet, leaves the others alone; returns how many were new."""
        ...

    async def delete(self, app_id: str, platform: models.Platform, token: str) -> bool:
        """Removes a token; returns whether it existed."""
        ...

    async def delete_invalid(
        self, app_id: str, platform: models.Platform, token: str, invalid_since: datetime | None
    ) -> bool:
        """Removes a token the provider called dead.

        With `invalid_since` (an APNs 410 timestamp), a token re-registered after
        that moment is kept.
        """
        ...

    async def get(self, app_id: str, platform: models.Platform, token: str) -> models.DeviceToken | None:
        """Returns one token, or None."""
        ...

    async def prune(
        self, app_id: str, stale_before: datetime, platforms: frozenset[models.Platform], dry_run: bool
    ) -> int:
        """Removes (or with dry_run counts) tokens last seen before `stale_before`."""
        ...

    async def count_targets(self, app_id: str, query: TargetQuery) -> int:
        """Counts the tokens a query selects."""
        ...

    async def count_by_timezone(self, app_id: str, query: TargetQuery) -> dict[str, int]:
        """Counts the tokens a query selects per stored zone name ("" for tokens without one); no zero counts.

        A local-time Send groups the zones by due instant from these counts.
        """
        ...

    def scan_targets(
        self, app_id: str, query: TargetQuery, buckets: tuple[int, int], after: Any, batch_size: int
    ) -> AsyncGenerator[list[TargetToken], None]:
        """Pages of at most `batch_size` selected tokens in bucket range [lo, hi), in ref order, after `after`.

        One cursor serves the whole range; close the iterator (`aclose()`) to
        release it early.
        """
        ...

    async def lookup(self, app_id: str, devices: Sequence[models.Device]) -> dict[tuple[models.Platform, str], TargetToken]:
        """Returns the registered ones among directly addressed devices."""
        ...

    async def list(self, where: models.TokenFilter, after: tuple[str, ...] | None, limit: int) -> Page[models.DeviceToken]:
        """A page of at most `limit` tokens that match every set filter, in the registry's key order.

        The order is the one partitions scan in (bucket, platform, token), so
        `after` is `(platform value, token)` of the last token of the previous
        page. A user or topic filter is served by that index; the others
        narrow the walk. Raises `BadCursor` for an `after` of the wrong shape.
        """
        ...


class Lane(enum.Enum):
    """The claim queue a notification's partitions wait in, decided once at Send time (`dispatch.planning.lane_of`).

    Express partitions are claimed before bulk ones, and each replica keeps
    workers that claim only express ones, so a campaign's partitions can never
    hold up a small high-priority send.
    """

    EXPRESS = "express"
    BULK = "bulk"


def booked(count: int, per_second: int) -> timedelta:
    """How long `count` sends take at `per_second` (`NotificationStore.reserve`), rounded up to the microsecond.

    Rounded up so that bookings never add up to more than the rate; every
    adapter books with this, so they agree to the microsecond.
    """
    return timedelta(microseconds=-(-count * 1_000_000 // per_second))


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionPlan:
    """One slice of a fan-out, as Send decides it (see `pushsvc.dispatch.planning`)."""

    index: int
    buckets: tuple[int, int]
    """Token-bucket range [lo, hi) for stored-token queries; (0, 0) for device lists."""
    devices: tuple[models.Device, ...] = ()
    """Directly addressed devices (target kind "devices"); empty for stored-token queries."""
    runnable_at: datetime | None = None
    """When it may first be claimed; None: the notification's `runnable_at`. A local-time send's
    partitions each carry their due group's instant."""
    timezones: frozenset[str] | None = None
    """The stored zone names it scans (`TargetQuery.timezones`); None: every zone."""
    targets: int = 0
    """How many targets it was planned for (a local-time send's; 0 otherwise): `waiting` adds these up."""


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationDraft:
    """A notification as Send stores it."""

    notification_id: str
    app_id: str
    state: models.NotificationState
    created_at: datetime
    targeted: int
    query: TargetQuery | None
    """None when the target is a device list."""
    rendered: Mapping[models.Platform, Mapping[str, Any]]
    """Platform → the provider's rendered body (`RenderedMessage.body`), stored as is."""
    runnable_at: datetime
    """When its partitions may first be claimed (send_at for scheduled sends)."""
    target_kind: str = ""
    send_at: datetime | None = None
    expires_at: datetime | None = None
    idempotency_key: str = ""
    localized: Mapping[str, Mapping[models.Platform, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)
    """Variant tag → platform → the rendered body of that language, stored as is (see Message.localized)."""
    traceparent: str = ""
    """The W3C traceparent of the Send that queued it ("" when not tracing); the fan-out's spans link to it."""
    lane: Lane = Lane.BULK
    """The claim queue of all its partitions."""
    max_per_second: int = 0
    """The fan-out's rate across every replica, kept with `NotificationStore.reserve`; 0: unthrottled."""


@dataclasses.dataclass(frozen=True, slots=True)
class Partition:
    """A leased slice of a notification's fan-out."""

    partition_id: str
    notification_id: str
    app_id: str
    index: int
    buckets: tuple[int, int]
    devices: tuple[models.Device, ...]
    """Directly addressed devices (target kind "devices"); empty for stored-token queries."""
    checkpoint: Any
    """Last completed ref (queries) or count of devices done (device lists); None at the start."""
    created_at: datetime
    lane: Lane = Lane.BULK
    timezones: frozenset[str] | None = None
    """As `PartitionPlan.timezones` stored it: the scan's zone filter."""


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionStatus:
    """A partition's progress, for inspection."""

    partition_id: str
    index: int
    done: bool
    owner: str | None
    finished_by: str | None
    claims: int
    targets: int = 0
    """As `PartitionPlan.targets` stored it."""
    not_before: datetime | None = None
    """When it may next be claimed (its lease's end); before its first claim, its runnable time."""


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A stored notification: what to send, to whom, and how far it got."""

    view: models.NotificationView
    query: TargetQuery | None
    """None when the target is a device list."""
    rendered: Mapping[models.Platform, Mapping[str, Any]]
    """Platform → the provider's rendered body."""
    expires_at: datetime | None
    receipt_seq: int
    """Per-notification receipt numbers allocated so far."""
    localized: Mapping[str, Mapping[models.Platform, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)
    """Variant tag → platform → rendered body, as `NotificationDraft.localized` stored it."""
    traceparent: str = ""
    """As `NotificationDraft.traceparent` stored it."""


class NotificationStore(Protocol):
    """The durable queue of notifications and their partitions."""

    async def find_by_idempotency_key(self, app_id: str, key: str) -> models.NotificationView | None:
        """Returns the notification stored under this key, if any."""
        ...

    async def create(self, draft: NotificationDraft, plans: Sequence[PartitionPlan]) -> models.NotificationView:
        """Stores partitions, then the notification; with no plans it is stored as completed.

        Raises:
            DuplicateKey: another notification holds the idempotency key; the
                partitions just written are removed again.
        """
        ...

    async def get(self, app_id: str, notification_id: str) -> NotificationRecord | None:
        """Returns one notification of this app, or None."""
        ...

    async def partitions(self, notification_id: str) -> list[PartitionStatus]:
        """The partitions of a notification, by index."""
        ...

    async def queue_depth(self) -> int:
        """Counts unfinished, runnable-or-scheduled notifications."""
        ...

    async def claim(self, owner: str, now: datetime, lease_s: float, lane: Lane | None = None) -> Partition | None:
        """Atomically leases one runnable partition whose lease is free or expired.

        With a `lane`, only a partition of that lane; with None, an express one
        if any is runnable, else a bulk one. Within a lane, the lease that ran
        out first.
        """
        ...

    async def renew(self, partition_id: str, owner: str, now: datetime, lease_s: float) -> bool:
        """Extends our lease; False means we lost it (or the partition was retired) and must stop."""
        ...

    async def commit_batch(
        self,
        partition_id: str,
        owner: str,
        checkpoint: Any,
        counts: Mapping[models.DeliveryStatus, int],
        now: datetime,
        lease_s: float,
    ) -> bool:
        """After a batch's receipts are written: records progress, renews the lease, adds to the counters.

        Returns False, and changes nothing, when the lease is lost or the
        partition is done.
        """
        ...

    async def release(self, partition_id: str, owner: str, retry_at: datetime) -> None:
        """Gives a partition back; it becomes claimable at `retry_at`."""
        ...

    async def release_all(self, owner: str, now: datetime) -> int:
        """Gives back every lease we hold (graceful shutdown)."""
        ...

    async def release_replica(self, replica_id: str, keep_owner: str, now: datetime) -> int:
        """Frees at once the leases of earlier incarnations of a replica, after its restart.

        An owner named `<replica_id>/<anything>` belongs to the replica; every
        unfinished partition leased by such an owner, other than `keep_owner`,
        is freed. Only the replica that restarted may call this: a replica id
        is unique among live processes, so those leases are held by nobody.
        Returns how many were freed.
        """
        ...

    async def finish_partition(self, partition_id: str, owner: str, now: datetime) -> models.NotificationView | None:
        """Marks a partition done exactly once; settles the notification with the last one.

        It settles FAILED with its error when `fail` condemned it, CANCELLED
        when `cancel` did, else COMPLETED; either way the counters are reconciled with the receipt
        log, and targets without a receipt count as vanished. Returns the
        notification after the update, or None when the partition was already
        done or not ours.
        """
        ...

    async def drop_partition(self, partition_id: str) -> None:
        """Deletes an orphaned partition."""
        ...

    async def mark_running(self, notification_id: str, now: datetime) -> None:
        """Moves a queued or scheduled notification to running."""
        ...

    async def fail(self, notification_id: str, error: str, now: datetime) -> None:
        """Condemns the whole notification: records `error` (the first one stays) and nothing else.

        The notification stays unfinished and its partitions stay claimable:
        every target still needs its receipt, and only a partition's lease
        holder knows which ones (its checkpoint), so the dispatcher gives each
        remaining target a FAILED receipt without sending it. When the last
        partition finishes, the notification settles FAILED with this error
        (see `finish_partition`). A finished notification is left as it is,
        and so is one being cancelled (the first verdict stays).
        """
        ...

    async def cancel(self, app_id: str, notification_id: str, now: datetime) -> models.NotificationView | None:
        """Cancels an unfinished notification: records `cancel_requested_at` (the first one stays).

        The same shape as `fail`: the notification stays unfinished, its
        partitions stay claimable and become runnable now (a scheduled one
        does not wait for its send time), and each lease holder gives its
        remaining targets a CANCELLED receipt. The last partition settles it
        CANCELLED. A notification already condemned by `fail` keeps that
        verdict (it settles FAILED); a finished one is left as it is. Returns
        the notification after the update (finished or not: the caller tells
        which), or None when this app has no such notification.
        """
        ...

    async def reserve(self, notification_id: str, count: int, per_second: int, not_before: datetime) -> datetime:
        """Books `count` sends of a throttled notification's budget; returns when they may start.

        One atomic step on the notification's next free instant (virtual-time
        scheduling, as in GCRA): `start = max(next, not_before)`, then
        `next = start + count / per_second`; returns `start`. Every replica's
        workers book through here, so their bookings never overlap and add up
        to the rate whatever the replica count or partition progress. Unused
        time before `not_before` is not saved up: a caller passes the present
        instant, or a little before it (GCRA's tolerance) so that a booker
        that came late may catch up that much and no more. Concurrent callers,
        on any connection, get disjoint intervals. The instant is kept to the
        microsecond. A notification that does not exist books nothing and
        returns `not_before`.
        """
        ...

    async def list(
        self, where: models.NotificationFilter, after: tuple[str, ...] | None, limit: int
    ) -> Page[models.NotificationView]:
        """A page of at most `limit` notifications matching every set filter, newest first.

        Ordered by (created_at, notification_id), descending; `after` is the
        adapter's key of the last notification of the previous page. Served by
        an (app, created_at) index, and (app, state, created_at) with a state.
        Raises `BadCursor` for an `after` of the wrong shape.
        """
        ...


class DuplicateKey(Exception):
    """An idempotency key is already taken; `notification_id` is its holder."""

    def __init__(self, notification_id: str) -> None:
        super().__init__(notification_id)
        self.notification_id = notification_id


@dataclasses.dataclass(slots=True)  # not frozen: built once per delivery, and frozen init costs 4x
class ReceiptDraft:
    """A receipt before the log numbers it (a value: never mutated)."""

    token: str
    platform: models.Platform
    user_id: str
    status: models.DeliveryStatus
    provider_message_id: str
    provider_status: int
    reason: str
    attempts: int
    token_removed: bool
    at: datetime


@dataclasses.dataclass(slots=True)  # not frozen: built once per delivery, and frozen init costs 4x
class LogEntry:
    """A numbered entry of the receipt log; `receipt` is None for a gap filler (a value: never mutated)."""

    seq: int
    nseq: int
    receipt: models.Receipt | None


class ReceiptStore(Protocol):
    """The append-only, numbered receipt log."""

    async def append(
        self, app_id: str, notification_id: str, drafts: Sequence[ReceiptDraft], expires_at: datetime
    ) -> list[models.Receipt]:
        """Numbers and stores receipts; returns only those that were new."""
        ...

    async def read_app(self, app_id: str, after_seq: int, limit: int) -> list[LogEntry]:
        """Entries of the app's log with seq > after_seq, in order."""
        ...

    async def read_notification(self, app_id: str, notification_id: str, after_nseq: int, limit: int) -> list[LogEntry]:
        """Entries of one notification with nseq > after_nseq, in order.

        At most `limit`; a page may end before `limit` at the end of the log as
        it stood when the adapter began reading it (the MongoDB adapter keeps
        a replay's cursor between pages on FerretDB), so ask again for later ones.
        """
        ...

    async def last_seq(self, app_id: str) -> int:
        """The app's newest allocated sequence number (0 when none)."""
        ...

    async def count_by_status(self, notification_id: str) -> dict[models.DeliveryStatus, int]:
        """How many receipts of each status the log holds for a notification."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookCursor:
    """How far one webhook endpoint has got along its app's receipt log."""

    seq: int
    """Every receipt of the app numbered up to `seq` has been acknowledged (a 2xx) by the endpoint."""
    batch_end: int = 0
    """The last seq of the batch being offered (0: none): a retry, even after a restart, offers the same range."""
    failures: int = 0
    """Failed attempts in a row (0 after a success)."""
    failing_since: datetime | None = None
    """When the first of those failures happened."""
    retry_at: datetime | None = None
    """No attempt before this time (backoff, or a paused endpoint); None: at once."""


class WebhookCursorStore(Protocol):
    """Per (app, endpoint) delivery cursors over the app's receipt log, each leased to one owner at a time."""

    async def lease(
        self, app_id: str, endpoint: str, owner: str, start_seq: int, now: datetime, lease_s: float
    ) -> WebhookCursor | None:
        """Takes or renews the lease on an endpoint's cursor; returns it, or None while another owner's lease runs.

        A cursor that does not exist yet is created at `start_seq`. The lease is
        free when it expired or when `owner` already holds it (an owner name is
        stable across a replica's restarts, so a restarted replica resumes at once).
        """
        ...

    async def save(
        self, app_id: str, endpoint: str, owner: str, cursor: WebhookCursor, now: datetime, lease_s: float
    ) -> bool:
        """Stores `cursor` and renews the lease, only while `owner` holds it; False (nothing written) when lost.

        A `seq` below the stored one is not written back: the stored seq stays.
        """
        ...

    async def release(self, app_id: str, endpoint: str, owner: str) -> None:
        """Gives the lease up (graceful stop), if `owner` holds it; the cursor stays."""
        ...


class Stores(Protocol):
    """One backend's stores, plus its lifecycle."""

    @property
    def tokens(self) -> TokenStore:
        """The token registry."""
        ...

    @property
    def notifications(self) -> NotificationStore:
        """The notification queue."""
        ...

    @property
    def receipts(self) -> ReceiptStore:
        """The receipt log."""
        ...

    @property
    def webhooks(self) -> WebhookCursorStore:
        """The webhook delivery cursors."""
        ...

    @property
    def needs_sweep(self) -> bool:
        """True when expired receipts go away only through `sweep_expired()` (no TTL indexes)."""
        ...

    async def prepare(self) -> None:
        """Creates indexes and adapts to the server (idempotent); the first call that reaches it."""
        ...

    async def sweep_expired(self, now: datetime) -> int:
        """Deletes receipts past retention; returns how many."""
        ...

    async def ping(self) -> bool:
        """True when the store answers."""
        ...

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Calls `callback` whenever a store call fails because the store is unreachable.

        Health uses it to turn NOT_SERVING at the first failed call rather than
        at the next probe.
        """
        ...

    def close(self) -> None:
        """Releases connections and threads."""
        ...
