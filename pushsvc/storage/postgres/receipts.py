"""`ReceiptStore` over `receipts` (partitioned by expiry day) and `receipt_counters`.

Why a reader following the log never skips a receipt that commits late:
numbers are taken under row locks that are held until the transaction that
took them commits. `append` increments the app's counter row and the
notification's `receipt_seq` inside the same transaction that inserts the
receipts, so a second writer of the same app waits at the counter until the
first has committed, and only then gets the next numbers. A reader that sees
number N therefore already sees every number below N: the classic gap of
sequence columns (a lower number committing after a higher one) cannot arise.
`tests/storage/test_postgres_feed.py` checks it with writers that commit
late on purpose.

Retention drops whole partitions: `sweep` drops the days that have entirely
expired, and reads leave out receipts past their `expires_at` until then.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from pushsvc import errors, models
from pushsvc.clock import Clock
from pushsvc.storage.base import LogEntry, ReceiptDraft
from pushsvc.storage.postgres import codec, schema
from pushsvc.storage.postgres.database import LONG_STATEMENT_S, Database

_NEXT_SEQ = """
INSERT INTO receipt_counters AS c (app_id, seq) VALUES ($1, $2)
ON CONFLICT (app_id) DO UPDATE SET seq = c.seq + EXCLUDED.seq
RETURNING seq
"""

_NEXT_NSEQ = """
UPDATE notifications SET receipt_seq = receipt_seq + $2,
    receipt_days = CASE WHEN $3 = ANY(receipt_days) THEN receipt_days ELSE receipt_days || $3 END
WHERE notification_id = $1
RETURNING receipt_seq, receipt_days
"""

_ALREADY_LOGGED = """
SELECT platform, token FROM receipts
WHERE notification_id = $1 AND expires_day = ANY($2::integer[])
  AND (platform, token) IN (SELECT * FROM unnest($3::text[], $4::text[]))
"""

_INSERT = """
INSERT INTO receipts (app_id, notification_id, seq, nseq, expires_day, platform, token, user_id, status,
                      provider_message_id, provider_status, reason, attempts, token_removed, at, expires_at)
SELECT $1, $2, seq, nseq, $3, platform, token, user_id, status, mid, pstatus, reason, attempts, removed, at, $4
FROM unnest($5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::integer[],
            $13::text[], $14::integer[], $15::boolean[], $16::timestamptz[])
    AS r(seq, nseq, platform, token, user_id, status, mid, pstatus, reason, attempts, removed, at)
