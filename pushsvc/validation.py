"""Request limits and the checks that enforce them, on domain commands.

Each check returns every violation it finds, so a caller fixes a request in
one round trip. Field names are the request's protobuf field paths.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from pushsvc import locales, models, timezones
from pushsvc.channels import registry
from pushsvc.channels.base import check_opaque_token
from pushsvc.errors import FieldViolation, InvalidArgument
from pushsvc.limits import Limits

__all__ = ["Limits", "Violations"]

# Matched with fullmatch: `^…$` would let a trailing newline through.
_APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
# RFC 9110 token characters, lowercase only: HTTP/2 forbids uppercase field names.
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_FCM_RESERVED_PREFIXES = ("google.", "gcm.")
_FCM_RESERVED_KEYS = frozenset({"from", "message_type", "notification", "collapse_key", "priority", "ttl"})
FCM_MAX_TTL_S = 2_419_200
"""FCM accepts a ttl of 0 to 28 days."""


class Violations:
    """Collects field violations; `raise_if_any()` turns them into InvalidArgument."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        """Records one bad field."""
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        """Raises InvalidArgument naming every recorded field."""
        if self.items:
            raise InvalidArgument(self.items)


def _text(v: Violations, field: str, value: str, max_chars: int, *, required: bool = False) -> None:
    if required and not value:
        v.add(field, "must not be empty")
    elif len(value) > max_chars:
        v.add(field, f"must be at most {max_chars} characters (got {len(value)})")


def _identifier(v: Violations, field: str, value: str, max_chars: int, *, required: bool = False) -> None:
    # Identifiers are matched and stored verbatim; a control character (NUL,
    # newline) in one is a caller's bug, and some MongoDB-protocol servers
    # reject NUL in strings outright.
    _text(v, field, value, max_chars, required=required)
    if len(value) <= max_chars and _has_control(value):
        v.add(field, "must not contain control characters (such as NUL or a newline)")


def _has_control(value: str) -> bool:
    return not value.isprintable() and any(unicodedata.category(c) == "Cc" for c in value)


def check_app_id(v: Violations, app_id: str, limits: Limits, field: str = "app_id") -> None:
    """app_id: required, short, and made of URL-safe characters (the whole of it)."""
    _text(v, field, app_id, limits.max_id_chars, required=True)
    if app_id and len(app_id) <= limits.max_id_chars and not _APP_ID.fullmatch(app_id):
        v.add(field, "may contain only letters, digits and . _ : - and must start with a letter or digit")


# Bound once: an enum member's attribute lookup is a descriptor call, and these run per token.
_UNSPECIFIED = models.Platform.UNSPECIFIED
_TOKEN_CHECKS = {c.platform: c.check_token for c in registry.CHANNELS}
_PLATFORMS_RULE = f"must be {registry.PLATFORM_NAMES}"


def check_notification_id(v: Violations, notification_id: str, limits: Limits) -> None:
    """A notification id as a caller passes it back (optional where the request allows none)."""
    _identifier(v, "notification_id", notification_id, limits.max_id_chars)


def check_platform(v: Violations, platform: models.Platform, field: str) -> None:
    """A concrete platform is required."""
    if platform is _UNSPECIFIED:
        v.add(field, _PLATFORMS_RULE)


def check_token(v: Violations, token: str, platform: models.Platform, limits: Limits, field: str) -> None:
    """Tokens: required, and of the form their channel gives them (APNs hex, FCM printable, ...)."""
    if not token:
        v.add(field, "must not be empty")
        return
    # No channel (UNSPECIFIED): check_platform reports it, and the token is checked as an opaque one.
    problem = _TOKEN_CHECKS.get(platform, check_opaque_token)(token, limits)
    if problem:
        v.add(field, problem)


def validate_registration(reg: models.TokenRegistration, limits: Limits) -> None:
    """Validates a RegisterToken request; raises InvalidArgument."""
    v = Violations()
    check_app_id(v, reg.app_id, limits)
    check_registration(v, reg, limits)
    v.raise_if_any()


def check_registration(v: Violations, reg: models.TokenRegistration, limits: Limits) -> None:
    """Checks a registration's fields but its app_id (a RegisterTokens batch checks that once)."""
    check_platform(v, reg.platform, "platform")
    check_token(v, reg.token, reg.platform, limits, "token")
    ids, attrs = limits.max_id_chars, limits.max_attr_chars
    # The common case in a few C calls (a bulk import checks a million of
    # these): every optional field short enough and printable, so free of
    # control characters. Anything else takes the field-by-field checks.
    values = models.token_attributes(reg)
    if not (
        len(reg.user_id) <= ids and len(reg.device_id) <= ids and max(map(len, values)) <= attrs
        and (reg.user_id + reg.device_id + "".join(values)).isprintable()
    ):
        _identifier(v, "user_id", reg.user_id, ids)
        _identifier(v, "device_id", reg.device_id, ids)
        for name, value in zip(models.TOKEN_ATTRIBUTES, values, strict=True):
            _identifier(v, name, value, attrs)
    # A zone is checked against the tz database (memoized per name): a local-time
    # send could not tell when a made-up zone's time comes.
    if reg.timezone and len(reg.timezone) <= attrs and reg.timezone.isprintable() and not timezones.known(reg.timezone):
        v.add("timezone", f"must be an IANA time zone name such as Europe/Paris (got {reg.timezone[:64]!r})")
    topics = reg.topics
    if len(topics) > limits.max_topics_per_token:
        v.add("topics", f"at most {limits.max_topics_per_token} topics per token (got {len(topics)})")
    elif topics and not (
        all(0 < len(t) <= limits.max_topic_chars for t in topics) and "".join(topics).isprintable()
    ):
        for i, topic in enumerate(topics):
            _identifier(v, f"topics[{i}]", topic, limits.max_topic_chars, required=True)


