"""Rows ⇄ domain values: the only place that knows the PostgreSQL columns' shapes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pushsvc import models
from pushsvc.storage.base import (
    BadCursor,
    Lane,
    LogEntry,
    NotificationRecord,
    Partition,
    PartitionStatus,
    TargetQuery,
    TargetToken,
)

COUNTER_COLUMNS: Mapping[models.DeliveryStatus, str] = {
    models.DeliveryStatus.DELIVERED: "delivered",
    models.DeliveryStatus.FAILED: "failed",
    models.DeliveryStatus.TOKEN_INVALID: "invalid_tokens",
    models.DeliveryStatus.EXPIRED: "expired",
    models.DeliveryStatus.CANCELLED: "cancelled",
}
"""The notification's counter column of each receipt status."""

UNFINISHED = [s.value for s in models.NotificationState if not s.finished]

_PLATFORM = {p.value: p for p in models.Platform}
_ENV = {e.value: e for e in models.ApnsEnvironment}
_STATUS = {s.value: s for s in models.DeliveryStatus}

ATTRIBUTE_COLUMNS = ", ".join(models.TOKEN_ATTRIBUTES)
"""The token's attributes: a text column each, of the same name."""
TOKEN_COLUMNS = (
    f"app_id, bucket, platform, token, user_id, topics, device_id, {ATTRIBUTE_COLUMNS}, apns_environment, created_at, last_seen_at"
)
INPUT_COLUMNS = ("app_id", "bucket", "platform", "token", "user_id", "device_id", *models.TOKEN_ATTRIBUTES, "apns_environment")
"""A registration's values as the statements take them (`token_arrays`), followed by its topics and the time;
the schema's register_token() takes its parameters in this order too."""
TARGET_COLUMNS = "bucket, platform, token, user_id, apns_environment, last_seen_at, locale, timezone"


def token_values(r: models.TokenRegistration) -> tuple[Any, ...]:
    """A registration's values in `INPUT_COLUMNS` order."""
    return (
        r.app_id, models.token_bucket(r.token), r.platform.value, r.token, r.user_id, r.device_id,
        *models.token_attributes(r), r.apns_environment.value,
    )


def token_arrays(regs: Iterable[models.TokenRegistration]) -> list[list[Any]]:
    """Column arrays of registrations, for `unnest`, in `INPUT_COLUMNS` order."""
    cols: list[list[Any]] = [[] for _ in INPUT_COLUMNS]
    for r in regs:
        for col, value in zip(cols, token_values(r), strict=True):
            col.append(value)
    return cols


def device_token(row: Mapping[str, Any]) -> models.DeviceToken:
    """A stored token."""
    return models.DeviceToken(
        app_id=row["app_id"],
        token=row["token"],
        platform=_PLATFORM[row["platform"]],
        user_id=row["user_id"],
        topics=tuple(row["topics"]),
        device_id=row["device_id"],
        **{name: row[name] for name in models.TOKEN_ATTRIBUTES},
        apns_environment=_ENV[row["apns_environment"]],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
    )


def target(row: Sequence[Any]) -> TargetToken:
    """A stored token as a fan-out target (row in `TARGET_COLUMNS` order); its ref is (bucket, platform, token)."""
    bucket, platform, token, user_id, environment, last_seen_at, locale, timezone = row
    return TargetToken(
        ref=(bucket, platform, token), token=token, platform=_PLATFORM[platform], user_id=user_id,
        apns_environment=_ENV[environment], registered=True, last_seen_at=last_seen_at, locale=locale,
        timezone=timezone,
    )


def ref_bound(after: Any) -> tuple[int, str, str] | None:
    """A checkpointed ref back as a tuple (it was stored as a JSON array)."""
    if after is None:
        return None
    bucket, platform, token = after
    return int(bucket), str(platform), str(token)


def platform_values(platforms: frozenset[models.Platform]) -> list[str] | None:
    """A platform filter as an array for `= ANY`, or None for no filter."""
    return sorted(p.value for p in platforms) or None


# ---------------------------------------------------------------- notifications


def query_json(query: TargetQuery | None) -> dict[str, Any] | None:
    if query is None:
        return None
    return {
        "kind": query.kind,
        "user_ids": list(query.user_ids),
        "topic": query.topic,
        "platforms": sorted(p.value for p in query.platforms),
    }


def query_from_json(q: Mapping[str, Any] | None) -> TargetQuery | None:
    if q is None:
        return None
    return TargetQuery(
        kind=q["kind"],
        user_ids=tuple(q.get("user_ids", ())),
        topic=q.get("topic", ""),
        platforms=frozenset(_PLATFORM[p] for p in q.get("platforms", ())),
    )


