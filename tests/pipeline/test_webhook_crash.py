"""Receipt webhooks across a crash: `pushsvc serve` killed with SIGKILL mid-stream, then restarted.

The HTTPS receiver runs in the test process, so it outlives the server and
sees every POST. After the restart it must hold a receipt for every token,
each POST's signature must verify, and the only duplicates allowed are one
batch offered again whole under the id it had (the one in flight at the kill).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.pipeline.helpers import APP
from tests.pipeline.test_crash import (  # noqa: F401  # `world` is a fixture, used by name
    KILL_AT,
    SLOW_S,
    TIMEOUT_S,
    TOKENS,
    Replica,
    World,
    _finish,
    _seed,
    _send,
    world,
)
from tests.webhooks.receiver import SECRET, Receiver

pytestmark = pytest.mark.timeout(int(TIMEOUT_S) + 120)

MAX_BATCH = 100
SECRET_ENV = "WEBHOOK_CRASH_TEST_SECRET"


def _with_webhook(replica: Replica, receiver: Receiver) -> None:
    with replica.config.open("a") as f:
        f.write(
            f'[[apps.{APP}.webhooks]]\nname = "audit"\nurl = "{receiver.url}"\nsecret_env = "{SECRET_ENV}"\n'
            f'max_batch = {MAX_BATCH}\nmax_delay_ms = 50\nca_file = "{receiver.ca_file}"\n'
            "initial_backoff_s = 0.1\nmax_backoff_s = 1.0\n"
        )


def _tokens(receiver: Receiver) -> set[str]:
    return {t for p in receiver.accepted() for t in p.tokens}


async def _until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():  # type: ignore[operator]  # a callable, typed loosely for brevity
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_killed_replica_restarts_and_its_webhook_misses_nothing(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811  # the imported fixture
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    receiver = Receiver(tmp_path).start()
    tokens = await _seed(world)
    replica = Replica(world, "hook-a")
    _with_webhook(replica, receiver)
    world.emulator.faults.latency_s = SLOW_S
    try:
        replica.start()
        await replica.serving()
        notification_id = await _send(replica.port)
        await _until(lambda: len(_tokens(receiver)) >= TOKENS * KILL_AT, "the webhook never got going")
        replica.kill()
        at_kill = len(_tokens(receiver))
        assert at_kill < TOKENS, "the stream finished before the kill"
        world.emulator.faults.latency_s = 0.0
        replica.start()
        final, got = await _finish(replica.port, notification_id)
        await _until(lambda: len(_tokens(receiver)) >= TOKENS, "the webhook did not deliver every receipt")
        await asyncio.sleep(0.5)  # a late duplicate would show now
    finally:
        replica.stop()
        receiver.stop()
    posts = receiver.all_posts()
    accepted = receiver.accepted()
    assert all(p.signature_ok for p in posts), "every POST verifies"
    assert _tokens(receiver) == set(tokens) == {r.token for r in got}
    # Duplicates only within one batch: the same id, the same receipts, and that at most once.
    by_id: dict[str, list[list[str]]] = {}
    for p in accepted:
        by_id.setdefault(p.message_id, []).append(p.tokens)
    repeated = {i: bodies for i, bodies in by_id.items() if len(bodies) > 1}
    assert all(all(b == bodies[0] for b in bodies) for bodies in repeated.values()), "a retry carries the same batch"
    assert len(repeated) <= 1 and all(len(bodies) == 2 for bodies in repeated.values()), repeated.keys()
    once = Counter(t for bodies in by_id.values() for t in bodies[0])
    assert max(once.values()) == 1, "across distinct batches, every receipt once"
    duplicates = sum(len(p.tokens) for p in accepted) - TOKENS
    assert duplicates <= MAX_BATCH
    assert final.delivered == TOKENS
    # The restarted process took its endpoint back from the stored cursor, not from the log's start or end.
    lines = [json.loads(line) for line in replica.log.read_text().splitlines() if line.startswith("{")]
    starts = [int(m.rsplit(" ", 1)[1]) for m in (x["message"] for x in lines) if m.startswith("webhook audit of app")
              and "sending from receipt" in m]
    assert len(starts) == 2 and starts[0] == 0 and 0 < starts[1] < TOKENS, starts
    print(f"\nwebhook-crash: tokens={TOKENS} received_at_kill={at_kill} posts={len(posts)} duplicates={duplicates}")