def validate_batch(app_id: str, items: int, limits: Limits) -> None:
    """Validates a RegisterTokens request as a whole (its items are checked one by one); raises InvalidArgument."""
    v = Violations()
    check_app_id(v, app_id, limits)
    if not items:
        v.add("items", "must list at least one token")
    elif items > limits.max_registrations_per_batch:
        v.add("items", f"at most {limits.max_registrations_per_batch} tokens per request (got {items})")
    v.raise_if_any()


def validate_token_ref(app_id: str, platform: models.Platform, token: str, limits: Limits) -> None:
    """Validates an UnregisterToken request; raises InvalidArgument."""
    v = Violations()
    check_app_id(v, app_id, limits)
    check_platform(v, platform, "platform")
    check_token(v, token, platform, limits, "token")
    v.raise_if_any()


def validate_notification_ref(app_id: str, notification_id: str, limits: Limits) -> None:
    """Validates a request that names one notification (CancelNotification); raises InvalidArgument."""
    v = Violations()
    check_app_id(v, app_id, limits)
    _identifier(v, "notification_id", notification_id, limits.max_id_chars, required=True)
    v.raise_if_any()


def page_size(v: Violations, size: int, limits: Limits) -> int:
    """A listing's page size: 0 means the default, more than the maximum is the maximum."""
    if size < 0:
        v.add("page_size", "must not be negative")
        return 0
    return min(size or limits.default_page_size, limits.max_page_size)


def validate_token_filter(where: models.TokenFilter, limits: Limits) -> Violations:
    """Checks ListTokens' filters; returns the violations so far (the caller adds the page's)."""
    v = Violations()
    check_app_id(v, where.app_id, limits)
    _identifier(v, "user_id", where.user_id, limits.max_id_chars)
    _identifier(v, "topic", where.topic, limits.max_topic_chars)
    if where.platform is models.Platform.UNSPECIFIED:
        v.add("platform", f"must be PLATFORM_UNSPECIFIED (any), {registry.PLATFORM_NAMES}")
    if (
        where.last_seen_before is not None and where.last_seen_after is not None
        and where.last_seen_before <= where.last_seen_after
    ):
        v.add("last_seen_before", "must be later than last_seen_after")
    return v


def validate_notification_filter(where: models.NotificationFilter, limits: Limits) -> Violations:
    """Checks ListNotifications' filters; returns the violations so far (the caller adds the page's)."""
    v = Violations()
    check_app_id(v, where.app_id, limits)
    if where.created_before is not None and where.created_after is not None and where.created_before <= where.created_after:
        v.add("created_before", "must be later than created_after")
    return v


def validate_prune(cmd: models.PruneCommand, limits: Limits) -> None:
    """Validates a Prune request; raises InvalidArgument."""
    v = Violations()
    check_app_id(v, cmd.app_id, limits)
    if cmd.stale_after_s is not None and cmd.stale_after_s <= 0:
        v.add("stale_after", "must be a positive duration")
    elif cmd.stale_after_s is not None and cmd.stale_after_s > limits.max_stale_after_s:
        v.add("stale_after", f"must be at most {limits.max_stale_after_s / 86400:.0f} days")
    if models.Platform.UNSPECIFIED in cmd.platforms:
        v.add("platforms", f"must contain only {registry.PLATFORM_NAMES}")
    v.raise_if_any()


