"""Domain values ⇄ MongoDB documents. Every field name of the schema is spelled here or in `schema`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pushsvc import models
from pushsvc.storage.base import (
    BadCursor,
    Lane,
    LogEntry,
    NotificationDraft,
    NotificationRecord,
    Partition,
    PartitionPlan,
    PartitionStatus,
    ReceiptDraft,
    TargetQuery,
    TargetToken,
    WebhookCursor,
    parse_notification_position,
)
from pushsvc.storage.mongo import schema

COUNTER_FIELDS: Mapping[models.DeliveryStatus, str] = {
    models.DeliveryStatus.DELIVERED: "delivered",
    models.DeliveryStatus.FAILED: "failed",
    models.DeliveryStatus.TOKEN_INVALID: "invalid_tokens",
    models.DeliveryStatus.EXPIRED: "expired",
    models.DeliveryStatus.CANCELLED: "cancelled",
}
"""The notification's counter field of each receipt status."""

UNFINISHED = [s.value for s in models.NotificationState if not s.finished]

TALLY = "logged"
"""The notification's subdocument counting the receipts its log holds, per counter field."""


def tally_inc(written: Sequence[models.Receipt]) -> dict[str, int]:
    """`$inc` of the receipt tally for newly written receipts."""
    inc: dict[str, int] = {}
    for r in written:
        key = f"{TALLY}.{COUNTER_FIELDS[r.status]}"
        inc[key] = inc.get(key, 0) + 1
    return inc


