"""PostgreSQL only: what the store's atomicity promises, under real concurrency across connection pools.

Each "replica" here is a `PostgresStores` of its own (its own pool, so its
own server sessions), as separate processes would have:
- the receipt feed never skips a receipt that another writer commits late;
- racing claimants never share a lease;
- an old schema holding data is upgraded by the migrations.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import ReceiptDraft, TargetQuery
from pushsvc.storage.postgres import PostgresStores, open_postgres_stores, schema
from tests.storage.conftest import draft, plans

WRITERS = 4
BATCHES_PER_WRITER = 25


@pytest.fixture
async def replicas(pg_url: str, clock: ManualClock) -> AsyncIterator[list[PostgresStores]]:
    stores = [open_postgres_stores(pg_url, clock=clock) for _ in range(WRITERS + 1)]
    for s in stores:
        await s.prepare()
    try:
        yield stores
    finally:
        for s in stores:
            await s.db.close()


def _receipt(token: str, clock: ManualClock) -> ReceiptDraft:
    return ReceiptDraft(token, models.Platform.FCM, "", models.DeliveryStatus.DELIVERED, "m", 200, "", 1, False, clock.now())


async def test_a_reader_following_the_log_never_skips_a_receipt_committed_late(
    replicas: list[PostgresStores], clock: ManualClock
) -> None:
    """Writers hold their transaction open a random while after taking numbers; the reader must still see every one.

    With numbers taken outside the writing transaction (a sequence, or a
    counter committed first), a writer that took lower numbers and commits
    after one that took higher numbers would be passed over by the reader.
    """
    reader, writers = replicas[0], replicas[1:]
    keep = clock.now() + timedelta(days=7)
    for n in ("n1", "n2"):
        await reader.notifications.create(draft(n, clock.now()), [])
    rng = random.Random(7)
    written: list[str] = []

    async def writer(w: int, stores: PostgresStores) -> None:
        for b in range(BATCHES_PER_WRITER):
            nid = ("n1", "n2")[b % 2]
            tokens = [f"w{w}-b{b}-t{i}" for i in range(rng.randint(1, 20))]
            pause = rng.random() * 0.03

            async def append(conn: asyncpg.Connection, nid: str = nid, tokens: list[str] = tokens, pause: float = pause) -> None:
                day = schema.day_of(keep)
                await stores.receipts.ensure_day(day)
                await stores.receipts._append(conn, "app", nid, [_receipt(t, clock) for t in tokens], keep, day)
                await asyncio.sleep(pause)  # commit late, holding the numbers taken

            await stores.db.run(append, transaction=True)
            written.extend(tokens)
            await asyncio.sleep(rng.random() * 0.01)

    seen_app: list[str] = []
    seen_n1: list[str] = []
    done = asyncio.Event()

    async def follow() -> None:
        last_seq = last_nseq = 0
        while True:
            finished = done.is_set()
            for e in await reader.receipts.read_app("app", last_seq, 1000):
                assert e.seq == last_seq + 1, f"the app log jumped from {last_seq} to {e.seq}"
                last_seq = e.seq
                if e.receipt:
                    seen_app.append(e.receipt.token)
            for e in await reader.receipts.read_notification("app", "n1", last_nseq, 1000):
                assert e.nseq == last_nseq + 1, f"the notification log jumped from {last_nseq} to {e.nseq}"
                last_nseq = e.nseq
                if e.receipt:
                    seen_n1.append(e.receipt.token)
            if finished:
                return
            await asyncio.sleep(0.001)

    follower = asyncio.create_task(follow())
    await asyncio.gather(*(writer(w, s) for w, s in enumerate(writers)))
    done.set()
    await follower
    assert len(seen_app) == len(set(seen_app)) == len(written)
    assert set(seen_app) == set(written)
    n1 = [e.receipt.token for e in await reader.receipts.read_notification("app", "n1", 0, 100_000) if e.receipt]
    assert seen_n1 == n1 and len(n1) == len(set(n1)) > 0


async def test_racing_claimants_never_share_a_lease(replicas: list[PostgresStores], clock: ManualClock) -> None:
    now = clock.now()
    await replicas[0].notifications.create(draft("n1", now), plans(200))
    claimed: dict[str, list[str]] = {}

    async def claimant(i: int, stores: PostgresStores) -> None:
        while True:
            part = await stores.notifications.claim(f"r{i}/boot", now, 600)
            if part is None:
                return
            claimed.setdefault(part.partition_id, []).append(f"r{i}")

    await asyncio.gather(*(claimant(i, s) for i, s in enumerate(replicas) for _ in range(3)))
    assert len(claimed) == 200
    shared = {p: owners for p, owners in claimed.items() if len(owners) > 1}
    assert not shared, f"{len(shared)} partitions won by two claimants: {list(shared.items())[:3]}"
    statuses = await replicas[0].notifications.partitions("n1")
    assert all(s.claims == 1 for s in statuses)


async def test_migrations_upgrade_an_old_schema_that_holds_data(pg_url: str, clock: ManualClock) -> None:
    old = open_postgres_stores(pg_url, clock=clock)
    try:
        assert await old.db.migrate(target=1) == [1]
        now = clock.now()

        async def fill_v1(conn: asyncpg.Connection) -> None:
            # Tokens as version 1 stored them: topics only in the array column.
            for i in range(50):
                token = f"tok-{i}"
                await conn.execute(
                    "INSERT INTO tokens (app_id, bucket, platform, token, topics, created_at, last_seen_at) "
                    "VALUES ('app', $1, 'fcm', $2, $3, $4, $4)",
                    models.token_bucket(token), token, ["news"] if i % 2 else ["sport", "news"], now,
                )

        await old.db.run(fill_v1, transaction=True)
        assert await old.db.run(schema.current_version) == 1
    finally:
        await old.db.close()
    new = open_postgres_stores(pg_url, clock=clock)
    try:
        await new.prepare()
        assert await new.db.run(schema.current_version) == schema.LATEST
        assert await new.db.migrate() == [], "applying the migrations again changes nothing"
        news, sport = TargetQuery("topic", topic="news"), TargetQuery("topic", topic="sport")
        assert await new.tokens.count_targets("app", news) == 50
        assert await new.tokens.count_targets("app", sport) == 25
        pages = [p async for p in new.tokens.scan_targets("app", sport, (0, models.BUCKETS), None, 10)]
        assert sorted(t.token for p in pages for t in p) == sorted(f"tok-{i}" for i in range(50) if i % 2 == 0)
        # The upgraded registry takes changes as a new one does.
        await new.tokens.upsert(models.TokenRegistration("app", "tok-0", models.Platform.FCM, topics=("news",)), now)
        assert await new.tokens.count_targets("app", sport) == 24
    finally:
        await new.db.close()


async def test_racing_registrations_of_one_device_leave_it_one_token(replicas: list[PostgresStores], clock: ManualClock) -> None:
    """Replicas register new tokens for the same devices at once; each device ends with exactly one token."""
    now = clock.now()

    async def register(i: int, stores: PostgresStores) -> None:
        for round_ in range(20):
            regs = [models.TokenRegistration("app", f"r{i}-{round_}-{d}", models.Platform.FCM, device_id=f"dev{d}")
                    for d in range(5)]
            if round_ % 2:
                await stores.tokens.upsert_many(regs, now)
            else:
                for reg in regs:
                    await stores.tokens.upsert(reg, now)

    await asyncio.gather(*(register(i, s) for i, s in enumerate(replicas)))
    held = [t for page in [p async for p in replicas[0].tokens.scan_targets("app", TargetQuery("all"), (0, models.BUCKETS), None, 1000)]
            for t in page]
    assert len(held) == 5, f"{len(held)} tokens for 5 devices"
