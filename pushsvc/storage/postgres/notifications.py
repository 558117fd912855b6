"""`NotificationStore` over `notifications` and `partitions`.

Locks are always taken in one order, so transactions never wait on each other
in a circle: a partition row before its notification row, and (in the
receipt log) the app's counter before the notification row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from pushsvc import models
from pushsvc.storage.base import (
    DuplicateKey,
    Lane,
    NotificationDraft,
    NotificationRecord,
    Page,
    Partition,
    PartitionPlan,
    PartitionStatus,
    booked,
    parse_notification_position,
)
from pushsvc.storage.postgres import codec
from pushsvc.storage.postgres.database import LONG_STATEMENT_S, Database

_NOTIFICATION_COLUMNS = (
    "notification_id, app_id, state, created_at, updated_at, completed_at, send_at, expires_at, targeted, "
    "partitions_total, rendered, target_kind, query, idempotency_key, localized, traceparent, max_per_second"
)

_INSERT_NOTIFICATION = f"""
INSERT INTO notifications ({_NOTIFICATION_COLUMNS})
VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (app_id, idempotency_key) WHERE idempotency_key <> '' DO NOTHING
RETURNING *
"""

_INSERT_PARTITIONS = """
INSERT INTO partitions (partition_id, notification_id, app_id, part_index, bucket_lo, bucket_hi, devices, created_at,
                        lease_expires_at, lane, timezones, targets)
SELECT $1 || '/' || i, $1, $2, i, lo, hi, d::jsonb, $3, coalesce(r, $4), $9,
       CASE WHEN z IS NULL THEN NULL ELSE ARRAY(SELECT json_array_elements_text(z::json)) END, n
FROM unnest($5::integer[], $6::integer[], $7::integer[], $8::text[], $10::timestamptz[], $11::text[], $12::bigint[])
     AS p(i, lo, hi, d, r, z, n)
