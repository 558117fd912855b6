"""`WebhookCursorStore` over `webhook_cursors`: one row per (app, endpoint), every call one statement by key."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pushsvc.storage.base import WebhookCursor
from pushsvc.storage.postgres.database import Database

_COLUMNS = "seq, batch_end, failures, failing_since, retry_at"

# Taken when new, ours already, or expired; a row held by another owner
# fails the DO UPDATE's condition and returns nothing.
_LEASE = f"""
INSERT INTO webhook_cursors AS c (app_id, endpoint, seq, owner, lease_expires_at) VALUES ($1, $2, $3, $4, $6)
ON CONFLICT (app_id, endpoint) DO UPDATE SET owner = EXCLUDED.owner, lease_expires_at = EXCLUDED.lease_expires_at
WHERE c.owner = EXCLUDED.owner OR c.lease_expires_at <= $5
RETURNING {_COLUMNS}
"""

_SAVE = """
UPDATE webhook_cursors SET seq = greatest(seq, $4), batch_end = $5, failures = $6, failing_since = $7, retry_at = $8,
    lease_expires_at = $10
WHERE app_id = $1 AND endpoint = $2 AND owner = $3 AND lease_expires_at > $9
RETURNING true
"""

_RELEASE = """
UPDATE webhook_cursors SET owner = '', lease_expires_at = '-infinity'
WHERE app_id = $1 AND endpoint = $2 AND owner = $3
"""


def _cursor(row: Any) -> WebhookCursor:
    return WebhookCursor(
        seq=int(row["seq"]), batch_end=int(row["batch_end"]), failures=int(row["failures"]),
        failing_since=row["failing_since"], retry_at=row["retry_at"],
    )


class PostgresWebhookCursorStore:
    """Leases are a conditional upsert of the cursor's row."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def lease(
        self, app_id: str, endpoint: str, owner: str, start_seq: int, now: datetime, lease_s: float
    ) -> WebhookCursor | None:
        """See `WebhookCursorStore.lease`."""
        until = now + timedelta(seconds=lease_s)
        row = await self._db.run(lambda conn: conn.fetchrow(_LEASE, app_id, endpoint, start_seq, owner, now, until))
        return None if row is None else _cursor(row)

    async def save(
        self, app_id: str, endpoint: str, owner: str, cursor: WebhookCursor, now: datetime, lease_s: float
    ) -> bool:
        """See `WebhookCursorStore.save`."""
        c = cursor
        done = await self._db.run(
            lambda conn: conn.fetchval(
                _SAVE, app_id, endpoint, owner, c.seq, c.batch_end, c.failures, c.failing_since, c.retry_at,
                now, now + timedelta(seconds=lease_s),
            )
        )
        return bool(done)

    async def release(self, app_id: str, endpoint: str, owner: str) -> None:
        """See `WebhookCursorStore.release`."""
        await self._db.run(lambda conn: conn.execute(_RELEASE, app_id, endpoint, owner))