def aware(dt: datetime | None) -> datetime | None:
    """Some backends return naive datetimes; they are UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def must(dt: datetime | None) -> datetime:
    """`aware()` for a field that is always set."""
    value = aware(dt)
    assert value is not None
    return value


# ---------------------------------------------------------------- tokens


def token_profile(reg: models.TokenRegistration) -> dict[str, Any]:
    """The fields a registration may change."""
    return {
        "user_id": reg.user_id,
        "topics": list(reg.topics),
        "device_id": reg.device_id,
        "apns_environment": reg.apns_environment.value,
        **dict(zip(models.TOKEN_ATTRIBUTES, models.token_attributes(reg), strict=True)),
    }


def token_identity(reg: models.TokenRegistration) -> dict[str, Any]:
    """The fields fixed at creation."""
    return {
        "app_id": reg.app_id,
        "platform": reg.platform.value,
        "token": reg.token,
        "bucket": models.token_bucket(reg.token),
    }


def token_doc(reg: models.TokenRegistration, now: datetime) -> dict[str, Any]:
    """A whole new token document."""
    return {
        "_id": schema.token_key(reg.app_id, reg.platform, reg.token),
        **token_identity(reg),
        **token_profile(reg),
        "created_at": now,
        "last_seen_at": now,
    }


def token_upsert(reg: models.TokenRegistration, now: datetime) -> dict[str, Any]:
    """The update of RegisterToken: refresh the profile, keep created_at."""
    return {
        "$set": {**token_profile(reg), "last_seen_at": now},
        "$setOnInsert": {**token_identity(reg), "created_at": now},
    }


def token_from_doc(doc: Mapping[str, Any]) -> models.DeviceToken:
    """A stored token."""
    return models.DeviceToken(
        app_id=doc["app_id"],
        token=doc["token"],
        platform=models.Platform(doc["platform"]),
        user_id=doc.get("user_id", ""),
        topics=tuple(doc.get("topics", ())),
        device_id=doc.get("device_id", ""),
        # A document written before an attribute existed lacks it.
        **{name: doc.get(name, "") for name in models.TOKEN_ATTRIBUTES},
        apns_environment=models.ApnsEnvironment(doc.get("apns_environment", "production")),
        created_at=must(doc["created_at"]),
        last_seen_at=must(doc["last_seen_at"]),
    )


TARGET_FIELDS = {"_id": 1, "token": 1, "platform": 1, "user_id": 1, "apns_environment": 1, "last_seen_at": 1, "locale": 1, "timezone": 1}
"""The projection of a fan-out scan: what `target_from_doc` reads, and no more (topics, attributes and dates stay on the server)."""


def target_from_doc(doc: Mapping[str, Any]) -> TargetToken:
    """A stored token as a fan-out target; its ref is the `_id`."""
    return TargetToken(
        ref=doc["_id"],
        token=doc["token"],
        platform=models.Platform(doc["platform"]),
        user_id=doc.get("user_id", ""),
        apns_environment=models.ApnsEnvironment(doc.get("apns_environment", "production")),
        registered=True,
        last_seen_at=aware(doc.get("last_seen_at")),
        locale=doc.get("locale", ""),
        timezone=doc.get("timezone") or "",
    )


def selector(app_id: str, query: TargetQuery) -> dict[str, Any]:
    """The filter of a target query over the whole app."""
    flt: dict[str, Any] = {"app_id": app_id}
    if query.kind == "users":
        flt["user_id"] = {"$in": list(query.user_ids)}
    elif query.kind == "topic":
        flt["topics"] = query.topic
    elif query.kind != "all":
        raise ValueError(f"unknown target query kind {query.kind!r}")
    if query.platforms:
        flt["platform"] = {"$in": sorted(p.value for p in query.platforms)}
    if query.timezones is not None:
        zones: list[Any] = sorted(query.timezones)
        if "" in query.timezones:
            zones.append(None)  # a document written before the attribute existed has no zone
        flt["timezone"] = {"$in": zones}
    return flt


def partition_selector(app_id: str, query: TargetQuery, buckets: tuple[int, int], after: Any) -> dict[str, Any]:
    """The filter of a target query over one partition's bucket range, after a ref.

    A bucket range is one `_id` range (token keys sort by app, then bucket), so
    the whole-app query reads the `_id` index; user and topic queries also
    carry their index's fields.
    """
    flt = selector(app_id, query)
    if query.kind == "all":
        del flt["app_id"]  # the _id range pins the app
    lo = schema.bucket_bound(app_id, buckets[0])
    flt["_id"] = {"$gt": after} if after is not None else {"$gte": lo}
    flt["_id"]["$lt"] = schema.bucket_bound(app_id, buckets[1])
    return flt


def token_listing(where: models.TokenFilter, after: tuple[str, ...] | None) -> dict[str, Any]:
    """ListTokens' filter: the app's `_id` range (the listing's order) after `after`, narrowed by the filters."""
    flt: dict[str, Any] = {}
    if after is None:
        flt["_id"] = {"$gte": schema.bucket_bound(where.app_id, 0)}
    else:
        if len(after) != 2 or after[0] not in _PLATFORMS:
            raise BadCursor("not a token listing position")
        flt["_id"] = {"$gt": schema.token_key(where.app_id, models.Platform(after[0]), after[1])}
    flt["_id"]["$lt"] = schema.bucket_bound(where.app_id, models.BUCKETS)
    if where.user_id:
        flt["app_id"] = where.app_id
        flt["user_id"] = where.user_id
    if where.topic:
        flt["app_id"] = where.app_id
        flt["topics"] = where.topic
    if where.platform is not None:
        flt["platform"] = where.platform.value
    seen: dict[str, datetime] = {}
    if where.last_seen_before is not None:
        seen["$lt"] = where.last_seen_before
    if where.last_seen_after is not None:
        seen["$gte"] = where.last_seen_after
    if seen:
        flt["last_seen_at"] = seen
    return flt


TOKEN_ORDER = [("_id", 1)]
"""ListTokens' sort: the registry key, the order partitions scan in."""


def token_position(t: models.DeviceToken) -> tuple[str, ...]:
    """The `after` of a listed token."""
    return (t.platform.value, t.token)


_PLATFORMS = frozenset(p.value for p in models.PLATFORMS)


# ---------------------------------------------------------------- notifications


NOTIFICATION_ORDER = [("created_at", -1), ("_id", -1)]
"""ListNotifications' sort: newest first."""


def notification_listing(where: models.NotificationFilter, after: tuple[str, ...] | None) -> dict[str, Any]:
    """ListNotifications' filter, after `after` in NOTIFICATION_ORDER."""
    flt: dict[str, Any] = {"app_id": where.app_id}
    if where.state is not None:
        flt["state"] = where.state.value
    created: dict[str, datetime] = {}
    if where.created_after is not None:
        created["$gte"] = where.created_after
    if where.created_before is not None:
        created["$lt"] = where.created_before
    if created:
        flt["created_at"] = created
    if after is not None:
        at, nid = parse_notification_position(after)
        flt["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": nid}}]
    return flt


