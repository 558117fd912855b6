"""Fault injection for provider send requests (never OAuth or control calls)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from .site import ClientConnection

# JSON debug data of the GOAWAY sent by ``goaway_after`` (Apple puts a JSON
# object with a ``reason`` key there, protocols.md A.11).
GOAWAY_DEBUG = b'{"reason":"Shutdown"}'


@dataclasses.dataclass
class Faults:
    """Faults applied to APNs and FCM send requests; mutable at runtime.

    Which requests: on the APNs ports every request outside ``/_emulator/``;
    on the FCM port ``POST /v1/projects/{id}/messages:send`` only. OAuth and
    control requests are never affected. A request is counted on its
    connection (``send_requests``) and its faults are decided once it is
    complete (END_STREAM over HTTP/2, the end of the body over HTTP/1.1).

    What happens, in order (the same for HTTP/2 and HTTP/1.1 unless said):

    1. ``reset_after``: the connection drops at once, without GOAWAY or an
       answer. The request is not validated and **not recorded** in the inbox
       (it is counted in :class:`~pushsvc.emulator.stats.Stats`).
    2. The request is validated and answered as usual. ``error_rate`` turns
       what would have been accepted into a 503 (a request failing a check
       gets that check's error; test-token first attempts are not used up);
       the 503 is **not recorded**.
    3. An accepted request is **recorded in the inbox now**, on arrival,
       before any delay and before its answer is sent.
    4. ``latency_s``: every answer of an affected request, errors and 503s
       included, is sent this long after the request was complete.
    5. ``goaway_after``: once the N-th answer has been sent (after its
       latency), HTTP/2 sends GOAWAY; streams received until then, including
       those that arrived during the N-th request's latency, are still
       processed and answered, newer ones are refused with
       ``RST_STREAM(REFUSED_STREAM)`` without being processed, counted or
       recorded; the socket closes 0.5 s after the last answer, or 5 s after
       the GOAWAY at the latest. HTTP/1.1 has no GOAWAY: the N-th answer
       carries ``connection: close`` and the socket is closed after it;
       requests pipelined behind it are never read.

    **Accepted, then the answer is lost** (recorded in the inbox; the client
    sees a reset stream or a dead connection, as with a real provider whose
    connection dies): on HTTP/2, when ``reset_after`` drops a connection,
    every earlier request on it whose answer had not yet been written to the
    socket loses it: answers delayed by ``latency_s``, answers waiting for
    flow-control window. (Answers already given to requests read in the
    same socket read as the fatal one are written out first, and the socket
    is closed rather than reset, so the client's kernel keeps them.) With ``goaway_after``, answers still delayed
    when the 5 s grace ends are lost. Over HTTP/1.1 a request is read only
    after the previous answer was written, so ``reset_after`` loses no
    written answer, though bytes the kernel had not yet delivered when the
    socket is aborted can in principle still be lost. On either version, a
    client that resets the stream or closes the connection during
    ``latency_s``, or :meth:`Emulator.stop`, loses pending answers too.

    Counting acceptances: the inbox holds one entry per accepted request
    (retries included) in arrival order, so
    ``emulator.inbox.entries(token=t)`` or ``GET /_emulator/inbox?token=t``
    (optionally ``&platform=apns|fcm``) counts how often ``t`` was accepted.
    The inbox keeps the newest ``EmulatorConfig.inbox_limit`` entries and is
    emptied by ``DELETE /_emulator/inbox``; FCM ``validate_only`` requests
    are never recorded. :class:`~pushsvc.emulator.stats.Stats` counts
    requests of every outcome, not per token.

    Attributes:
        error_rate: Fraction of valid requests answered with a retryable error
            (APNs ``503 ServiceUnavailable``, FCM ``503 UNAVAILABLE``).
        latency_s: Delay added before every send response.
        goaway_after: If > 0, a connection winds down after answering its
            N-th send request: a GOAWAY (debug data ``{"reason":"Shutdown"}``,
            last stream id = highest stream received) follows that response
            over HTTP/2, and the response carries ``connection: close`` over
            HTTP/1.1 (step 5).
        reset_after: If > 0, a connection serves N send requests; when the
            (N+1)-th arrives the TCP connection is dropped without an answer.
    """

    error_rate: float = 0.0
    latency_s: float = 0.0
    goaway_after: int = 0
    reset_after: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Set fields from a JSON object, validating every value first.

        Raises:
            ValueError: Unknown field or a value of the wrong type or range.
        """
        fields = {f.name: f.type for f in dataclasses.fields(self)}
        checked: dict[str, float | int] = {}
        for name, value in changes.items():
            if name not in fields:
                raise ValueError(f"unknown fault {name!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if value < 0:
                raise ValueError(f"{name} must not be negative")
            if name == "error_rate" and value > 1:
                raise ValueError("error_rate must be within [0, 1]")
            if name in ("goaway_after", "reset_after"):
                if value != int(value):
                    raise ValueError(f"{name} must be an integer")
                value = int(value)
            checked[name] = value
        for name, value in checked.items():
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        """The faults as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(slots=True)
class FaultPlan:
    """What to do to one send request, decided up front."""

    reset: bool = False
    goaway: bool = False
    fail: bool = False
    delay_s: float = 0.0


NO_FAULTS = FaultPlan()


def plan_faults(faults: Faults, connection: ClientConnection, rng: random.Random) -> FaultPlan:
    """Count a send request on ``connection`` and decide its faults."""
    connection.send_requests += 1
    count = connection.send_requests
    if not (faults.error_rate or faults.latency_s or faults.goaway_after or faults.reset_after):
        return NO_FAULTS
    return FaultPlan(
        reset=0 < faults.reset_after < count,
        goaway=faults.goaway_after == count,
        fail=faults.error_rate > 0 and rng.random() < faults.error_rate,
        delay_s=faults.latency_s,
    )
