"""Fault storms: a fan-out through the emulator while it churns connections and fails requests.

Each test sends one notification to every registered token while the
emulator's fault injection is on, then compares the receipts with what the
emulator accepted (its inbox):
- every token gets exactly one receipt;
- a push the emulator accepted is never reported FAILED;
- duplicate deliveries stay within 1% of the tokens;
- and, with a scenario of rate-limited and permanently failing tokens, that
  Retry-After is waited out and a permanent error is never retried.

Sizes are what CI affords; `PUSHSVC_STORM_TOKENS` runs them big (the
delivery-engine issue's runs used 5,060 tokens).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import grpc
import pytest

from pushsvc import models
from pushsvc.devstack import start_dev_stack
from pushsvc.emulator.inbox import InboxEntry, Rejection
from pushsvc.emulator.scenario import parse_scenario
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, apns, by_token, notification, receipts, seed

TOKENS = int(os.environ.get("PUSHSVC_STORM_TOKENS", "2000"))
DUPLICATE_BUDGET = 0.01
"""Duplicate deliveries allowed, as a share of the tokens."""


def _tokens() -> list[tuple[str, models.Platform]]:
    half = TOKENS // 2
    tokens = [(apns(i), models.Platform.APNS) for i in range(half)]
    return tokens + [(f"storm-{i}", models.Platform.FCM) for i in range(TOKENS - half)]


async def _storm(
    tmp_path: Path,
    faults: dict[str, float],
    tokens: list[tuple[str, models.Platform]] | None = None,
    scenario: str | None = None,
    seen: list[Rejection | InboxEntry] | None = None,
) -> tuple[dict[str, pb.Receipt], Counter[str], pb.Notification]:
    """Sends to every token under the faults (and scenario).

    `seen`, when given, receives the emulator's inbox entries and the requests
    scenario rules answered with an error.
    """
    tokens = tokens or _tokens()
    dispatch = FAST_DISPATCH.model_copy(update={"batch_size": 500, "partition_size": TOKENS, "max_attempts": 5})
    dev = await start_dev_stack(
        state_dir=tmp_path, port=0, store_url=f"mongomock://localhost/storm{os.getpid()}", dispatch=dispatch
    )
    try:
        await seed(dev.app.stores, tokens)
        if scenario is not None:
            dev.emulator.load_scenario(parse_scenario(scenario))
        dev.emulator.faults.update(faults)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            sent = await stub.Send(
                pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="storm"))
            )
            rs = by_token(await receipts(stub, sent.notification_id, timeout_s=240))
            final = await notification(stub, sent.notification_id)
        accepted = Counter(entry.token for entry in dev.emulator.inbox.entries())
        if seen is not None:
            seen.extend(dev.emulator.inbox.rejections())
            seen.extend(dev.emulator.inbox.entries())
    finally:
        dev.emulator.faults.update({"error_rate": 0, "latency_s": 0, "goaway_after": 0, "reset_after": 0})
        await dev.stop(0)
    assert len(rs) == len(tokens), "one receipt per token"
    return rs, accepted, final


def _assert_truthful(rs: dict[str, pb.Receipt], accepted: Counter[str]) -> int:
    """Checks that no accepted push is reported FAILED; returns the number of duplicate deliveries."""
    lied = [t for t, r in rs.items() if r.status != pb.DELIVERY_STATUS_DELIVERED and accepted[t] > 0]
    assert not lied, f"{len(lied)} receipts say {pb.DeliveryStatus.Name(rs[lied[0]].status)} for accepted pushes"
    missing = [t for t, r in rs.items() if r.status == pb.DELIVERY_STATUS_DELIVERED and accepted[t] == 0]
    assert not missing, f"{len(missing)} DELIVERED receipts for pushes the emulator never accepted"
    return sum(n - 1 for n in accepted.values() if n > 1)


@pytest.mark.timeout(300)
async def test_graceful_goaway_every_40_requests_with_latency(tmp_path: Path) -> None:
    rs, accepted, final = await _storm(tmp_path, {"goaway_after": 40, "latency_s": 0.05})
    duplicates = _assert_truthful(rs, accepted)
    assert all(r.status == pb.DELIVERY_STATUS_DELIVERED for r in rs.values())
    assert duplicates <= DUPLICATE_BUDGET * TOKENS, f"{duplicates} duplicate deliveries"
    assert final.delivered == TOKENS


@pytest.mark.timeout(300)
async def test_errors_and_dropped_connections(tmp_path: Path) -> None:
    # Every connection is dropped when its 201st request arrives, while up to
    # 500 are in flight; and one request in five gets a 503.
    rs, accepted, final = await _storm(tmp_path, {"error_rate": 0.2, "reset_after": 200})
    duplicates = _assert_truthful(rs, accepted)
    assert duplicates <= DUPLICATE_BUDGET * TOKENS, f"{duplicates} duplicate deliveries"
    # What fails, fails after 5 attempts that were never accepted (checked
    # above): 503s and requests lost with their connection. That is rare.
    delivered = sum(r.status == pb.DELIVERY_STATUS_DELIVERED for r in rs.values())
    assert delivered >= 0.99 * TOKENS
    retried = [r for r in rs.values() if r.attempts > 1]
    assert retried, "the storm must actually have caused retries"
    assert final.delivered == delivered


RATE_LIMITS_AND_PERMANENT_ERRORS = """
[[fcm]]
prefix = "rl-"
answers = [{ status = 429, message = "Sending limit exceeded for the message target.", error_code = "QUOTA_EXCEEDED", retry_after_s = 2 }]