def notification_position(v: models.NotificationView) -> tuple[str, ...]:
    """The `after` of a listed notification (created_at as stored, so it matches itself)."""
    return (v.created_at.isoformat(), v.notification_id)



def _query_doc(query: TargetQuery | None) -> dict[str, Any] | None:
    if query is None:
        return None
    return {
        "kind": query.kind,
        "user_ids": list(query.user_ids),
        "topic": query.topic,
        "platforms": sorted(p.value for p in query.platforms),
    }


def _query_from_doc(q: Mapping[str, Any] | None) -> TargetQuery | None:
    if q is None:
        return None
    return TargetQuery(
        kind=q["kind"],
        user_ids=tuple(q.get("user_ids", ())),
        topic=q.get("topic", ""),
        platforms=frozenset(models.Platform(p) for p in q.get("platforms", ())),
    )


def notification_doc(draft: NotificationDraft, partitions_total: int) -> dict[str, Any]:
    """A new notification document; with no partitions it is complete at once."""
    state = draft.state if partitions_total else models.NotificationState.COMPLETED
    doc: dict[str, Any] = {
        "_id": draft.notification_id,
        "app_id": draft.app_id,
        "state": state.value,
        "created_at": draft.created_at,
        "updated_at": draft.created_at,
        "send_at": draft.send_at,
        "expires_at": draft.expires_at,
        "targeted": draft.targeted,
        **{field: 0 for field in COUNTER_FIELDS.values()},
        "vanished": 0,
        "partitions_total": partitions_total,
        "partitions_done": 0,
        "receipt_seq": 0,
        # Stored as JSON text: data keys may hold characters BSON field names may not.
        "rendered": {p.value: json.dumps(body, separators=(",", ":")) for p, body in draft.rendered.items()},
        # Tag → platform → JSON text; a language tag is a valid field name (letters, digits and "-").
        "localized": {
            tag: {p.value: json.dumps(body, separators=(",", ":")) for p, body in bodies.items()}
            for tag, bodies in draft.localized.items()
        },
        "target_kind": draft.target_kind,
        "query": _query_doc(draft.query),
        "error": "",
    }
    if not partitions_total:
        doc["completed_at"] = draft.created_at
    if draft.idempotency_key:
        doc["idempotency_key"] = draft.idempotency_key
    if draft.traceparent:
        doc["traceparent"] = draft.traceparent
    if draft.max_per_second:
        doc["max_per_second"] = draft.max_per_second
    return doc


def view_from_doc(doc: Mapping[str, Any]) -> models.NotificationView:
    """A notification's state and counters."""
    return models.NotificationView(
        notification_id=doc["_id"],
        app_id=doc["app_id"],
        state=models.NotificationState(doc["state"]),
        targeted=int(doc.get("targeted", 0)),
        delivered=int(doc.get("delivered", 0)),
        failed=int(doc.get("failed", 0)),
        invalid_tokens=int(doc.get("invalid_tokens", 0)),
        expired=int(doc.get("expired", 0)),
        created_at=must(doc["created_at"]),
        updated_at=must(doc["updated_at"]),
        send_at=aware(doc.get("send_at")),
        completed_at=aware(doc.get("completed_at")),
        error=doc.get("error", ""),
        idempotency_key=doc.get("idempotency_key", ""),
        vanished=int(doc.get("vanished", 0)),
        cancelled=int(doc.get("cancelled", 0)),
        cancel_requested_at=aware(doc.get("cancel_requested_at")),
        max_per_second=int(doc.get("max_per_second", 0)),
    )