"""

_CLAIM = """
UPDATE partitions SET owner = $1, lease_expires_at = $3, claims = claims + 1
WHERE partition_id = (
    SELECT partition_id FROM partitions WHERE NOT done AND lane = '{lane}' AND lease_expires_at <= $2
    ORDER BY lease_expires_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING *
"""

# One statement per lane, with the lane written in: a prepared statement's
# generic plan cannot use the partial index `partitions_express` for a lane
# given as a parameter. The bulk claim is served by `partitions_claimable`.
_CLAIMS = {lane: _CLAIM.format(lane=lane.value) for lane in Lane}

_ADD_COUNTS = """
UPDATE notifications SET delivered = delivered + $2, failed = failed + $3, invalid_tokens = invalid_tokens + $4,
    expired = expired + $5, cancelled = cancelled + $6, updated_at = $7
WHERE notification_id = $1
"""

_SETTLE = """
UPDATE notifications SET state = $2, completed_at = $3, updated_at = $3,
    delivered = $4, failed = $5, invalid_tokens = $6, expired = $7, cancelled = $8,
    targeted = greatest(targeted, $9), vanished = greatest(0, targeted - $9)
WHERE notification_id = $1 AND state = ANY($10::text[])
RETURNING *
"""


# One statement, so one row lock: a concurrent booking waits for this one and
# then re-reads the row (READ COMMITTED re-evaluates SET on the newest version),
# so bookings never overlap. greatest() skips the NULL of a first booking.
_RESERVE = """
UPDATE notifications SET throttle_next_at = greatest(throttle_next_at, $2::timestamptz) + $3::interval
WHERE notification_id = $1
RETURNING throttle_next_at - $3::interval
"""


def _lease_end(now: datetime, lease_s: float) -> datetime:
    return now + timedelta(seconds=lease_s)


class PostgresNotificationStore:
    """The notification queue: leases are row locks taken with SKIP LOCKED."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def find_by_idempotency_key(self, app_id: str, key: str) -> models.NotificationView | None:
        """See `NotificationStore.find_by_idempotency_key`."""
        row = await self._db.run(
            lambda conn: conn.fetchrow(
                "SELECT * FROM notifications WHERE app_id = $1 AND idempotency_key = $2 AND idempotency_key <> ''",
                app_id, key,
            )
        )
        return None if row is None else codec.view(row)

    async def create(self, draft: NotificationDraft, plans: Sequence[PartitionPlan]) -> models.NotificationView:
        """See `NotificationStore.create`: the notification and its partitions in one transaction."""

        async def create(conn: asyncpg.Connection) -> models.NotificationView:
            state = draft.state if plans else models.NotificationState.COMPLETED
            row = await conn.fetchrow(
                _INSERT_NOTIFICATION,
                draft.notification_id, draft.app_id, state.value, draft.created_at,
                None if plans else draft.created_at, draft.send_at, draft.expires_at, draft.targeted, len(plans),
                {p.value: body for p, body in draft.rendered.items()}, draft.target_kind, codec.query_json(draft.query),
                draft.idempotency_key,
                {tag: {p.value: body for p, body in bodies.items()} for tag, bodies in draft.localized.items()},
                draft.traceparent, draft.max_per_second,
            )
            if row is None:
                holder = await conn.fetchval(
                    "SELECT notification_id FROM notifications WHERE app_id = $1 AND idempotency_key = $2 "
                    "AND idempotency_key <> ''",
                    draft.app_id, draft.idempotency_key,
                )
                raise DuplicateKey(holder or "")
            if plans:
                await conn.execute(
                    _INSERT_PARTITIONS,
                    draft.notification_id, draft.app_id, draft.created_at, draft.runnable_at,
                    [p.index for p in plans], [p.buckets[0] for p in plans], [p.buckets[1] for p in plans],
                    [json.dumps(codec.devices_json(p.devices)) for p in plans], draft.lane.value,
                    # A local-time send's partitions: each its own runnable time, zones and planned targets.
                    [p.runnable_at for p in plans],
                    [None if p.timezones is None else json.dumps(sorted(p.timezones)) for p in plans],
                    [p.targets for p in plans],
                )
            return codec.view(row)

        return await self._db.run(create, transaction=True)

    async def get(self, app_id: str, notification_id: str) -> NotificationRecord | None:
        """See `NotificationStore.get`."""
        row = await self._db.run(
            lambda conn: conn.fetchrow(
                "SELECT * FROM notifications WHERE notification_id = $1 AND app_id = $2", notification_id, app_id
            )
        )
        return None if row is None else codec.record(row)

    async def partitions(self, notification_id: str) -> list[PartitionStatus]:
        """See `NotificationStore.partitions`."""
        rows = await self._db.run(
            lambda conn: conn.fetch(
                "SELECT * FROM partitions WHERE notification_id = $1 ORDER BY part_index", notification_id
            )
        )
        return [codec.partition_status(r) for r in rows]

    async def queue_depth(self) -> int:
        """See `NotificationStore.queue_depth`."""
        n = await self._db.run(
            lambda conn: conn.fetchval(
                "SELECT count(*) FROM notifications WHERE state IN ('queued', 'scheduled', 'running')"
            )
        )
        return int(n)

    async def claim(self, owner: str, now: datetime, lease_s: float, lane: Lane | None = None) -> Partition | None:
        """See `NotificationStore.claim`: the lane's oldest free lease, locked with SKIP LOCKED so racing claimants never share one."""
        lanes = (Lane.EXPRESS, Lane.BULK) if lane is None else (lane,)

        async def claim(conn: asyncpg.Connection) -> asyncpg.Record | None:
            for queue in lanes:
                row = await conn.fetchrow(_CLAIMS[queue], owner, now, _lease_end(now, lease_s))
                if row is not None:
                    return row
            return None

        row = await self._db.run(claim)
        return None if row is None else codec.partition(row)

    async def renew(self, partition_id: str, owner: str, now: datetime, lease_s: float) -> bool:
        """See `NotificationStore.renew`."""
        done = await self._db.run(
            lambda conn: conn.fetchval(
                "UPDATE partitions SET lease_expires_at = $3 WHERE partition_id = $1 AND owner = $2 AND NOT done "
                "RETURNING true",
                partition_id, owner, _lease_end(now, lease_s),
            )
        )
        return bool(done)

    async def commit_batch(
        self,
        partition_id: str,
        owner: str,
        checkpoint: Any,
        counts: Mapping[models.DeliveryStatus, int],
        now: datetime,
        lease_s: float,
    ) -> bool:
        """See `NotificationStore.commit_batch`: checkpoint, lease and counters in one transaction."""

        async def commit(conn: asyncpg.Connection) -> bool:
            nid = await conn.fetchval(
                "UPDATE partitions SET checkpoint = $3, lease_expires_at = $4 "
                "WHERE partition_id = $1 AND owner = $2 AND NOT done RETURNING notification_id",
                partition_id, owner, checkpoint, _lease_end(now, lease_s),
            )
            if nid is None:
                return False
            inc = codec.counter_updates(counts)
            if any(inc):
                await conn.execute(_ADD_COUNTS, nid, *inc, now)
            return True

        return await self._db.run(commit, transaction=True)

    async def release(self, partition_id: str, owner: str, retry_at: datetime) -> None:
        """See `NotificationStore.release`."""
        await self._db.run(
            lambda conn: conn.execute(
                "UPDATE partitions SET owner = NULL, lease_expires_at = $3 WHERE partition_id = $1 AND owner = $2",
                partition_id, owner, retry_at,
            )
        )

    async def release_all(self, owner: str, now: datetime) -> int:
        """See `NotificationStore.release_all`."""
        rows = await self._db.run(
            lambda conn: conn.fetch(
                "UPDATE partitions SET owner = NULL, lease_expires_at = $2 WHERE owner = $1 AND NOT done "
                "RETURNING partition_id",
                owner, now,
            )
        )
        return len(rows)

    async def release_replica(self, replica_id: str, keep_owner: str, now: datetime) -> int:
        """See `NotificationStore.release_replica`."""
        rows = await self._db.run(
            lambda conn: conn.fetch(
                "UPDATE partitions SET owner = NULL, lease_expires_at = $3 "
                "WHERE NOT done AND owner IS NOT NULL AND starts_with(owner, $1) AND owner <> $2 RETURNING partition_id",
                replica_id + "/", keep_owner, now,
            )
        )
        return len(rows)

    async def finish_partition(self, partition_id: str, owner: str, now: datetime) -> models.NotificationView | None:
        """See `NotificationStore.finish_partition`."""

        async def finish(conn: asyncpg.Connection) -> models.NotificationView | None:
            nid = await conn.fetchval(
                "UPDATE partitions SET done = true, owner = NULL, finished_at = $3, finished_by = $2 "
                "WHERE partition_id = $1 AND owner = $2 AND NOT done RETURNING notification_id",
                partition_id, owner, now,
            )
            if nid is None:
                return None
            row = await conn.fetchrow(
                "UPDATE notifications SET partitions_done = partitions_done + 1, updated_at = $2 "
                "WHERE notification_id = $1 RETURNING *",
                nid, now,
            )
            if row is None:
                return None
            if row["partitions_done"] >= row["partitions_total"] and row["state"] in codec.UNFINISHED:
                row = await _settle(conn, row, now)
            return codec.view(row)

        return await self._db.run(finish, transaction=True)

    async def drop_partition(self, partition_id: str) -> None:
        """See `NotificationStore.drop_partition`."""
        await self._db.run(lambda conn: conn.execute("DELETE FROM partitions WHERE partition_id = $1", partition_id))

    async def mark_running(self, notification_id: str, now: datetime) -> None:
        """See `NotificationStore.mark_running`."""
        await self._db.run(
            lambda conn: conn.execute(
                "UPDATE notifications SET state = 'running', updated_at = $2 "
                "WHERE notification_id = $1 AND state IN ('queued', 'scheduled')",
                notification_id, now,
            )
        )

    async def fail(self, notification_id: str, error: str, now: datetime) -> None:
        """See `NotificationStore.fail`: the first error stays; settled at once when no partition is left."""

        async def fail(conn: asyncpg.Connection) -> None:
            row = await conn.fetchrow(
                "UPDATE notifications SET error = $2, updated_at = $3 "
                "WHERE notification_id = $1 AND state = ANY($4::text[]) AND error = '' "
                "AND cancel_requested_at IS NULL RETURNING *",  # the first verdict stays
                notification_id, error, now, codec.UNFINISHED,
            )
            if row is not None and row["partitions_done"] >= row["partitions_total"]:
                await _settle(conn, row, now)  # nothing left to sweep

        await self._db.run(fail, transaction=True)

    async def cancel(self, app_id: str, notification_id: str, now: datetime) -> models.NotificationView | None:
        """See `NotificationStore.cancel`: the mark, the partitions made runnable, in one transaction."""

        async def cancel(conn: asyncpg.Connection) -> models.NotificationView | None:
            row = await conn.fetchrow(
                "UPDATE notifications SET cancel_requested_at = $3, updated_at = $3 "
                "WHERE notification_id = $1 AND app_id = $2 AND state = ANY($4::text[]) AND error = '' "
                "AND cancel_requested_at IS NULL RETURNING *",
                notification_id, app_id, now, codec.UNFINISHED,
            )
            if row is None:
                # Not ours, unknown, finished, failing or already cancelling: as it is.
                row = await conn.fetchrow(
                    "SELECT * FROM notifications WHERE notification_id = $1 AND app_id = $2", notification_id, app_id
                )
                return None if row is None else codec.view(row)
            # A scheduled partition that nobody holds sweeps now instead of at its send time.
            # (Partition rows are locked after the notification row here; claim locks only a
            # partition, and no other transaction locks a partition after this notification.)
            await conn.execute(
                "UPDATE partitions SET lease_expires_at = $2 "
                "WHERE notification_id = $1 AND NOT done AND owner IS NULL AND lease_expires_at > $2",
                notification_id, now,
            )
            if row["partitions_done"] >= row["partitions_total"]:
                row = await _settle(conn, row, now)  # nothing left to sweep
            return codec.view(row)

        return await self._db.run(cancel, transaction=True)

    async def reserve(self, notification_id: str, count: int, per_second: int, not_before: datetime) -> datetime:
        """See `NotificationStore.reserve`: one UPDATE ... RETURNING."""
        start = await self._db.run(
            lambda conn: conn.fetchval(_RESERVE, notification_id, not_before, booked(count, per_second))
        )
        return not_before if start is None else start

    async def list(
        self, where: models.NotificationFilter, after: tuple[str, ...] | None, limit: int
    ) -> Page[models.NotificationView]:
        """See `NotificationStore.list`: notifications_by_created, or notifications_by_state_created with a state."""
        sql = ["SELECT * FROM notifications WHERE app_id = $1"]
        args: list[Any] = [where.app_id]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if where.state is not None:
            sql.append(f"AND state = {arg(where.state.value)}")
        if where.created_after is not None:
            sql.append(f"AND created_at >= {arg(where.created_after)}")
        if where.created_before is not None:
            sql.append(f"AND created_at < {arg(where.created_before)}")
        if after is not None:
            at, nid = parse_notification_position(after)
            sql.append(f"AND (created_at, notification_id) < ({arg(at)}, {arg(nid)})")
        sql.append(f"ORDER BY created_at DESC, notification_id DESC LIMIT {arg(limit + 1)}")
        rows = await self._db.run(lambda conn: conn.fetch(" ".join(sql), *args))
        items = [codec.view(r) for r in rows[:limit]]
        return Page(items, codec.notification_position(items[-1]) if len(rows) > limit else None)


async def _settle(conn: asyncpg.Connection, row: Mapping[str, Any], now: datetime) -> Mapping[str, Any]:
    # The counters become what the receipt log holds, read in the same
    # transaction that settles the notification. Served by receipts_notification_log.
    counts = await conn.fetch(
        "SELECT status, count(*) AS n FROM receipts WHERE notification_id = $1 AND NOT filler "
        "AND expires_day = ANY($2::integer[]) GROUP BY status",
        row["notification_id"], list(row["receipt_days"]),
        timeout=LONG_STATEMENT_S,  # a million-token notification has a million receipts to count
    )
    logged = {codec.status_of(r["status"]): int(r["n"]) for r in counts}
    # A notification that `fail` condemned settles FAILED, with its error; one `cancel` marked, CANCELLED.
    if row["error"]:
        state = models.NotificationState.FAILED
    elif row["cancel_requested_at"] is not None:
        state = models.NotificationState.CANCELLED
    else:
        state = models.NotificationState.COMPLETED
    settled = await conn.fetchrow(
        _SETTLE, row["notification_id"], state.value, now, *codec.counter_updates(logged), sum(logged.values()),
        codec.UNFINISHED,
    )
    return settled if settled is not None else row
