"""`TokenImporter`: registers the rows of a token file through RegisterTokens, a few batches in flight.

Every row ends in exactly one count: created, updated, bad (it could not be
parsed, or the server refused it, by line number with the reason), not
attempted (the import stopped before its answer came), or skipped (before
`resume_after`). The counts add up to the file's rows.

Batches are answered in the order they were sent, so where an import stopped
is one line number: every row up to it has its answer. Resuming after that
line neither skips nor repeats a row. A batch whose answer was lost may have
been stored all the same; sent again on resume, its rows count as updated,
since RegisterTokens is an idempotent upsert.

UNAVAILABLE (after the channel's own retries) and DEADLINE_EXCEEDED are
retried with backoff until `retry_budget_s` is spent; any other failure of a
whole call stops the import there.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from pushsvc_client.tokenfile import Record, RowError, TokenFile
from pushsvc_client.v1 import push_pb2, push_pb2_grpc

MAX_BATCH_ITEMS = 1000
"""The server's limit on items per RegisterTokens call."""
MAX_BATCH_BYTES = 512 * 1024
"""A batch's estimated size bound, well below the server's 4 MiB message limit."""
_RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_POLL_S = 0.1
"""How often a wait for an answer looks at the stop flag."""


@dataclasses.dataclass
class Summary:
    """The outcome of an import: every row of the file in one count."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    bad: int = 0
    not_attempted: int = 0
    skipped: int = 0
    """Rows at or before `resume_after`, done by an earlier run."""
    resume_after: int = 0
    """Every row up to this line has its answer (or was skipped); resuming after it is exact."""
    complete: bool = False
    """True when every row got an answer."""
    stopped_because: str = ""

    @property
    def ok(self) -> bool:
        """True when every row was registered (or skipped)."""
        return self.complete and not self.bad and not self.not_attempted

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Batch:
    app_id: str
    request: push_pb2.RegisterTokensRequest
    lines: list[int]
    size: int = 0
    future: Any = None
    attempts: int = 0
    outcomes: list[str] | None = None
    """Per item once answered: "created", "updated", or the reason it is bad."""


BadRow = Callable[[int, str], None]
"""Called with (line, reason) for each bad row, as soon as it is known."""
Progress = Callable[[int], None]
"""Called with the number of rows just resolved."""
Status = Callable[[str], None]
"""Called with what the import waits for while no row is resolved (a slow answer, a retry); "" when it is over."""
_STATUS_AFTER_S = 1.0
"""A wait for an answer is reported once it has lasted this long (the channel may be retrying)."""


class TokenImporter:
    """Imports a `TokenFile` through a PushService stub."""

    def __init__(
        self,
        stub: push_pb2_grpc.PushServiceStub,
        *,
        default_app: str = "",
        batch_size: int = MAX_BATCH_ITEMS,
        in_flight: int = 4,
        deadline_s: float = 30.0,
        retry_budget_s: float = 60.0,
        on_bad: BadRow = lambda line, reason: None,
        on_progress: Progress = lambda n: None,
        on_status: Status = lambda text: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_ITEMS:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_ITEMS}")
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self._stub = stub
        self._default_app = default_app
        self._batch_size = batch_size
        self._in_flight = in_flight
        self._deadline_s = deadline_s
        self._retry_budget_s = retry_budget_s
        self._on_bad = on_bad
        self._on_progress = on_progress
        self._on_status = on_status
        self._clock = clock

    def run(self, tokens: TokenFile, *, resume_after: int = 0, stop: threading.Event | None = None) -> Summary:
        """Imports every row after line `resume_after`.

        Setting `stop` (the CLI does on Ctrl-C) ends the import within a
        fraction of a second, between two rows or while waiting for an answer,
        never half-way through counting one, so the summary stays exact.
        """
        run = _Run(self, tokens, resume_after, stop or threading.Event())
        try:
            run.feed()
            run.drain()
            run.summary.complete = True
        except _Stop as why:
            run.stop(str(why))
        return run.finish()


class _Stop(Exception):
    """A whole call failed in a way retrying will not mend; the import stops."""


class _Run:
    """One import's state: the batches being filled, those in flight, and the ledger of unanswered rows."""

    def __init__(self, importer: TokenImporter, tokens: TokenFile, resume_after: int, stop: threading.Event) -> None:
        self.i = importer
        self.stopping = stop
        self.tokens = tokens
        self.summary = Summary(resume_after=max(resume_after, tokens.header_lines))
        self.records: Iterator[Record] = tokens.records()
        self.filling: dict[str, _Batch] = {}
        self.sent: collections.deque[_Batch] = collections.deque()
        # One entry per row in file order: (line, its batch, its index there),
        # or (line, None, why it is bad). A row is counted only when it
        # reaches the front with its answer, so every counted row is at or
        # before `resume_after`, and a resumed run counts each row once.
        self.ledger: collections.deque[tuple[int, _Batch | None, Any]] = collections.deque()

    # ------------------------------------------------------------ reading

    def feed(self) -> None:
        s = self.summary
        skip_through = s.resume_after
        parse = self.tokens.parse
        filling = self.filling
        ledger_append = self.ledger.append
        default_app = self.i._default_app
        batch_size = self.i._batch_size
        stopping = self.stopping
        for record in self.records:
            if stopping.is_set():
                # This record was read but not counted: it is put back for finish().
                self.records = _chain(record, self.records)
                raise _Stop("interrupted")
            s.rows += 1
            if record.line <= skip_through:
                s.skipped += 1
                continue
            try:
                row = parse(record)
            except RowError as exc:
                self._bad_now(record.line, str(exc))
                continue
            app_id = row.app_id or default_app
            if not app_id:
                self._bad_now(record.line, "no app: give --app or an app_id column")
                continue
            batch = filling.get(app_id)
            if batch is not None and (len(batch.lines) >= batch_size or batch.size + row.size > MAX_BATCH_BYTES):
                try:
                    self._send(batch)
                except _Stop:
                    # Sending waits for the oldest answer, and the import may stop
                    # there: this row is read and counted in `rows` but is in no
                    # batch yet, so it goes back to be counted as not attempted.
                    s.rows -= 1
                    self.records = _chain(record, self.records)
                    raise
                batch = None
            if batch is None:
                batch = filling[app_id] = _Batch(app_id, push_pb2.RegisterTokensRequest(app_id=app_id), [])
            ledger_append((record.line, batch, len(batch.lines)))
            batch.request.items.add(**row.fields)
            batch.lines.append(record.line)
            batch.size += row.size

    def _bad_now(self, line: int, reason: str) -> None:
        self.ledger.append((line, None, reason))
        self._settle()

    # ------------------------------------------------------------ sending

    def _send(self, batch: _Batch) -> None:
        del self.filling[batch.app_id]
        while len(self.sent) >= self.i._in_flight:
            self._answer(self.sent.popleft())
        self._call(batch)
        self.sent.append(batch)

    def _call(self, batch: _Batch) -> None:
        batch.attempts += 1
        batch.future = self.i._stub.RegisterTokens.future(batch.request, timeout=self.i._deadline_s)

    def drain(self) -> None:
        for batch in list(self.filling.values()):
            self._send(batch)
        while self.sent:
            self._answer(self.sent.popleft())

    def _answer(self, batch: _Batch) -> None:
        """Waits for the oldest batch's answer (retrying it if it may be retried) and counts its rows."""
        first_failure: float | None = None
        backoff_s = 0.5
        waiting_since = self.i._clock()
        shown, shown_s = "", 0
        while True:
            try:
                reply = batch.future.result(timeout=_POLL_S)
                break
            except grpc.FutureTimeoutError:
                if self.stopping.is_set():
                    self.sent.appendleft(batch)
                    raise _Stop("interrupted") from None
                # Said once a second: the channel's own retries happen inside this wait.
                waited_s = int(self.i._clock() - waiting_since)
                if waited_s >= _STATUS_AFTER_S and waited_s != shown_s:
                    shown_s = waited_s
                    attempt = f", attempt {batch.attempts}" if batch.attempts > 1 else ""
                    shown = f"waiting for the server's answer ({waited_s} s{attempt})"
                    self.i._on_status(shown)
                continue
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    # The batch as a whole (its app_id): every row of it is bad, for the same reason.
                    if shown:
                        self.i._on_status("")
                    self._settle_batch_as_bad(batch, _details(exc))
                    return
                now = self.i._clock()
                first_failure = now if first_failure is None else first_failure
                if code not in _RETRIED or now - first_failure >= self.i._retry_budget_s:
                    self.sent.appendleft(batch)
                    raise _Stop(f"{code.name}: {_details(exc)}") from None
                left_s = max(self.i._retry_budget_s - (now - first_failure), 0.0)
                shown = f"{code.name}: retrying in {backoff_s:g} s (attempt {batch.attempts + 1}, {left_s:.0f} s of retry budget left)"
                self.i._on_status(shown)
                if self.stopping.wait(backoff_s):
                    self.sent.appendleft(batch)
                    raise _Stop("interrupted") from None
                backoff_s = min(backoff_s * 2, 8.0)
                self._call(batch)
                waiting_since, shown_s = self.i._clock(), 0
        if shown:
            self.i._on_status("")
        outcomes: list[str | None] = [None] * len(batch.lines)
        for result in reply.results:
            if not 0 <= result.index < len(outcomes):
                raise _Stop(f"the server answered a result for item {result.index} of {len(outcomes)}")
            if result.outcome == push_pb2.REGISTRATION_OUTCOME_CREATED:
                outcomes[result.index] = "created"
            elif result.outcome == push_pb2.REGISTRATION_OUTCOME_UPDATED:
                outcomes[result.index] = "updated"
            else:
                outcomes[result.index] = _violations(result) or "refused by the server"
        if None in outcomes:
            raise _Stop(f"the server answered {len(reply.results)} results for {len(outcomes)} items")
        batch.outcomes = outcomes  # type: ignore[assignment]  # no None is left
        self._settle()

    def _settle_batch_as_bad(self, batch: _Batch, reason: str) -> None:
        batch.outcomes = [reason] * len(batch.lines)
        self._settle()

    def _settle(self) -> None:
        ledger, s = self.ledger, self.summary
        settled = 0
        while ledger:
            line, batch, what = ledger[0]
            if batch is not None:
                if batch.outcomes is None:
                    break
                what = batch.outcomes[what]
            ledger.popleft()
            if what == "created":
                s.created += 1
            elif what == "updated":
                s.updated += 1
            else:
                s.bad += 1
                self.i._on_bad(line, what)
            s.resume_after = line
            settled += 1
        if settled:
            self.i._on_progress(settled)

    # ------------------------------------------------------------ stopping

    def stop(self, reason: str) -> None:
        """Cancels what is in flight; the unanswered rows and the rest of the file are not attempted."""
        self.summary.stopped_because = reason
        for batch in self.sent:
            if batch.future is not None:
                batch.future.cancel()

    def finish(self) -> Summary:
        s = self.summary
        if not s.complete:
            s.not_attempted = len(self.ledger)
            try:
                for record in self.records:
                    s.rows += 1
                    if record.line <= s.resume_after:
                        s.skipped += 1
                    else:
                        s.not_attempted += 1
            except KeyboardInterrupt:
                s.stopped_because += "; counting the rest was interrupted too, so rows are undercounted"
        return s


def _chain(first: Record, rest: Iterator[Record]) -> Iterator[Record]:
    yield first
    yield from rest


def _details(exc: grpc.RpcError) -> str:
    return str(exc.details() or "")


def _violations(result: push_pb2.RegistrationResult) -> str:
    prefix = f"items[{result.index}]."
    return "; ".join(f"{v.field.removeprefix(prefix)}: {v.description}" for v in result.violations)
