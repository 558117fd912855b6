"""PostgreSQL only: at 100k tokens and 100k receipts, no statement the adapter sends scans a large table.

The rows belong to several apps and notifications, as in production, so a
query that reads one app or one notification must not read them all.

Every statement the adapter sends while exercising each store method is
recorded (asyncpg's query logger), then planned again with EXPLAIN and the
same arguments. A sequential scan of `tokens`, `token_topics` or the receipt
log fails the test. The small tables (notifications, partitions, counters)
may be scanned where the planner likes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import PartitionPlan, ReceiptDraft, TargetQuery
from pushsvc.storage.postgres import PostgresStores, open_postgres_stores
from tests.storage.conftest import draft

ROWS = 100_000
LARGE = ("tokens", "token_topics", "receipts")
FCM, APNS = models.Platform.FCM, models.Platform.APNS


@dataclasses.dataclass
class Recorded:
    query: str
    args: tuple[Any, ...]


@pytest.fixture
async def loaded(pg_url: str, clock: ManualClock) -> AsyncIterator[tuple[PostgresStores, list[Recorded]]]:
    recorded: list[Recorded] = []
    stores = open_postgres_stores(pg_url, clock=clock, query_logger=lambda q: recorded.append(Recorded(q.query, tuple(q.args))))
    await stores.prepare()
    now = clock.now()
    # One app in ten holds a tenth of the registry; a tenth of its tokens follow "news", the rest other topics.
    regs = [
        models.TokenRegistration(
            "app" if i % 10 == 0 else f"app{i % 10}", f"tok-{i}", FCM, user_id=f"u{i % 20_000}",
            topics=("news",) if i % 100 == 0 else (f"topic{i % 50}",), device_id=f"d{i}",
        )
        for i in range(ROWS)
    ]
    for i in range(0, ROWS, 10_000):
        await stores.tokens.insert_new(regs[i : i + 10_000], now)
    keep = now + timedelta(days=7)
    for k in range(10):  # ten notifications of 10k receipts each
        await stores.notifications.create(draft(f"bulk{k}", now), [])
        for i in range(0, ROWS // 10, 2_000):
            drafts = [
                ReceiptDraft(f"tok-{j}", FCM, "", models.DeliveryStatus.DELIVERED, "", 200, "", 1, False, now)
                for j in range(i, i + 2_000)
            ]
            await stores.receipts.append("app" if k == 0 else f"app{k}", f"bulk{k}", drafts, keep)
    await stores.db.run(lambda conn: conn.execute("VACUUM ANALYZE", timeout=300))
    recorded.clear()
    try:
        yield stores, recorded
    finally:
        await stores.db.close()


def _seq_scans(plan: Any) -> list[str]:
    found: list[str] = []
    if isinstance(plan, dict):
        relation = plan.get("Relation Name", "")
        if plan.get("Node Type") == "Seq Scan" and any(relation == t or relation.startswith(t + "_") for t in LARGE):
            found.append(relation)
        for value in plan.values():
            found += _seq_scans(value)
    elif isinstance(plan, list):
        for item in plan:
            found += _seq_scans(item)
    return found


async def test_every_statement_is_served_by_an_index(loaded: tuple[PostgresStores, list[Recorded]], clock: ManualClock) -> None:
    stores, recorded = loaded
    now = clock.now()
    t, n, r = stores.tokens, stores.notifications, stores.receipts
    # Tokens: register, refresh, rotate, bulk register, look up, count, scan, prune, unregister.
    await t.upsert(models.TokenRegistration("app", "new-1", FCM, user_id="u1", topics=("news",), device_id="phone"), now)
    await t.upsert(models.TokenRegistration("app", "new-2", FCM, user_id="u1", topics=("sport",), device_id="phone"), now)
    await t.upsert_many([models.TokenRegistration("app", f"bulk-{i}", APNS, device_id=f"bd{i}") for i in range(50)], now)
    await t.insert_new([models.TokenRegistration("app", "imp-1", FCM, topics=("news",))], now)
    await t.get("app", FCM, "tok-5")
    await t.lookup("app", [models.Device("tok-5", FCM), models.Device("nope", APNS)])
    for query in (TargetQuery("all"), TargetQuery("users", user_ids=("u1", "u2")), TargetQuery("topic", topic="news"),
                  TargetQuery("all", platforms=frozenset({FCM}))):
        await t.count_targets("app", query)
        pages = t.scan_targets("app", query, (0, 64), None, 100)
        async for page in pages:
            async for _ in t.scan_targets("app", query, (0, 64), page[-1].ref, 100):
                break
            break
        await pages.aclose()
        # A local-time send: the per-zone count at Send, and each due group's zone-filtered scan.
        zoned = dataclasses.replace(query, timezones=frozenset({"Europe/Paris", ""}))
        await t.count_by_timezone("app", query)
        await t.count_by_timezone("app", zoned)
        await t.count_targets("app", zoned)
        async for _ in t.scan_targets("app", zoned, (0, 64), None, 100):
            break
    await t.prune("app", now - timedelta(days=30), frozenset(), dry_run=True)
    await t.prune("app", now - timedelta(days=30), frozenset({APNS}), dry_run=False)
    await t.delete("app", FCM, "new-2")
    await t.delete_invalid("app", FCM, "tok-7", now)
    # Notifications: create, claim, renew, commit, finish (settles against the log), fail.
    await n.create(draft("n1", now, idempotency_key="k1"), [PartitionPlan(0, (0, 512)), PartitionPlan(1, (512, 1024))])
    await n.find_by_idempotency_key("app", "k1")
    await n.get("app", "n1")
    await n.partitions("n1")
    await n.queue_depth()
    await n.mark_running("n1", now)
    part = await n.claim("r1/boot", now, 30)
    assert part is not None
    await n.renew(part.partition_id, "r1/boot", now, 30)
    await r.append("app", "n1", [ReceiptDraft("tok-1", FCM, "", models.DeliveryStatus.DELIVERED, "", 200, "", 1, False, now)],
                   now + timedelta(days=7))
    await n.commit_batch(part.partition_id, "r1/boot", (3, "fcm", "tok-1"), {models.DeliveryStatus.DELIVERED: 1}, now, 30)
    await n.finish_partition(part.partition_id, "r1/boot", now)
    other = await n.claim("r1/boot", now, 30)
    assert other is not None
    await n.release(other.partition_id, "r1/boot", now)
    await n.claim("r1/boot", now, 30)
    await n.release_all("r1/boot", now)
    await n.claim("r1/old", now, 30)
    await n.release_replica("r1", "r1/new", now)
    await n.fail("n1", "credentials", now)
    await n.drop_partition(part.partition_id)
    # Cancel, and the listings with every filter, each for a first and a later page.
    await n.create(draft("n2", now), [PartitionPlan(0, (0, 1024))])
    await n.cancel("app", "n2", now)
    await n.cancel("app", "n2", now)
    for nfilter in (models.NotificationFilter("app"), models.NotificationFilter("app", state=models.NotificationState.QUEUED),
                    models.NotificationFilter("app", created_after=now - timedelta(days=1), created_before=now + timedelta(days=1))):
        npage = await n.list(nfilter, None, 1)
        await n.list(nfilter, npage.after or ("2026-01-01T00:00:00+00:00", "x"), 1)
    for tfilter in (models.TokenFilter("app"), models.TokenFilter("app", user_id="u10"), models.TokenFilter("app", topic="news"),
                    models.TokenFilter("app", platform=FCM), models.TokenFilter("app", last_seen_before=now - timedelta(days=1)),
                    models.TokenFilter("app", user_id="u10", topic="news", last_seen_after=now - timedelta(days=1))):
        tpage = await t.list(tfilter, None, 50)
        await t.list(tfilter, tpage.after or ("fcm", "tok-0"), 50)
    # Receipts: the app log, one notification's log (a replay), counts.
    await r.read_app("app", 5_000, 100)
    await r.read_notification("app", "bulk0", 5_000, 100)
    await r.last_seq("app")
    await r.count_by_status("bulk0")

    # Transaction control, DDL, and the pool's own reset of a returned connection.
    skip = ("CREATE", "DROP", "VACUUM", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SELECT PG_ADVISORY_UNLOCK_ALL")
    statements = [s for s in recorded if not s.query.lstrip().upper().startswith(skip)]
    assert len(statements) > 40
    offenders = []

    async def explain(conn: asyncpg.Connection) -> None:
        for s in statements:
            try:
                plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + s.query, *s.args)  # decoded by the json codec
            except asyncpg.PostgresError as exc:
                raise AssertionError(f"{exc}: {s.query[:500]}") from exc
            scans = _seq_scans(plan)
            if scans:
                offenders.append(f"{sorted(set(scans))}: {' '.join(s.query.split())[:300]}")

    await stores.db.run(explain)
    assert not offenders, "\n".join(offenders)
