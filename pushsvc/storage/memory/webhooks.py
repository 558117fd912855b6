"""The webhook cursors of `memory://`: one small record per (app, endpoint)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from pushsvc.storage.base import WebhookCursor


@dataclasses.dataclass
class _Held:
    cursor: WebhookCursor
    owner: str
    lease_expires_at: datetime


class MemoryWebhookCursorStore:
    """`WebhookCursorStore` in a dict; each call runs without awaiting, so it is atomic on one event loop."""

    def __init__(self) -> None:
        self._cursors: dict[tuple[str, str], _Held] = {}

    async def lease(
        self, app_id: str, endpoint: str, owner: str, start_seq: int, now: datetime, lease_s: float
    ) -> WebhookCursor | None:
        """See `WebhookCursorStore.lease`."""
        until = now + timedelta(seconds=lease_s)
        held = self._cursors.get((app_id, endpoint))
        if held is None:
            held = self._cursors[(app_id, endpoint)] = _Held(WebhookCursor(seq=start_seq), owner, until)
            return held.cursor
        if held.owner != owner and held.lease_expires_at > now:
            return None
        held.owner, held.lease_expires_at = owner, until
        return held.cursor

    async def save(
        self, app_id: str, endpoint: str, owner: str, cursor: WebhookCursor, now: datetime, lease_s: float
    ) -> bool:
        """See `WebhookCursorStore.save`."""
        held = self._cursors.get((app_id, endpoint))
        if held is None or held.owner != owner or held.lease_expires_at <= now:
            return False
        held.cursor = dataclasses.replace(cursor, seq=max(cursor.seq, held.cursor.seq))
        held.lease_expires_at = now + timedelta(seconds=lease_s)
        return True

    async def release(self, app_id: str, endpoint: str, owner: str) -> None:
        """See `WebhookCursorStore.release`."""
        held = self._cursors.get((app_id, endpoint))
        if held is not None and held.owner == owner:
            held.owner = ""
            held.lease_expires_at = datetime.min.replace(tzinfo=held.lease_expires_at.tzinfo)
