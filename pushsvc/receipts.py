"""Following the receipt log: replay, follow live, resume by cursor.

A receipt's cursor is "<seq>.<nseq>": its number in the app's log and in its
notification's log. Both are dense (the writer allocates a block, then writes
it), so a reader that has seen number N waits for N+1 and never skips a
receipt committed late by another replica. A number that stays missing for
`gap_grace_s` belonged to a writer that died between allocating and writing;
the reader then moves past it.

Readers poll the store, so a stream on any replica sees every replica's
receipts; `ReceiptSignal` wakes local readers at once when this replica writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from pushsvc import errors, models
from pushsvc.clock import Clock
from pushsvc.errors import FieldViolation
from pushsvc.storage import LogEntry, NotificationStore, ReceiptStore

READ_LIMIT = 500
"""Log entries read per store call."""
_MAX_INT64 = 2**63 - 1


def parse_cursor(cursor: str) -> tuple[int, int]:
    """Parses "<seq>.<nseq>"; raises InvalidArgument (field `after`) when malformed."""
    seq, sep, nseq = cursor.partition(".")
    # isascii: str.isdigit() also accepts digits such as "²" that int() rejects.
    # Both numbers are stored as BSON int64; a bigger one was never issued and cannot be queried.
    if (
        not sep or not (seq + nseq).isascii() or not seq.isdigit() or not nseq.isdigit() or len(cursor) > 40
        or max(int(seq), int(nseq)) > _MAX_INT64
    ):
        raise errors.InvalidArgument(FieldViolation("after", "is not a receipt cursor (expected the cursor of a receipt)"))
    return int(seq), int(nseq)


class ReceiptSignal:
    """Wakes this replica's readers when it has written receipts."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wakes every current waiter."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout_s: float) -> None:
        """Returns on the next notify() or after timeout_s, whichever comes first."""
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            pass


class ReceiptFeed:
    """Turns the numbered receipt log into endless or self-ending receipt streams."""

    def __init__(
        self,
        receipts: ReceiptStore,
        notifications: NotificationStore,
        signal: ReceiptSignal,
        *,
        poll_interval_s: float,
        gap_grace_s: float,
        clock: Clock,
    ) -> None:
        self._receipts = receipts
        self._notifications = notifications
        self._signal = signal
        self._poll_s = poll_interval_s
        self._grace_s = gap_grace_s
        self._monotonic = clock.monotonic

    async def follow_app(self, app_id: str, after_seq: int | None) -> AsyncIterator[models.Receipt]:
        """Every receipt of the app after `after_seq` (None: from now on), until cancelled."""
        last = await self._receipts.last_seq(app_id) if after_seq is None else after_seq
        reader = DenseReader(lambda n: self._receipts.read_app(app_id, n, READ_LIMIT), last, self._monotonic, self._grace_s, key=lambda e: e.seq)
        while True:
            async for receipt in reader.drain():
                yield receipt
            await self._signal.wait(self._poll_s)

    async def follow_notification(
        self, app_id: str, notification_id: str, after_nseq: int
    ) -> AsyncIterator[models.Receipt]:
        """Every receipt of one notification after `after_nseq`; ends once it is finished and all were sent."""
        reader = DenseReader(
            lambda n: self._receipts.read_notification(app_id, notification_id, n, READ_LIMIT),
            after_nseq,
            self._monotonic,
            self._grace_s,
            key=lambda e: e.nseq,
        )
        while True:
            # Read the state before draining: receipts written before the
            # notification finished are then certain to be in this drain.
            record = await self._notifications.get(app_id, notification_id)
            if record is None:
                raise errors.NotFound(f"notification {notification_id} not found")
            async for receipt in reader.drain():
                yield receipt
            if record.view.state.finished:
                if reader.last >= record.receipt_seq:
                    return
                if reader.tail_gap_expired(record.receipt_seq):
                    return
            await self._signal.wait(self._poll_s)


class DenseReader:
    """Reads a dense numbered log from `last`, waiting out gaps for a grace period."""

    def __init__(
        self,
        read: Callable[[int], Awaitable[list[LogEntry]]],
        last: int,
        monotonic: Callable[[], float],
        grace_s: float,
        *,
        key: Callable[[LogEntry], int],
        page: int = READ_LIMIT,
    ) -> None:
        self._read = read
        self._page = page
        """What `read` asks for: a shorter page means the end of the log."""
        self.last = last
        self._monotonic = monotonic
        self._grace_s = grace_s
        self._key = key
        self._gap_since: float | None = None

    def _gap_expired(self) -> bool:
        now = self._monotonic()
        if self._gap_since is None:
            self._gap_since = now
        return now - self._gap_since >= self._grace_s

    def tail_gap_expired(self, allocated: int) -> bool:
        """True once numbers up to `allocated` have stayed missing past the grace period."""
        if self.last >= allocated:
            return True
        return self._gap_expired()

    async def drain(self) -> AsyncGenerator[models.Receipt, None]:
        """Yields every receipt available now, in order, stopping at an unexpired gap."""
        while True:
            entries = await self._read(self.last)
            for entry in entries:
                n = self._key(entry)
                if n != self.last + 1 and not self._gap_expired():
                    return
                self.last = n
                self._gap_since = None
                if entry.receipt is not None:
                    yield entry.receipt
            if len(entries) < self._page:
                return
