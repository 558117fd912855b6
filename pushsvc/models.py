"""Domain values shared by every layer: tokens, messages, targets, notifications, receipts.

Nothing here imports gRPC, protobuf, httpx or pymongo. The enums mirror the
proto enums by *name* so the rpc layer can convert by name; their values are
the strings stored in MongoDB.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pushsvc.errors import FieldViolation

# Platform is push.proto's enum, generated without protobuf (scripts/gen), so a
# new channel's platform needs no edit here; every layer names it models.Platform.
from pushsvc.v1.platform import Platform as Platform

PLATFORMS = tuple(p for p in Platform if p is not Platform.UNSPECIFIED)
"""The real platforms, for iteration."""

BUCKETS = 1024
"""Tokens hash into this many buckets; the partitions of a fan-out own bucket ranges."""


def token_bucket(token: str) -> int:
    """The stable bucket of a token, in [0, BUCKETS): how fan-outs are split between replicas."""
    return zlib.crc32(token.encode()) % BUCKETS


class ApnsEnvironment(enum.Enum):
    """Which APNs host serves a token."""

    PRODUCTION = "production"
    SANDBOX = "sandbox"


class Priority(enum.Enum):
    """Delivery priority; UNSPECIFIED lets the push type decide."""

    UNSPECIFIED = "unspecified"
    HIGH = "high"
    NORMAL = "normal"


class PushType(enum.Enum):
    """APNs push types (`apns-push-type`); UNSPECIFIED is inferred from the content."""

    UNSPECIFIED = "unspecified"
    ALERT = "alert"
    BACKGROUND = "background"
    VOIP = "voip"
    LIVEACTIVITY = "liveactivity"
    COMPLICATION = "complication"
    FILEPROVIDER = "fileprovider"
    MDM = "mdm"
    LOCATION = "location"
    PUSHTOTALK = "pushtotalk"
    WIDGETS = "widgets"
    CONTROLS = "controls"


class NotificationState(enum.Enum):
    """Lifecycle of a notification."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once no more receipts will be produced."""
        return self in (
            NotificationState.COMPLETED,
            NotificationState.FAILED,
            NotificationState.CANCELLED,
        )


class DeliveryStatus(enum.Enum):
    """What became of one target token."""

    DELIVERED = "delivered"
    FAILED = "failed"
    TOKEN_INVALID = "token_invalid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TOKEN_ATTRIBUTES: tuple[str, ...] = ("locale", "timezone", "app_version")
"""A token's descriptive strings: kept and returned as given, never a query's key, each at most
`Limits.max_attr_chars` printable characters. They have the same names in `TokenRegistration`,
`DeviceToken` and the proto's token messages, and every converter, check and store codec derives
them from this list (`token_attributes`). A new one is declared here and in those two classes, in
protos/ (RegisterTokenRequest, TokenRegistration, Token), and as a column in a new PostgreSQL
migration (storage/postgres/schema.py, which also redefines register_token with its parameter)."""

token_attributes: Any = operator.attrgetter(*TOKEN_ATTRIBUTES)
"""`TOKEN_ATTRIBUTES`' values of a registration, a stored token or a proto message, as a tuple in that order."""


@dataclasses.dataclass(slots=True)  # not frozen: RegisterTokens builds a million of these, and frozen init costs 3x
class TokenRegistration:
    """A RegisterToken request in domain form (a value: never mutated)."""

    app_id: str
    token: str
    platform: Platform
    user_id: str = ""
    topics: tuple[str, ...] = ()
    device_id: str = ""
    locale: str = ""
    timezone: str = ""
    app_version: str = ""
    apns_environment: ApnsEnvironment = ApnsEnvironment.PRODUCTION


@dataclasses.dataclass(slots=True)  # not frozen: one per item of every batch
class RegistrationResult:
    """What RegisterTokens did with one item of its batch (a value: never mutated)."""

    index: int
    """The item's position in the batch."""
    created: bool = False
    """True when the token was new; False when it was refreshed, or when the item is invalid."""
    violations: tuple[FieldViolation, ...] = ()
    """Why the item was not registered (named by their path in the request); empty when it was."""

    @property
    def registered(self) -> bool:
        """True when the item was stored."""
        return not self.violations


