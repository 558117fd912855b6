"""Every filter and sort the MongoDB adapter sends is served by a declared index (recorded on FerretDB).

pymongo's command monitoring records each command the adapter sends while the
test drives every store operation, including a dispatcher fan-out. Each
command's filter (and sort) is then checked against `schema.INDEXES` plus the
`_id` index of every collection, the way MongoDB's planner can use a compound
index: its first field is constrained by the filter, and a sort follows the
index's fields once the leading fields pinned by equality (or `$in`) are
skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from pymongo import monitoring

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.config import DispatchSettings
from pushsvc.dispatch import Dispatcher
from pushsvc.providers.base import Outcome, ProviderResult
from pushsvc.receipts import ReceiptSignal
from pushsvc.storage import DuplicateKey, NotificationDraft, PartitionPlan, ReceiptDraft, TargetQuery
from pushsvc.storage.mongo import MongoStores, open_mongo_stores, schema
from tests.unit.fakes import ScriptedProvider

APNS, FCM = models.Platform.APNS, models.Platform.FCM


class Recorder(monitoring.CommandListener):
    """Keeps every started command."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str, Mapping[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append((event.command_name, event.database_name, event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclasses.dataclass
class Query:
    collection: str
    filter: Mapping[str, Any]
    sort: tuple[str, ...]
    command: str


def queries(commands: list[tuple[str, str, Mapping[str, Any]]]) -> list[Query]:
    """The filters and sorts in the recorded commands."""
    out = []
    for name, _, cmd in commands:
        coll = cmd.get(name)
        if name == "find":
            out.append(Query(coll, cmd.get("filter", {}), tuple(cmd.get("sort", {})), name))
        elif name == "findAndModify":
            out.append(Query(coll, cmd.get("query", {}), tuple(cmd.get("sort", {}) or {}), name))
        elif name == "update":
            out += [Query(coll, u["q"], (), name) for u in cmd["updates"]]
        elif name == "delete":
            out += [Query(coll, d["q"], (), name) for d in cmd["deletes"]]
        elif name == "count":
            out.append(Query(coll, cmd.get("query", {}), (), name))
        elif name == "aggregate":
            first = cmd["pipeline"][0] if cmd["pipeline"] else {}
            out.append(Query(coll, first.get("$match", {}), (), name))
    return out


def _pins(value: Any) -> bool:
    """True when a filter value pins a field to one value or a list of values."""
    if not isinstance(value, Mapping):
        return True
    return set(value) <= {"$in", "$eq"}


def served_by(q: Query, keys: tuple[str, ...]) -> bool:
    """Whether an index with these keys serves the query's filter and sort."""
    if not keys or keys[0] not in q.filter:
        return False
    if not q.sort:
        return True
    rest = list(keys)
    while rest and rest[0] in q.filter and _pins(q.filter[rest[0]]) and rest[0] not in q.sort:
        rest.pop(0)
    return tuple(rest[: len(q.sort)]) == q.sort


def unserved(qs: list[Query]) -> list[Query]:
    indexes: dict[str, list[tuple[str, ...]]] = {}
    for index in schema.INDEXES:
        indexes.setdefault(index.collection, []).append(index.keys)
    return [q for q in qs if not any(served_by(q, k) for k in [("_id",), *indexes.get(q.collection, [])])]


def test_the_checker_rejects_what_no_index_serves() -> None:
    bad = [
        Query(schema.TOKENS, {"user_id": "u"}, (), "find"),  # no app_id: no prefix
        Query(schema.TOKENS, {}, (), "find"),  # a full scan
        Query(schema.RECEIPTS, {"app_id": "a"}, ("nseq",), "find"),  # sort no index follows
        Query(schema.PARTITIONS, {"lease_expires_at": {"$lte": 1}}, (), "findAndModify"),
    ]
    assert unserved(bad) == bad
    good = [
        Query(schema.TOKENS, {"app_id": "a", "user_id": {"$in": ["u", "v"]}, "_id": {"$gt": "x"}}, ("_id",), "find"),
        Query(
            schema.PARTITIONS,
            {"done": False, "lane": {"$in": ["bulk", None]}, "lease_expires_at": {"$lte": 1}},
            ("lease_expires_at",),
            "findAndModify",
        ),
    ]
    assert unserved(good) == []