ON CONFLICT DO NOTHING
RETURNING seq
"""

# A filler holds the numbers a duplicate would have taken, so the log stays
# dense; its key (empty platform, the number as token) never meets a receipt's.
_FILLERS = """
INSERT INTO receipts (app_id, notification_id, seq, nseq, expires_day, platform, token, filler, expires_at)
SELECT $1, $2, seq, nseq, $3, '', seq::text, true, $4 FROM unnest($5::bigint[], $6::bigint[]) AS f(seq, nseq)
"""


class PostgresReceiptStore:
    """The numbered receipt log."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._days: set[int] = set()
        """Receipt partitions this process knows to exist."""

    async def ensure_day(self, day: int) -> None:
        """Creates a day's partition unless it is known to exist (its own short transaction)."""
        if day in self._days:
            return

        async def create(conn: asyncpg.Connection) -> None:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", schema.receipt_partition(day))
            if not exists:
                try:
                    await conn.execute(schema.create_receipt_partition_sql(day))
                except (asyncpg.exceptions.DuplicateTableError, asyncpg.exceptions.UniqueViolationError):
                    pass  # another replica created it a moment ago

        await self._db.run(create)
        self._days.add(day)

    def forget_days(self, days: set[int]) -> None:
        """Partitions just dropped: the next append to one of those days creates it again."""
        self._days -= days

    async def append(
        self, app_id: str, notification_id: str, drafts: Sequence[ReceiptDraft], expires_at: datetime
    ) -> list[models.Receipt]:
        """See `ReceiptStore.append`: numbers, receipts and fillers in one transaction."""
        if not drafts:
            return []
        day = schema.day_of(expires_at)
        for attempt in range(2):
            await self.ensure_day(day)
            try:
                return await self._db.run(
                    lambda conn: self._append(conn, app_id, notification_id, drafts, expires_at, day), transaction=True
                )
            except asyncpg.exceptions.CheckViolationError:
                # No partition for the row: the sweep dropped the day after we
                # last saw it (receipts that expire at once). Create it again.
                if attempt:
                    raise
                self._days.discard(day)
        raise AssertionError("unreachable")

    async def _append(
        self,
        conn: asyncpg.Connection,
        app_id: str,
        notification_id: str,
        drafts: Sequence[ReceiptDraft],
        expires_at: datetime,
        day: int,
    ) -> list[models.Receipt]:
        n = len(drafts)
        last_seq = await conn.fetchval(_NEXT_SEQ, app_id, n)
        note = await conn.fetchrow(_NEXT_NSEQ, notification_id, n, day)
        if note is None:
            raise errors.NotFound(f"notification {notification_id} is gone")
        first_seq = int(last_seq) - n + 1
        first_nseq = int(note["receipt_seq"]) - n + 1
        other_days = [d for d in note["receipt_days"] if d != day]
        logged: set[tuple[str, str]] = set()
        if other_days:
            # Receipts of this notification in another day's partition: the
            # partition key keeps them out of the primary key's reach, and
            # the notification row lock we hold makes this check race-free.
            rows = await conn.fetch(
                _ALREADY_LOGGED, notification_id, other_days, [d.platform.value for d in drafts], [d.token for d in drafts]
            )
            logged = {(r[0], r[1]) for r in rows}
        fresh = [i for i, d in enumerate(drafts) if (d.platform.value, d.token) not in logged]
        inserted: set[int] = set()
        if fresh:
            rows = await conn.fetch(
                _INSERT, app_id, notification_id, day, expires_at,
                [first_seq + i for i in fresh], [first_nseq + i for i in fresh],
                *_columns([drafts[i] for i in fresh]),
            )
            inserted = {int(r[0]) - first_seq for r in rows}
        rejected = [i for i in range(n) if i not in inserted]
        if rejected:
            await conn.execute(
                _FILLERS, app_id, notification_id, day, expires_at,
                [first_seq + i for i in rejected], [first_nseq + i for i in rejected],
            )
        return [
            models.Receipt(
                f"{first_seq + i}.{first_nseq + i}", notification_id, app_id, d.token, d.platform, d.user_id, d.status,
                d.provider_message_id, d.provider_status, d.reason, d.attempts, d.token_removed, d.at,
            )
            for i, d in enumerate(drafts)
            if i in inserted
        ]

    async def read_app(self, app_id: str, after_seq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_app`: served by receipts_app_log in every partition."""
        rows = await self._db.run(
            lambda conn: conn.fetch(
                f"SELECT {codec.RECEIPT_COLUMNS} FROM receipts WHERE app_id = $1 AND seq > $2 AND expires_at > $4 "
                "ORDER BY seq LIMIT $3",
                app_id, after_seq, limit, self._clock.now(),
            )
        )
        return [codec.entry(r) for r in rows]

    async def read_notification(self, app_id: str, notification_id: str, after_nseq: int, limit: int) -> list[LogEntry]:
        """See `ReceiptStore.read_notification`: served by receipts_notification_log."""
        rows = await self._db.run(
            lambda conn: conn.fetch(
                f"SELECT {codec.RECEIPT_COLUMNS} FROM receipts WHERE notification_id = $1 AND app_id = $2 AND nseq > $3 "
                "AND expires_at > $5 ORDER BY nseq LIMIT $4",
                notification_id, app_id, after_nseq, limit, self._clock.now(),
            )
        )
        return [codec.entry(r) for r in rows]

    async def last_seq(self, app_id: str) -> int:
        """See `ReceiptStore.last_seq`."""
        seq = await self._db.run(lambda conn: conn.fetchval("SELECT seq FROM receipt_counters WHERE app_id = $1", app_id))
        return 0 if seq is None else int(seq)

    async def count_by_status(self, notification_id: str) -> dict[models.DeliveryStatus, int]:
        """See `ReceiptStore.count_by_status`."""
        rows = await self._db.run(
            lambda conn: conn.fetch(
                "SELECT status, count(*) FROM receipts WHERE notification_id = $1 AND NOT filler GROUP BY status",
                notification_id, timeout=LONG_STATEMENT_S,
            )
        )
        return {codec.status_of(r[0]): int(r[1]) for r in rows}

    async def sweep(self, now: datetime) -> int:
        """Drops the partitions of days that have wholly expired; returns how many receipts went with them."""
        today = schema.day_of(now)

        async def sweep(conn: asyncpg.Connection) -> tuple[int, set[int]]:
            names = [r[0] for r in await conn.fetch(schema.LIST_RECEIPT_PARTITIONS)]
            removed, dropped = 0, set()
            for name in names:
                day = schema.partition_day(name)
                if day is None or day >= today:
                    continue
                try:
                    async with conn.transaction():
                        # Dropping a partition locks the whole log for a moment:
                        # give way to readers and writers, and try again next sweep.
                        await conn.execute("SET LOCAL lock_timeout = '2s'")
                        removed += int(await conn.fetchval(
                            f"SELECT count(*) FROM {schema.quote_ident(name)} WHERE NOT filler", timeout=LONG_STATEMENT_S
                        ))
                        await conn.execute(f"DROP TABLE {schema.quote_ident(name)}", timeout=LONG_STATEMENT_S)
                except asyncpg.exceptions.LockNotAvailableError:
                    continue
                dropped.add(day)
            return removed, dropped

        removed, dropped = await self._db.run(sweep)
        self.forget_days(dropped)
        return removed


def _columns(drafts: Sequence[ReceiptDraft]) -> list[list[Any]]:
    """The drafts as column arrays for `unnest`."""
    return [
        [d.platform.value for d in drafts],
        [d.token for d in drafts],
        [d.user_id for d in drafts],
        [d.status.value for d in drafts],
        [d.provider_message_id for d in drafts],
        [d.provider_status for d in drafts],
        [d.reason for d in drafts],
        [d.attempts for d in drafts],
        [d.token_removed for d in drafts],
        [d.at for d in drafts],
    ]

