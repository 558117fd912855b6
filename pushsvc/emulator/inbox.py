"""The inbox: every notification the emulator accepted, in arrival order.

Beside it, the inbox keeps the requests a scenario rule (a test token, say)
answered with an error (:class:`Rejection`): they passed every check and had
a notification a team may want to see, with the status it got. Other errors
(bad credentials, malformed requests, fault-injected 503s) are not kept.
"""

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


@dataclasses.dataclass
class Rejection:
    """A notification a scenario rule answered with an error.

    Attributes:
        entry: The request, as an accepted one would have been recorded.
        status: The HTTP status it was answered with.
        reason: The APNs reason, or the FCM error status name (with the
            ``FcmError`` code after a slash when there is one).
        after: How many notifications had been accepted before it (for
            merging the two lists in arrival order).
    """

    entry: InboxEntry
    status: int
    reason: str
    after: int

    def to_json(self) -> dict[str, Any]:
        """The entry's JSON plus ``status`` and ``reason``."""
        return {**self.entry.to_json(), "status": self.status, "reason": self.reason}


class Inbox:
    """Accepted notifications, oldest first, bounded by ``limit``; and rejections, also bounded."""

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: collections.deque[InboxEntry] = collections.deque(maxlen=limit)
        self._rejections: collections.deque[Rejection] = collections.deque(maxlen=limit)
        self._added = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: InboxEntry) -> None:
        """Append an entry and wake waiters whose count is reached."""
        self._entries.append(entry)
        self._added += 1
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

    def reject(self, entry: InboxEntry, status: int, reason: str) -> None:
        """Record a notification a scenario rule answered with an error."""
        self._rejections.append(Rejection(entry, status, reason, self._added))

    def rejections(self) -> list[Rejection]:
        """The recorded rejections, oldest first."""
        return list(self._rejections)

    def answered(self, *, platform: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
        """Accepted entries and rejections merged in arrival order, as JSON with ``status`` and ``reason``."""
        out: list[dict[str, Any]] = []
        rejections = iter(self._rejections)
        pending = next(rejections, None)
        first = self._added - len(self._entries)
        wanted = lambda e: (platform is None or e.platform == platform) and (token is None or e.token == token)  # noqa: E731
        for index, entry in enumerate(self._entries, first):
            while pending is not None and pending.after <= index:
                if wanted(pending.entry):
                    out.append(pending.to_json())
                pending = next(rejections, None)
            if wanted(entry):
                out.append({**entry.to_json(), "status": 200, "reason": ""})
        while pending is not None:
            if wanted(pending.entry):
                out.append(pending.to_json())
            pending = next(rejections, None)
        return out

    def clear(self) -> None:
        """Forget every entry and rejection."""
        self._entries.clear()
        self._rejections.clear()

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