def validate_send(cmd: models.SendCommand, send_at_ahead_s: float | None, limits: Limits) -> None:
    """Validates a Send request's structure (payload sizes are checked after rendering)."""
    v = Violations()
    check_app_id(v, cmd.app_id, limits)
    _identifier(v, "idempotency_key", cmd.idempotency_key, limits.max_idempotency_key_chars)
    _check_target(v, cmd.target, limits)
    _check_message(v, cmd.message, limits)
    if send_at_ahead_s is not None and send_at_ahead_s > limits.max_schedule_ahead_s:
        v.add("send_at", f"must be at most {limits.max_schedule_ahead_s / 86400:.0f} days ahead")
    if cmd.local_time is not None:
        _check_local_time(v, cmd.local_time, limits)
    if cmd.max_per_second < 0:
        v.add("max_per_second", "must be positive, or 0 for the app's default")
    v.raise_if_any()


def _check_local_time(v: Violations, at: models.LocalTime, limits: Limits) -> None:
    if not 0 <= at.hour <= 23:
        v.add("local_time.hour", f"must be 0-23 (got {at.hour})")
    if not 0 <= at.minute <= 59:
        v.add("local_time.minute", f"must be 0-59 (got {at.minute})")
    name = at.fallback_timezone
    if len(name) > limits.max_attr_chars:
        v.add("local_time.fallback_timezone", f"must be at most {limits.max_attr_chars} characters (got {len(name)})")
    elif name and not timezones.known(name):
        v.add("local_time.fallback_timezone", f"must be empty (UTC) or an IANA time zone name such as Europe/Paris (got {name[:64]!r})")
    if at.if_passed is None:
        v.add("local_time.if_passed", "must be LOCAL_TIME_PASSED_UNSPECIFIED, LOCAL_TIME_PASSED_NEXT_DAY or LOCAL_TIME_PASSED_SEND_NOW")


def _check_target(v: Violations, target: models.Target, limits: Limits) -> None:
    if models.Platform.UNSPECIFIED in target.platforms:
        v.add("target.platforms", f"must contain only {registry.PLATFORM_NAMES}")
    kind = target.kind
    if not kind:
        v.add("target", "set one of devices, users, topic or all")
    elif kind == "devices":
        if not target.devices:
            v.add("target.devices.devices", "must list at least one device")
        elif len(target.devices) > limits.max_devices_per_send:
            v.add(
                "target.devices.devices",
                f"at most {limits.max_devices_per_send} devices per request (got {len(target.devices)})",
            )
            return
        for i, device in enumerate(target.devices):
            check_platform(v, device.platform, f"target.devices.devices[{i}].platform")
            check_token(v, device.token, device.platform, limits, f"target.devices.devices[{i}].token")
            if len(v.items) > 100:
                return
    elif kind == "users":
        if not target.user_ids:
            v.add("target.users.user_ids", "must list at least one user id")
        elif len(target.user_ids) > limits.max_users_per_send:
            v.add(
                "target.users.user_ids",
                f"at most {limits.max_users_per_send} users per request (got {len(target.user_ids)})",
            )
            return
        for i, uid in enumerate(target.user_ids):
            _identifier(v, f"target.users.user_ids[{i}]", uid, limits.max_id_chars, required=True)
            if len(v.items) > 100:
                return
    elif kind == "topic":
        _identifier(v, "target.topic", target.topic, limits.max_topic_chars, required=True)
    elif kind == "all" and not target.all:
        v.add("target.all", "must be true when set")