def record_from_doc(doc: Mapping[str, Any]) -> NotificationRecord:
    """A stored notification with what the dispatcher needs to send it."""
    return NotificationRecord(
        view=view_from_doc(doc),
        query=_query_from_doc(doc.get("query")),
        rendered={models.Platform(k): json.loads(v) for k, v in doc.get("rendered", {}).items()},
        localized={
            tag: {models.Platform(k): json.loads(v) for k, v in bodies.items()}
            for tag, bodies in (doc.get("localized") or {}).items()
        },
        expires_at=aware(doc.get("expires_at")),
        receipt_seq=int(doc.get("receipt_seq", 0)),
        traceparent=doc.get("traceparent", ""),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

THROTTLE_NEXT = "throttle_next_us"
"""The throttle's next free send instant, in microseconds since the epoch (an integer, which `$inc` can add to)."""


def epoch_us(at: datetime) -> int:
    """An aware instant as whole microseconds since the epoch."""
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_epoch_us(us: int) -> datetime:
    """`epoch_us` read back."""
    return _EPOCH + timedelta(microseconds=us)


def counter_inc(counts: Mapping[models.DeliveryStatus, int]) -> dict[str, int]:
    """`$inc` of the counters; zero counts left out."""
    return {COUNTER_FIELDS[status]: n for status, n in counts.items() if n}


def reconciled(doc: Mapping[str, Any], logged: Mapping[models.DeliveryStatus, int]) -> dict[str, Any]:
    """The counters as the receipt log has them; `targeted` never below what Send counted."""
    resolved = sum(logged.values())
    targeted = int(doc.get("targeted", 0))
    return {
        **{field: logged.get(status, 0) for status, field in COUNTER_FIELDS.items()},
        "targeted": max(targeted, resolved),
        "vanished": max(0, targeted - resolved),
    }


def partition_docs(draft: NotificationDraft, plans: Sequence[PartitionPlan]) -> list[dict[str, Any]]:
    """The partition documents of a new notification."""
    return [
        {
            "_id": schema.partition_key(draft.notification_id, plan.index),
            "notification_id": draft.notification_id,
            "app_id": draft.app_id,
            "index": plan.index,
            "bucket_lo": plan.buckets[0],
            "bucket_hi": plan.buckets[1],
            "devices": [
                {"token": d.token, "platform": d.platform.value, "apns_environment": d.apns_environment.value}
                for d in plan.devices
            ],
            "checkpoint": None,
            "done": False,
            "owner": None,
            "lease_expires_at": plan.runnable_at or draft.runnable_at,
            "created_at": draft.created_at,
            "claims": 0,
            "lane": draft.lane.value,
            # A local-time send's: its due group's zones (absent: every zone), and its planned targets.
            **({} if plan.timezones is None else {"timezones": sorted(plan.timezones)}),
            "targets": plan.targets,
        }
        for plan in plans
    ]


def lane_filter(lane: Lane) -> Any:
    """The `lane` filter of a claim; bulk matches partitions stored before lanes existed (no field)."""
    return lane.value if lane is Lane.EXPRESS else {"$in": [Lane.BULK.value, None]}


def partition_from_doc(doc: Mapping[str, Any]) -> Partition:
    """A leased partition."""
    return Partition(
        partition_id=doc["_id"],
        notification_id=doc["notification_id"],
        app_id=doc["app_id"],
        index=int(doc["index"]),
        buckets=(int(doc["bucket_lo"]), int(doc["bucket_hi"])),
        devices=tuple(
            models.Device(
                token=d["token"],
                platform=models.Platform(d["platform"]),
                apns_environment=models.ApnsEnvironment(d.get("apns_environment", "production")),
            )
            for d in doc.get("devices", ())
        ),
        checkpoint=doc.get("checkpoint"),
        created_at=must(doc["created_at"]),
        lane=Lane(doc.get("lane") or Lane.BULK.value),
        timezones=None if doc.get("timezones") is None else frozenset(doc["timezones"]),
    )


def partition_status_from_doc(doc: Mapping[str, Any]) -> PartitionStatus:
    """A partition's progress."""
    return PartitionStatus(
        partition_id=doc["_id"],
        index=int(doc["index"]),
        done=bool(doc.get("done")),
        owner=doc.get("owner"),
        finished_by=doc.get("finished_by"),
        claims=int(doc.get("claims", 0)),
        targets=int(doc.get("targets", 0)),
        not_before=aware(doc.get("lease_expires_at")),
    )


# ---------------------------------------------------------------- receipts


def receipt_doc(
    app_id: str, notification_id: str, seq: int, nseq: int, d: ReceiptDraft, expires_at: datetime
) -> dict[str, Any]:
    """A numbered receipt; a field at the value `receipt_from_doc` assumes when absent is left out.

    Most receipts are DELIVERED with no user, reason or removal, so this
    leaves 10 fields of 16 to encode, send and store per receipt (and, on
    mongomock, to validate, encode and copy: about a third of a fan-out's
    receipt cost there). No query filters on the fields left out.
    """
    doc: dict[str, Any] = {
        "_id": schema.receipt_key(notification_id, d.platform, d.token),
        "app_id": app_id,
        "notification_id": notification_id,
        "seq": seq,
        "nseq": nseq,
        "token": d.token,
        "platform": d.platform.value,
        "status": d.status.value,
        "at": d.at,
        "expires_at": expires_at,
    }
    if d.user_id:
        doc["user_id"] = d.user_id
    if d.provider_message_id:
        doc["provider_message_id"] = d.provider_message_id
    if d.provider_status:
        doc["provider_status"] = d.provider_status
    if d.reason:
        doc["reason"] = d.reason
    if d.attempts:
        doc["attempts"] = d.attempts
    if d.token_removed:
        doc["token_removed"] = True
    return doc


def filler_doc(app_id: str, notification_id: str, seq: int, nseq: int, expires_at: datetime) -> dict[str, Any]:
    """Holds the numbers a duplicate receipt would have used, so the log stays dense."""
    return {
        "_id": f"filler\x00{app_id}\x00{seq}",
        "app_id": app_id,
        "notification_id": notification_id,
        "seq": seq,
        "nseq": nseq,
        "filler": True,
        "expires_at": expires_at,
    }


def receipt_from_doc(doc: Mapping[str, Any]) -> models.Receipt:
    """A stored receipt; its cursor is "<seq>.<nseq>"."""
    return models.Receipt(
        cursor=f"{doc['seq']}.{doc['nseq']}",
        notification_id=doc["notification_id"],
        app_id=doc["app_id"],
        token=doc["token"],
        platform=models.Platform(doc["platform"]),
        user_id=doc.get("user_id", ""),
        status=models.DeliveryStatus(doc["status"]),
        provider_message_id=doc.get("provider_message_id", ""),
        provider_status=int(doc.get("provider_status", 0)),
        reason=doc.get("reason", ""),
        attempts=int(doc.get("attempts", 0)),
        token_removed=bool(doc.get("token_removed", False)),
        at=must(doc["at"]),
    )


def entry_from_doc(doc: Mapping[str, Any]) -> LogEntry:
    """A log entry: a receipt or a filler."""
    receipt = None if doc.get("filler") else receipt_from_doc(doc)
    return LogEntry(seq=int(doc["seq"]), nseq=int(doc["nseq"]), receipt=receipt)


def webhook_cursor_fields(cursor: WebhookCursor) -> dict[str, Any]:
    """The fields of a `webhook_cursors` document that hold the cursor (the lease is apart)."""
    return {
        "batch_end": cursor.batch_end,
        "failures": cursor.failures,
        "failing_since": cursor.failing_since,
        "retry_at": cursor.retry_at,
    }


def webhook_cursor_from_doc(doc: Mapping[str, Any]) -> WebhookCursor:
    """A `webhook_cursors` document as a cursor."""
    return WebhookCursor(
        seq=int(doc["seq"]),
        batch_end=int(doc.get("batch_end", 0)),
        failures=int(doc.get("failures", 0)),
        failing_since=aware(doc.get("failing_since")),
        retry_at=aware(doc.get("retry_at")),
    )