@pytest.fixture
async def recorded(store_url: str, clock: ManualClock) -> Any:
    if not store_url.startswith("mongodb"):
        pytest.skip("commands are recorded on a real MongoDB-protocol server")
    recorder = Recorder()
    stores = open_mongo_stores(store_url, clock=clock, event_listeners=[recorder])
    await stores.prepare()
    try:
        yield stores, recorder
    finally:
        stores.close()


def reg(token: str, platform: models.Platform = APNS, **kw: Any) -> models.TokenRegistration:
    return models.TokenRegistration(app_id="app", token=token, platform=platform, **kw)


async def test_every_command_the_adapter_sends_is_served_by_a_declared_index(
    recorded: tuple[MongoStores, Recorder], clock: ManualClock
) -> None:
    stores, recorder = recorded
    recorder.commands.clear()  # index creation and server sniffing are not queries
    now = clock.now()
    # Tokens: register, refresh, rotate, bulk import, look up, count, prune, unregister.
    await stores.tokens.upsert(reg("a1" * 32, user_id="u1", topics=("news",), device_id="phone"), now)
    await stores.tokens.upsert(reg("a1" * 32, user_id="u1", topics=("news",), device_id="phone"), now)
    await stores.tokens.upsert(reg("a2" * 32, user_id="u1", device_id="phone"), now)
    await stores.tokens.insert_new([reg(f"fcm-{i}", FCM, user_id=f"u{i % 3}", topics=("news",)) for i in range(40)], now)
    await stores.tokens.get("app", APNS, "a2" * 32)
    await stores.tokens.lookup("app", [models.Device("a2" * 32, APNS), models.Device("nope", FCM)])
    for query in (TargetQuery("all"), TargetQuery("users", ("u1", "u2")), TargetQuery("topic", topic="news"),
                  TargetQuery("all", platforms=frozenset({FCM}))):
        await stores.tokens.count_targets("app", query)
        async for _ in stores.tokens.scan_targets("app", query, (0, 512), None, 7):
            pass
        async for _ in stores.tokens.scan_targets("app", query, (100, 900), "app\x000200\x00", 7):
            pass
        # A local-time send: the per-zone count at Send, and each due group's zone-filtered scan.
        zoned = dataclasses.replace(query, timezones=frozenset({"Europe/Paris", ""}))
        await stores.tokens.count_by_timezone("app", query)
        await stores.tokens.count_by_timezone("app", zoned)
        async for _ in stores.tokens.scan_targets("app", zoned, (0, 512), None, 7):
            pass
    await stores.tokens.prune("app", now - timedelta(days=1), frozenset({FCM}), dry_run=True)
    await stores.tokens.prune("app", now - timedelta(days=1), frozenset(), dry_run=False)
    await stores.tokens.delete_invalid("app", FCM, "fcm-1", now)
    await stores.tokens.delete("app", FCM, "fcm-2")

    # Notifications and receipts: a fan-out by a dispatcher, with a 410 and a redone batch.
    draft = NotificationDraft("n1", "app", models.NotificationState.QUEUED, now, 41, TargetQuery("all"),
                              {FCM: {"notification": {"title": "t"}}, APNS: {"headers": {}, "payload": "{}"}},
                              runnable_at=now, target_kind="all", idempotency_key="k1")
    await stores.notifications.create(draft, [PartitionPlan(0, (0, 512)), PartitionPlan(1, (512, 1024))])
    await stores.notifications.find_by_idempotency_key("app", "k1")
    with pytest.raises(DuplicateKey):
        await stores.notifications.create(dataclasses.replace(draft, notification_id="n3"), [PartitionPlan(0, (0, 1024))])
    await stores.notifications.queue_depth()
    fcm = ScriptedProvider(FCM, {"fcm-3": [ProviderResult(Outcome.TOKEN_INVALID, 404, "UNREGISTERED")]})
    dispatcher = Dispatcher(
        tokens=stores.tokens, notifications=stores.notifications, receipts=stores.receipts,
        providers={("app", FCM): fcm, ("app", APNS): ScriptedProvider(APNS)}, clock=clock,
        settings=DispatchSettings(batch_size=10), signal=ReceiptSignal(), owner="w1",
    )
    assert await dispatcher.run_once() and await dispatcher.run_once()
    assert not await dispatcher.run_once()
    receipt = ReceiptDraft("fcm-4", FCM, "", models.DeliveryStatus.DELIVERED, "", 200, "", 1, False, now)
    await stores.receipts.append("app", "n1", [receipt], now + timedelta(days=1))
    await stores.receipts.read_app("app", 0, 100)
    await stores.receipts.read_notification("app", "n1", 3, 100)
    await stores.receipts.last_seq("app")
    await stores.receipts.count_by_status("n1")
    await stores.notifications.partitions("n1")
    await stores.notifications.get("app", "n1")

    # Leases: claim, renew, release, release all, release a restarted replica's, fail.
    await stores.notifications.create(dataclasses.replace(draft, notification_id="n2", idempotency_key=""), [PartitionPlan(0, (0, 1024))])
    part = await stores.notifications.claim("w2", now, 30)
    assert part is not None
    await stores.notifications.renew(part.partition_id, "w2", now, 30)
    await stores.notifications.release(part.partition_id, "w2", now)
    await stores.notifications.claim("w2", now, 30)
    await stores.notifications.release_all("w2", now)
    await stores.notifications.claim("r1/boot-1", now, 30)
    await stores.notifications.release_replica("r1", "r1/boot-2", now)
    await stores.notifications.mark_running("n2", now)
    await stores.notifications.fail("n2", "credentials", now)
    await stores.notifications.drop_partition(part.partition_id)

    # Cancel (a scheduled notification's partitions become runnable) and the listings, with every filter.
    await stores.notifications.create(
        dataclasses.replace(draft, notification_id="n4", idempotency_key="", state=models.NotificationState.SCHEDULED,
                            runnable_at=now + timedelta(hours=1)),
        [PartitionPlan(0, (0, 1024))],
    )
    await stores.notifications.cancel("app", "n4", now)
    await stores.notifications.cancel("app", "n4", now)  # again: read back as it is
    for nfilter in (models.NotificationFilter("app"), models.NotificationFilter("app", state=models.NotificationState.FAILED),
                    models.NotificationFilter("app", created_after=now - timedelta(days=1), created_before=now + timedelta(days=1))):
        page = await stores.notifications.list(nfilter, None, 1)
        if page.after is not None:
            await stores.notifications.list(nfilter, page.after, 1)
    for tfilter in (models.TokenFilter("app"), models.TokenFilter("app", user_id="u1"), models.TokenFilter("app", topic="news"),
                    models.TokenFilter("app", platform=FCM, last_seen_before=now + timedelta(days=1),
                                       last_seen_after=now - timedelta(days=1))):
        tpage = await stores.tokens.list(tfilter, None, 2)
        if tpage.after is not None:
            await stores.tokens.list(tfilter, tpage.after, 2)
    await stores.sweep_expired(now)

    qs = queries(recorder.commands)
    assert {q.command for q in qs} >= {"find", "findAndModify", "update", "delete", "aggregate"}
    assert {q.collection for q in qs} >= {schema.TOKENS, schema.DEVICES, schema.NOTIFICATIONS, schema.PARTITIONS,
                                          schema.RECEIPTS, schema.COUNTERS, schema.IDEMPOTENCY}
    missing = unserved(qs)
    assert not missing, "\n".join(f"{q.command} {q.collection} filter={dict(q.filter)} sort={q.sort}" for q in missing)