def _check_message(v: Violations, m: models.Message, limits: Limits) -> None:
    for name in ("title", "body", "subtitle", "image_url", "sound", "category", "thread_id"):
        _text(v, f"message.{name}", getattr(m, name), limits.max_text_chars)
    if len(m.collapse_key.encode()) > limits.max_collapse_key_bytes:
        v.add("message.collapse_key", f"must be at most {limits.max_collapse_key_bytes} bytes")
    elif m.collapse_key and not _header_value_ok(m.collapse_key):
        v.add("message.collapse_key", _HEADER_VALUE_RULE)
    _text(v, "message.apns.topic", m.apns.topic, limits.max_topic_chars)
    if m.apns.topic and len(m.apns.topic) <= limits.max_topic_chars and not _header_value_ok(m.apns.topic):
        v.add("message.apns.topic", _HEADER_VALUE_RULE)
    if m.ttl_s is not None:
        if m.ttl_s < 0:
            v.add("message.ttl", "must not be negative")
        elif m.ttl_s > FCM_MAX_TTL_S:
            v.add("message.ttl", f"must be at most {FCM_MAX_TTL_S} seconds (28 days)")
    if len(m.data) > limits.max_data_entries:
        v.add("message.data", f"at most {limits.max_data_entries} entries (got {len(m.data)})")
    for key in m.data if len(m.data) <= limits.max_data_entries else ():
        if not key:
            v.add("message.data", "keys must not be empty")
        elif key in _FCM_RESERVED_KEYS or key.startswith(_FCM_RESERVED_PREFIXES):
            v.add(f"message.data[{key[:64]}]", "is a key reserved by FCM")
        elif key == "aps":
            v.add("message.data[aps]", "is the APNs payload's own key; use message fields or apns.payload")
        elif key == locales.VARIANT_KEY:
            v.add(f"message.data[{key}]", "is pushsvc's own key: it names the localized variant a push carries")
    if len(m.apns.headers) > limits.max_apns_headers:
        v.add("message.apns.headers", f"at most {limits.max_apns_headers} headers")
    for name, value in m.apns.headers.items() if len(m.apns.headers) <= limits.max_apns_headers else ():
        field = f"message.apns.headers[{name[:64]}]"
        if not name.lower().startswith("apns-"):
            v.add(field, "only apns-* headers may be set")
        elif len(name) > limits.max_attr_chars or not _HEADER_NAME.fullmatch(name.lower()):
            v.add(field, f"a header name is at most {limits.max_attr_chars} letters, digits and - (got {name[:64]!r})")
        elif len(value) > limits.max_text_chars or not _header_value_ok(value):
            v.add(field, f"a header value is at most {limits.max_text_chars} characters; " + _HEADER_VALUE_RULE)
    for field, payload in (
        ("message.apns.payload", m.apns.payload),
        ("message.fcm.android", m.fcm.android),
        ("message.fcm.apns", m.fcm.apns),
        ("message.fcm.webpush", m.fcm.webpush),
    ):
        problem = _payload_problem(payload, limits.max_payload_depth)
        if problem:
            v.add(field, problem)
    if m.badge is not None and m.badge < 0:
        v.add("message.badge", "must not be negative")
    for name in ("title_loc_key", "body_loc_key"):
        _text(v, f"message.{name}", getattr(m, name), limits.max_attr_chars * 4)
    for name in ("title_loc_args", "body_loc_args"):
        args = getattr(m, name)
        if len(args) > limits.max_data_entries:
            v.add(f"message.{name}", f"at most {limits.max_data_entries} arguments (got {len(args)})")
        for i, arg in enumerate(args[: limits.max_data_entries]):
            _text(v, f"message.{name}[{i}]", arg, limits.max_text_chars)
    if len(m.localized) > limits.max_localized_variants:
        v.add("message.localized", f"at most {limits.max_localized_variants} variants (got {len(m.localized)})")
    seen: dict[str, str] = {}
    for tag, content in m.localized.items() if len(m.localized) <= limits.max_localized_variants else ():
        field = f"message.localized[{tag[:40]}]"
        language = locales.canonical(tag)
        if language is None:
            v.add(field, "is not a BCP 47 language tag (such as en, pt-BR or zh-Hant-TW)")
        elif language in seen:
            v.add(field, f"names the same language as {seen[language]!r}")
        else:
            seen[language] = tag
        for name in ("title", "body", "subtitle", "image_url"):
            _text(v, f"{field}.{name}", getattr(content, name), limits.max_text_chars)
    if not (m.has_alert or m.data or m.badge is not None or m.sound or m.content_available or m.apns.payload
            or m.fcm.android or m.fcm.apns or m.fcm.webpush):
        v.add("message", "is empty: set a title, body, data, badge, sound, content_available or a custom payload")


_HEADER_VALUE_RULE = "must not contain control characters or begin or end with whitespace (it becomes an HTTP/2 header)"


def _header_value_ok(value: str) -> bool:
    # RFC 9113 §8.2.1 forbids NUL, CR and LF and surrounding whitespace; other
    # control characters are rejected too, as no APNs header needs them.
    return value == value.strip(" \t") and not _has_control(value.replace("\t", " "))


def _payload_problem(payload: Mapping[str, Any], max_depth: int) -> str:
    """Why a custom JSON payload cannot be sent, or "" when it can.

    JSON has no NaN or Infinity, and APNs and FCM reject them; an unbounded
    nesting depth would make every later rendering step recursive without
    limit. The walk is iterative so the check itself cannot overflow.
    """
    stack: list[tuple[Any, str, int]] = [(payload, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"holds {value} at {path.lstrip('.') or 'the top'}; JSON numbers must be finite"
        if not isinstance(value, Mapping | list | tuple):
            continue
        if depth > max_depth:
            return f"nests objects and arrays more than {max_depth} levels deep (at {path.lstrip('.')[:200]})"
        if isinstance(value, Mapping):
            stack.extend((child, f"{path}.{key[:64]}", depth + 1) for key, child in value.items())
        else:
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(value))
    return ""