[[fcm]]
prefix = "perm-"
answers = [{ status = 400, message = "Invalid value at 'message.android.ttl'", error_code = "INVALID_ARGUMENT", forever = true }]

[[apns]]
prefix = "0413"
answers = [{ status = 413, reason = "PayloadTooLarge", forever = true }]
"""


@pytest.mark.timeout(300)
async def test_rate_limits_are_waited_out_and_permanent_errors_never_retried(tmp_path: Path) -> None:
    # Among the usual tokens: FCM tokens that get 429 with Retry-After: 2 once,
    # and FCM and APNs tokens that get a permanent error on every attempt; all
    # of it through GOAWAYs and latency.
    tokens = _tokens()
    tokens = [
        (f"rl-{i}" if i % 10 == 0 else f"perm-{i}" if i % 10 == 1 else t, p) if p is models.Platform.FCM
        else (apns(i, "0413") if i % 10 == 0 else t, p)
        for i, (t, p) in enumerate(tokens)
    ]
    seen: list[Rejection | InboxEntry] = []
    rs, accepted, final = await _storm(
        tmp_path, {"goaway_after": 50, "latency_s": 0.02}, tokens, RATE_LIMITS_AND_PERMANENT_ERRORS, seen
    )
    rejections = [r for r in seen if isinstance(r, Rejection)]
    accepted_at = {e.token: e.received_at for e in seen if isinstance(e, InboxEntry)}
    duplicates = _assert_truthful(rs, accepted)
    assert duplicates <= DUPLICATE_BUDGET * len(tokens), f"{duplicates} duplicate deliveries"
    rejected = Counter(r.entry.token for r in rejections)
    limited = [t for t, _ in tokens if t.startswith("rl-")]
    permanent = [t for t, _ in tokens if t.startswith(("perm-", "0413"))]
    assert limited and permanent

    first_429 = {r.entry.token: r.entry.received_at for r in rejections if r.status == 429}
    waited = [accepted_at[t] - first_429[t] for t in limited]
    assert all(rs[t].status == pb.DELIVERY_STATUS_DELIVERED for t in limited)
    assert all(rejected[t] == 1 and rs[t].attempts == 2 for t in limited), "one 429, then delivered"
    assert min(waited) >= 2.0 - 0.05, f"Retry-After: 2 not honoured: retried after {min(waited):.2f} s"

    for t in permanent:
        # attempts can exceed 1 only through a request lost with its connection
        # before any answer (outcome unknown); the permanent answer itself ends it.
        assert rs[t].status == pb.DELIVERY_STATUS_FAILED and rs[t].reason in ("INVALID_ARGUMENT", "PayloadTooLarge"), rs[t]
        assert rejected[t] == 1, f"a permanent error was retried: {rejected[t]} answered requests for one token"
        assert accepted[t] == 0
    assert {rs[t].provider_status for t in permanent} == {400, 413}
    assert final.failed == len(permanent)
    assert final.delivered == len(tokens) - len(permanent)



PERMANENT_OR_UNAVAILABLE = ("INVALID_ARGUMENT", "PayloadTooLarge", "ServiceUnavailable", "UNAVAILABLE")
"""How a permanently failing token ends in a storm of 503s: its permanent answer, or (rarely) five 503s before it."""


def _mixed_tokens() -> list[tuple[str, models.Platform]]:
    """The usual tokens, with one in ten FCM tokens rate-limited once and one in ten of each platform failing for good."""
    return [
        (f"rl-{i}" if i % 10 == 0 else f"perm-{i}" if i % 10 == 1 else t, p) if p is models.Platform.FCM
        else (apns(i, "0413") if i % 10 == 0 else t, p)
        for i, (t, p) in enumerate(_tokens())
    ]


@pytest.mark.timeout(300)
async def test_errors_resets_rate_limits_and_permanent_errors_together(tmp_path: Path) -> None:
    # The storms above at once, as the delivery-engine issue ran them: one
    # request in five gets a 503, every connection is dropped at its 201st
    # request, and some tokens are rate-limited or fail for good.
    tokens = _mixed_tokens()
    seen: list[Rejection | InboxEntry] = []
    rs, accepted, final = await _storm(
        tmp_path, {"error_rate": 0.2, "reset_after": 200}, tokens, RATE_LIMITS_AND_PERMANENT_ERRORS, seen
    )
    duplicates = _assert_truthful(rs, accepted)
    assert duplicates <= DUPLICATE_BUDGET * len(tokens), f"{duplicates} duplicate deliveries"
    rejected = Counter(r.entry.token for r in seen if isinstance(r, Rejection))
    permanent = [t for t, _ in tokens if t.startswith(("perm-", "0413"))]
    retried = [t for t in permanent if rejected[t] > 1]
    assert not retried, f"{len(retried)} permanent errors were retried"
    for t in permanent:
        assert rs[t].status == pb.DELIVERY_STATUS_FAILED and rs[t].reason in PERMANENT_OR_UNAVAILABLE, rs[t]
    # What else fails, fails after 5 answered 503s (one in five requests): rare, never an accepted push (checked above).
    assert final.delivered >= 0.99 * (len(tokens) - len(permanent))
    assert final.delivered + final.failed == len(tokens) and final.pending == 0


@pytest.mark.timeout(300)
async def test_answers_lost_with_their_connection_never_make_a_push_failed(tmp_path: Path) -> None:
    # The same storm with answers that take 1 ms: every connection dropped at
    # its 201st request takes the answers still on their way with it, so
    # pushes the emulator accepted look lost to the gateway. They are retried
    # (at-least-once: each such retry is a duplicate, which no client can
    # avoid here), and none may end FAILED: a later 503 does not mean the
    # earlier send was refused.
    tokens = _mixed_tokens()
    seen: list[Rejection | InboxEntry] = []
    rs, accepted, final = await _storm(
        tmp_path, {"error_rate": 0.2, "reset_after": 200, "latency_s": 0.001}, tokens, RATE_LIMITS_AND_PERMANENT_ERRORS, seen
    )
    duplicates = _assert_truthful(rs, accepted)
    # The 1% of the storms above. Each drop takes the answers in flight with
    # it, so the transport's window on requests in flight decides: it starts
    # small and grows a quarter per answer, so the first drop takes a few dozen
    # requests at most, not a burst; after each drop it is one request, the one
    # the drop refused. Measured: 0.05 to 0.6% (with no window, 34%; with a
    # window that started full and kept a quarter after a drop, 7%).
    assert duplicates <= DUPLICATE_BUDGET * len(tokens), f"{duplicates} duplicate deliveries"
    rejected = Counter(r.entry.token for r in seen if isinstance(r, Rejection))
    permanent = [t for t, _ in tokens if t.startswith(("perm-", "0413"))]
    for t in permanent:
        # Sent again only while its answer was lost: the permanent answer, once it arrives, ends it.
        assert rs[t].status == pb.DELIVERY_STATUS_FAILED and rs[t].reason in PERMANENT_OR_UNAVAILABLE, rs[t]
        assert rejected[t] <= rs[t].attempts, (t, rejected[t], rs[t].attempts)
    assert final.delivered >= 0.99 * (len(tokens) - len(permanent))
    assert final.delivered + final.failed == len(tokens) and final.pending == 0