@dataclasses.dataclass(slots=True)  # not frozen: every RegisterToken, GetToken and ListTokens answer builds these, and frozen init costs 2.5x
class DeviceToken:
    """A registered token as stored in the registry (a value: never mutated)."""

    app_id: str
    token: str
    platform: Platform
    user_id: str
    topics: tuple[str, ...]
    device_id: str
    locale: str
    timezone: str
    app_version: str
    apns_environment: ApnsEnvironment
    created_at: datetime
    last_seen_at: datetime

    @classmethod
    def registered(cls, reg: TokenRegistration, *, created_at: datetime, last_seen_at: datetime) -> DeviceToken:
        """The token `reg` stored: its fields, with the store's two times."""
        return cls(
            app_id=reg.app_id, token=reg.token, platform=reg.platform, user_id=reg.user_id, topics=tuple(reg.topics),
            device_id=reg.device_id, apns_environment=reg.apns_environment, created_at=created_at,
            last_seen_at=last_seen_at, **dict(zip(TOKEN_ATTRIBUTES, token_attributes(reg), strict=True)),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Device:
    """A directly addressed device; it need not be registered."""

    token: str
    platform: Platform
    apns_environment: ApnsEnvironment = ApnsEnvironment.PRODUCTION


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Who a notification goes to: `kind` says which of the selectors is set."""

    kind: str
    """"devices", "users", "topic", "all", or "" when the request set none."""
    devices: tuple[Device, ...] = ()
    user_ids: tuple[str, ...] = ()
    topic: str = ""
    all: bool = False
    platforms: frozenset[Platform] = frozenset()

    def selects(self, platform: Platform) -> bool:
        """True when the platform filter lets this platform through."""
        return not self.platforms or platform in self.platforms


@dataclasses.dataclass(frozen=True, slots=True)
class ApnsOptions:
    """APNs escape hatch: payload merged into the JSON, extra headers, topic override."""

    payload: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    topic: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class FcmOptions:
    """FCM escape hatch: blocks merged into the rendered FCM message."""

    android: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    apns: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    webpush: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    analytics_label: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class LocalizedContent:
    """One language's content of a Message; an empty field falls back to the message's own."""

    title: str = ""
    subtitle: str = ""
    body: str = ""
    image_url: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A platform-neutral notification; providers render it once per notification."""

    title: str = ""
    body: str = ""
    subtitle: str = ""
    image_url: str = ""
    sound: str = ""
    badge: int | None = None
    data: Mapping[str, str] = dataclasses.field(default_factory=dict)
    category: str = ""
    thread_id: str = ""
    collapse_key: str = ""
    priority: Priority = Priority.UNSPECIFIED
    ttl_s: float | None = None
    push_type: PushType = PushType.UNSPECIFIED
    content_available: bool = False
    mutable_content: bool = False
    apns: ApnsOptions = dataclasses.field(default_factory=ApnsOptions)
    fcm: FcmOptions = dataclasses.field(default_factory=FcmOptions)
    localized: Mapping[str, LocalizedContent] = dataclasses.field(default_factory=dict)
    """BCP 47 tag → that language's content (see `pushsvc.locales` for which device gets which)."""
    title_loc_key: str = ""
    """Device-side localization: a key of the app's own strings, passed through to the providers."""
    title_loc_args: tuple[str, ...] = ()
    body_loc_key: str = ""
    body_loc_args: tuple[str, ...] = ()

    def variant(self, tag: str) -> Message:
        """This message with the content of its `tag` variant in place of its own, and no variants."""
        content = self.localized[tag]
        return dataclasses.replace(
            self,
            title=content.title or self.title,
            subtitle=content.subtitle or self.subtitle,
            body=content.body or self.body,
            image_url=content.image_url or self.image_url,
            localized={},
        )

    @property
    def has_alert(self) -> bool:
        """True when the message has something a person would see."""
        return bool(self.title or self.body or self.subtitle or self.title_loc_key or self.body_loc_key)

    def effective_push_type(self) -> PushType:
        """The push type, inferred from the content when unspecified."""
        if self.push_type is not PushType.UNSPECIFIED:
            return self.push_type
        return PushType.ALERT if self.has_alert or self.sound or self.badge is not None else PushType.BACKGROUND


class LocalTimePassed(enum.Enum):
    """What a local-time send does in a zone where its time has already passed (see `LocalTime`)."""

    NEXT_DAY = "next_day"
    """That wall-clock time on the next local day."""
    SEND_NOW = "send_now"
    """At the reference instant."""


@dataclasses.dataclass(frozen=True, slots=True)
class LocalTime:
    """Deliver at this wall-clock time in each token's own zone (`pushsvc.dispatch.localtime` has the rule)."""

    hour: int
    minute: int
    fallback_timezone: str = ""
    """The zone of tokens with none (or with one no longer known) and of unregistered devices; "" is UTC."""
    if_passed: LocalTimePassed | None = LocalTimePassed.NEXT_DAY
    """None: a value this server does not know (validation rejects it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SendCommand:
    """A Send request in domain form."""

    app_id: str
    target: Target
    message: Message
    idempotency_key: str = ""
    validate_only: bool = False
    send_at: datetime | None = None
    local_time: LocalTime | None = None
    """None: everyone at once (or at send_at)."""
    max_per_second: int = 0
    """Most targets sent per second across every replica; 0 takes the app's default (negative is invalid)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    """What Send returns once the notification is durably stored."""

    notification_id: str
    duplicate: bool
    targeted: int


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationView:
    """A notification's state and counters (GetNotification)."""

    notification_id: str
    app_id: str
    state: NotificationState
    targeted: int
    delivered: int
    failed: int
    invalid_tokens: int
    expired: int
    created_at: datetime
    updated_at: datetime
    send_at: datetime | None = None
    completed_at: datetime | None = None
    error: str = ""
    idempotency_key: str = ""
    vanished: int = 0
    """Targets counted by Send that were no longer registered when the fan-out reached them."""
    cancelled: int = 0
    """Targets not sent because the notification was cancelled."""
    cancel_requested_at: datetime | None = None
    """When CancelNotification was accepted; the state stays unfinished until every target has its receipt."""
    waiting: int = 0
    """Targets of a local-time send whose partitions are not due yet and have not started (GetNotification fills it)."""
    max_per_second: int = 0
    """The rate its fan-out is held to, in targets per second across every replica; 0: unthrottled."""

    @property
    def resolved(self) -> int:
        """Targets that have a receipt."""
        return self.delivered + self.failed + self.invalid_tokens + self.expired + self.cancelled

    @property
    def pending(self) -> int:
        """Targets that have no receipt yet (and did not vanish)."""
        return max(0, self.targeted - self.resolved - self.vanished)


@dataclasses.dataclass(slots=True)  # not frozen: built once per delivery, and frozen init costs 4x
class Receipt:
    """The delivery receipt of one token (a value: never mutated)."""

    cursor: str
    notification_id: str
    app_id: str
    token: str
    platform: Platform
    user_id: str
    status: DeliveryStatus
    provider_message_id: str
    provider_status: int
    reason: str
    attempts: int
    token_removed: bool
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class PruneCommand:
    """A Prune request in domain form; stale_after_s None means the configured default."""

    app_id: str
    stale_after_s: float | None
    platforms: frozenset[Platform]
    dry_run: bool



@dataclasses.dataclass(frozen=True, slots=True)
class TokenFilter:
    """ListTokens' filters in domain form; an empty or None field does not filter."""

    app_id: str
    user_id: str = ""
    topic: str = ""
    platform: Platform | None = None
    last_seen_before: datetime | None = None
    """Only tokens last seen strictly before this."""
    last_seen_after: datetime | None = None
    """Only tokens last seen at or after this."""


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationFilter:
    """ListNotifications' filters in domain form; a None field does not filter."""

    app_id: str
    state: NotificationState | None = None
    created_after: datetime | None = None
    """Only notifications created at or after this."""
    created_before: datetime | None = None
    """Only notifications created strictly before this."""
