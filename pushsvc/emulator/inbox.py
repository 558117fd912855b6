"""The inbox: every notification the emulator accepted, in arrival order."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from typing import Any


@dataclasses.dataclass
class InboxEntry:
    """One accepted notification.

    Attributes:
        platform: ``"apns"`` or ``"fcm"``.
        token: The APNs device token, or the FCM ``token``/``fid`` ("" for
            topic and condition messages).
        environment: ``"production"`` or ``"sandbox"`` for APNs, "" for FCM.
        headers: Request headers, lower-case, without ``authorization``.
        payload: The APNs JSON payload, or the FCM ``message`` object.
        message_id: The ``apns-id``, or the FCM message ``name``.
        received_at: Arrival time by the emulator's clock (epoch seconds).
    """

    platform: str
    token: str
    environment: str
    headers: dict[str, str]
    payload: dict[str, Any]
    message_id: str
    received_at: float

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict (the control endpoint's format)."""
        return dataclasses.asdict(self)


class Inbox:
    """Accepted notifications, oldest first, bounded by ``limit``."""

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: collections.deque[InboxEntry] = collections.deque(maxlen=limit)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: InboxEntry) -> None:
        """Append an entry and wake waiters whose count is reached."""
        self._entries.append(entry)
        if self._waiters:
            size = len(self._entries)
            still: list[tuple[int, asyncio.Future[None]]] = []
            for count, future in self._waiters:
                if size >= count:
                    if not future.done():
                        future.set_result(None)
                else:
                    still.append((count, future))
            self._waiters = still

    def entries(self, *, platform: str | None = None, token: str | None = None) -> list[InboxEntry]:
        """Return accepted notifications, optionally filtered.

        Args:
            platform: Only entries of this platform (``"apns"`` or ``"fcm"``).
            token: Only entries for this device token.
        """
        return [
            e
            for e in self._entries
            if (platform is None or e.platform == platform) and (token is None or e.token == token)
        ]

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    async def wait_for(self, count: int, timeout_s: float) -> list[InboxEntry]:
        """Wait until the inbox holds at least ``count`` entries.

        Args:
            count: Entries to wait for (all platforms together).
            timeout_s: Upper bound on the wait.

        Returns:
            All entries once there are at least ``count``.

        Raises:
            TimeoutError: Fewer than ``count`` entries arrived in time.
        """
        if len(self._entries) < count:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter = (count, future)
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(future, timeout_s)
            except TimeoutError:
                raise TimeoutError(
                    f"inbox has {len(self._entries)} entries after {timeout_s}s, wanted {count}"
                ) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return list(self._entries)