def view(row: Mapping[str, Any]) -> models.NotificationView:
    """A notification's state and counters."""
    return models.NotificationView(
        notification_id=row["notification_id"],
        app_id=row["app_id"],
        state=models.NotificationState(row["state"]),
        targeted=int(row["targeted"]),
        delivered=int(row["delivered"]),
        failed=int(row["failed"]),
        invalid_tokens=int(row["invalid_tokens"]),
        expired=int(row["expired"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        send_at=row["send_at"],
        completed_at=row["completed_at"],
        error=row["error"],
        idempotency_key=row["idempotency_key"],
        vanished=int(row["vanished"]),
        cancelled=int(row["cancelled"]),
        cancel_requested_at=row["cancel_requested_at"],
        max_per_second=int(row["max_per_second"]),
    )


def notification_position(v: models.NotificationView) -> tuple[str, ...]:
    """The `after` of a listed notification: (created_at, notification_id)."""
    return (v.created_at.isoformat(), v.notification_id)


def token_position(t: models.DeviceToken) -> tuple[str, ...]:
    """The `after` of a listed token: (platform, token); the bucket follows from the token."""
    return (t.platform.value, t.token)


def token_bound(after: tuple[str, ...]) -> tuple[int, str, str]:
    """`token_position` read back as the (bucket, platform, token) key; raises BadCursor."""
    if len(after) != 2 or after[0] not in _REAL_PLATFORMS:
        raise BadCursor("not a token listing position")
    return models.token_bucket(after[1]), after[0], after[1]


_REAL_PLATFORMS = frozenset(p.value for p in models.PLATFORMS)


def record(row: Mapping[str, Any]) -> NotificationRecord:
    """A stored notification with what the dispatcher needs to send it."""
    return NotificationRecord(
        view=view(row),
        query=query_from_json(row["query"]),
        rendered={_PLATFORM[k]: v for k, v in row["rendered"].items()},
        localized={tag: {_PLATFORM[k]: v for k, v in bodies.items()} for tag, bodies in (row["localized"] or {}).items()},
        expires_at=row["expires_at"],
        receipt_seq=int(row["receipt_seq"]),
        traceparent=row["traceparent"],
    )


def counter_updates(counts: Mapping[models.DeliveryStatus, int]) -> list[int]:
    """Counter increments in `COUNTER_COLUMNS` order."""
    return [int(counts.get(status, 0)) for status in COUNTER_COLUMNS]


def devices_json(devices: Sequence[models.Device]) -> list[dict[str, str]]:
    return [{"token": d.token, "platform": d.platform.value, "apns_environment": d.apns_environment.value} for d in devices]


def partition(row: Mapping[str, Any]) -> Partition:
    """A leased partition."""
    checkpoint = row["checkpoint"]
    return Partition(
        partition_id=row["partition_id"],
        notification_id=row["notification_id"],
        app_id=row["app_id"],
        index=int(row["part_index"]),
        buckets=(int(row["bucket_lo"]), int(row["bucket_hi"])),
        devices=tuple(
            models.Device(d["token"], _PLATFORM[d["platform"]], _ENV[d.get("apns_environment", "production")])
            for d in row["devices"]
        ),
        checkpoint=tuple(checkpoint) if isinstance(checkpoint, list) else checkpoint,
        created_at=row["created_at"],
        lane=Lane(row["lane"]),
        timezones=None if row["timezones"] is None else frozenset(row["timezones"]),
    )


def partition_status(row: Mapping[str, Any]) -> PartitionStatus:
    return PartitionStatus(
        partition_id=row["partition_id"],
        index=int(row["part_index"]),
        done=bool(row["done"]),
        owner=row["owner"],
        finished_by=row["finished_by"],
        claims=int(row["claims"]),
        targets=int(row["targets"]),
        # Unowned and unclaimed, lease_expires_at is when it becomes runnable.
        not_before=row["lease_expires_at"],
    )


# ---------------------------------------------------------------- receipts

RECEIPT_COLUMNS = (
    "seq, nseq, filler, notification_id, app_id, token, platform, user_id, status, provider_message_id, "
    "provider_status, reason, attempts, token_removed, at"
)


def entry(row: Sequence[Any]) -> LogEntry:
    """A log entry (row in `RECEIPT_COLUMNS` order): a receipt, or a filler."""
    if row[2]:
        return LogEntry(row[0], row[1], None)
    return LogEntry(row[0], row[1], receipt_of(row))


def receipt_of(row: Sequence[Any]) -> models.Receipt:
    """A stored receipt (row in `RECEIPT_COLUMNS` order); its cursor is "<seq>.<nseq>"."""
    return models.Receipt(
        f"{row[0]}.{row[1]}", row[3], row[4], row[5], _PLATFORM[row[6]], row[7], _STATUS[row[8]], row[9],
        row[10], row[11], row[12], row[13], row[14],
    )


def status_of(value: str) -> models.DeliveryStatus:
    return _STATUS[value]
