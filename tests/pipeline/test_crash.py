"""Crash recovery: real `pushsvc serve` processes on FerretDB and PostgreSQL, killed with SIGKILL mid fan-out.

The emulator runs in the test process, so its inbox outlives every server
process: it shows what the providers accepted, duplicates included. Each test
checks that:
- every token ends with exactly one receipt, and the emulator accepted every
  token at least once (nothing is lost);
- duplicate deliveries stay within one batch per partition the killed process
  was working on (`workers` x `batch_size`); on PostgreSQL exactly that, as
  no live replica may lose a lease to a racing claim there;
- the notification's counters equal the receipt log.

Sizes are what CI affords; `PUSHSVC_CRASH_TOKENS=50000` runs them big and
prints the figures, among them the time from restart to resumed delivery
(bench/README.md records the big run).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pymongo
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pushsvc import models
from pushsvc.emulator import DemoCredentials, Emulator, EmulatorConfig, make_demo_credentials
from pushsvc.storage import open_stores
from pushsvc.storage.mongo import schema as mongo_schema
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import postgres_url
from tests.pipeline.helpers import APP, apns, seed

TOKENS = int(os.environ.get("PUSHSVC_CRASH_TOKENS", "3000"))
BIG = TOKENS >= 20_000
WORKERS = 2
BATCH = 500 if BIG else 200
PARTITION = 5_000 if BIG else 1_000
LEASE_S = 10.0
KILL_AT = 0.3
"""The share of tokens the emulator has accepted when the server is killed."""
TIMEOUT_S = 900.0 if BIG else 180.0
SLOW_S = 0.02 if BIG else 0.1
"""Emulator latency until the kill, so that the fan-out is still running when it comes."""

pytestmark = pytest.mark.timeout(int(TIMEOUT_S) + 120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_str(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclasses.dataclass
class World:
    """An emulator in this process, a FerretDB database, and the config of each replica."""

    emulator: Emulator
    credentials: DemoCredentials
    store_url: str
    root: Path
    atomic_claims: bool
    """True where the store's claims are atomic across processes (PostgreSQL): no lease may be lost."""

    def config(self, replica_id: str, port: int) -> Path:
        """A `pushsvc serve` config for one replica (no auth: loopback only)."""
        e, c = self.emulator, self.credentials
        path = self.root / f"{replica_id}.toml"
        path.write_text(
            f"store_url = {_toml_str(self.store_url)}\nhost = \"127.0.0.1\"\nport = {port}\n"
            # FerretDB scans the whole collection for most queries (tests/storage/README.md):
            # at 50k tokens a Send's count takes longer than the default 2 s store timeout.
            f"store_timeout_ms = {30_000 if BIG else 5_000}\n"
            f"[dispatch]\nreplica_id = {_toml_str(replica_id)}\nworkers = {WORKERS}\nbatch_size = {BATCH}\n"
            f"partition_size = {PARTITION}\nlease_s = {LEASE_S}\npoll_interval_s = 0.1\n"
            f"[apps.{APP}.apns]\nbundle_id = {_toml_str(c.apns_bundle_id)}\nkey_file = {_toml_str(c.apns_key_file)}\n"
            f"key_id = {_toml_str(c.apns_key_id)}\nteam_id = {_toml_str(c.apns_team_id)}\n"
            f"production_url = {_toml_str(e.apns_url)}\nsandbox_url = {_toml_str(e.apns_sandbox_url)}\n"
            f"ca_file = {_toml_str(c.ca_file)}\n"
            f"[apps.{APP}.fcm]\nservice_account_file = {_toml_str(c.fcm_service_account_file)}\n"
            f"project_id = {_toml_str(c.fcm_project_id)}\nbase_url = {_toml_str(e.fcm_url)}\nca_file = {_toml_str(c.ca_file)}\n"
        )
        return path


class Replica:
    """One `pushsvc serve` process, started, killed and restarted on the same config and port."""

    def __init__(self, world: World, replica_id: str) -> None:
        self.port = _free_port()
        self.config = world.config(replica_id, self.port)
        self.log = world.root / f"{replica_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "pushsvc"), "serve", "--config", str(self.config), "--insecure-no-auth"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    async def serving(self, within_s: float = 60.0) -> None:
        deadline = time.monotonic() + within_s
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                assert time.monotonic() < deadline, "the replica never became SERVING"
                await asyncio.sleep(0.1)


@pytest.fixture(params=["ferretdb", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    base = request.getfixturevalue(f"{request.param}_base_url")
    if base is None:
        reason = f"crash tests need a {request.param} server (scripts/test starts one)"
        if os.environ.get(f"PUSHSVC_REQUIRE_{request.param.upper()}") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"crash{uuid.uuid4().hex[:12]}"
    store_url = postgres_url(base, name) if request.param == "postgres" else f"{base}{name}"
    emulator = Emulator(EmulatorConfig())
    await emulator.start()
    try:
        credentials, apns_key, fcm_account = make_demo_credentials(
            tmp_path / "creds", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        emulator.add_apns_key(apns_key)
        emulator.add_fcm_account(fcm_account)
        yield World(emulator, credentials, store_url, tmp_path, atomic_claims=request.param == "postgres")
    finally:
        await emulator.stop()


async def _seed(world: World) -> list[str]:
    half = TOKENS // 2
    tokens = [(apns(i), models.Platform.APNS) for i in range(half)]
    tokens += [(f"crash-{i}", models.Platform.FCM) for i in range(TOKENS - half)]
    stores = open_stores(world.store_url)
    try:
        await stores.prepare()
        await seed(stores, tokens)
    finally:
        stores.close()
    return [t for t, _ in tokens]


async def _accepted_at_least(world: World, n: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while len(world.emulator.inbox) < n:
        assert time.monotonic() < deadline, f"only {len(world.emulator.inbox)} of {n} accepted"
        await asyncio.sleep(0.01)


async def _kill_mid_fan_out(world: World, replica: Replica) -> int:
    """Kills the replica once KILL_AT of the tokens were accepted; returns the inbox size when things settled."""
    await _accepted_at_least(world, int(TOKENS * KILL_AT), TIMEOUT_S)
    replica.kill()
    assert len(world.emulator.inbox) < TOKENS, "the fan-out finished before the kill"
    await asyncio.sleep(0.5)  # requests the dead process had already written still arrive
    return len(world.emulator.inbox)


async def _resumed_after(world: World, before: int, start: float) -> float:
    """Seconds from `start` until the emulator accepts a push beyond `before`."""
    while len(world.emulator.inbox) <= before:
        assert time.monotonic() - start < TIMEOUT_S, "delivery never resumed"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def _finish(port: int, notification_id: str) -> tuple[pb.Notification, list[pb.Receipt]]:
    """Waits for the notification to finish; returns it and its receipts, read as a caller would.

    A stream that ends with UNAVAILABLE (the server's max connection age, a
    drain) is resumed from the last cursor, as the clients do.
    """
    got: list[pb.Receipt] = []
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            request = pb.StreamReceiptsRequest(
                app_id=APP, notification_id=notification_id, after=got[-1].cursor if got else ""
            )
            try:
                async for r in stub.StreamReceipts(request, timeout=max(1.0, deadline - time.monotonic())):
                    got.append(r.receipt)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                continue
            reply = await stub.GetNotification(pb.GetNotificationRequest(app_id=APP, notification_id=notification_id))
            return reply.notification, got


async def _send(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        sent = await stub.Send(
            pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="crash")), timeout=60
        )
    assert sent.targeted == TOKENS
    return sent.notification_id


def _lease_losses(*replicas: Replica) -> int:
    """Leases the replicas lost to another claimant while they worked, by their logs.

    On MongoDB a claim is atomic, and a live replica loses no lease in these
    tests. FerretDB 1.24 does not make findAndModify atomic across
    connections (reference/tooling.md §8.4), so two racing claims can both win
    one partition; the loser stops after its batch in flight, which repeats
    that batch. Each such loss is allowed one batch more.
    """
    return sum(r.log.read_text().count("lost the lease on") for r in replicas)


def _stored_receipts(world: World, notification_id: str) -> tuple[Counter[str], Counter[int]]:
    """Receipts per token and per status as the MongoDB-protocol store holds them (fillers left out)."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(world.store_url, serverSelectionTimeoutMS=10_000)
    try:
        docs = list(client.get_default_database()[mongo_schema.RECEIPTS].find({"notification_id": notification_id}))
    finally:
        client.close()
    receipts = [d for d in docs if not d.get("filler")]
    status = {"delivered": pb.DELIVERY_STATUS_DELIVERED, "failed": pb.DELIVERY_STATUS_FAILED,
              "token_invalid": pb.DELIVERY_STATUS_TOKEN_INVALID, "expired": pb.DELIVERY_STATUS_EXPIRED}
    return Counter(d["token"] for d in receipts), Counter(status[d["status"]] for d in receipts)


def _check(
    world: World, tokens: list[str], final: pb.Notification, got: list[pb.Receipt], killed_workers: int, lost: int
) -> int:
    """The invariants of every crash test; returns the duplicate deliveries."""
    if world.atomic_claims:
        assert lost == 0, f"{lost} lease(s) lost to a racing claim on a store whose claims are atomic"
        per_token = Counter(r.token for r in got)
        statuses = Counter(r.status for r in got)
    else:
        # FerretDB: receipts are checked in the store, not through the stream.
        # The stream follows the notification's dense receipt numbers, taken
        # with $inc, and FerretDB 1.24 loses concurrent $inc updates across
        # connections (tests/storage/README.md): two replicas can number two
        # batches alike, and a reader by number then sees one of each pair.
        # Seen in CI: all 3,000 receipts stored, 200 numbers taken twice. The
        # stream itself is proven on PostgreSQL, whose numbering is atomic.
        per_token, statuses = _stored_receipts(world, final.notification_id)
    assert set(per_token) == set(tokens), "a receipt for every token"
    assert max(per_token.values()) == 1, "exactly one receipt per token"
    assert set(statuses) == {pb.DELIVERY_STATUS_DELIVERED}
    accepted = Counter(e.token for e in world.emulator.inbox.entries())
    assert set(accepted) == set(tokens), "the emulator accepted every token at least once"
    duplicates = sum(n - 1 for n in accepted.values())
    bound = (killed_workers + lost) * BATCH
    assert duplicates <= bound, (
        f"{duplicates} duplicate deliveries; at most one batch per partition in flight "
        f"({killed_workers} killed, {lost} lost to racing claims: {bound})"
    )
    assert final.state == pb.NOTIFICATION_STATE_COMPLETED
    assert (final.delivered, final.failed, final.invalid_tokens, final.expired, final.pending) == (
        statuses[pb.DELIVERY_STATUS_DELIVERED], statuses[pb.DELIVERY_STATUS_FAILED],
        statuses[pb.DELIVERY_STATUS_TOKEN_INVALID], statuses[pb.DELIVERY_STATUS_EXPIRED], 0,
    ), "the counters equal the receipt log"
    return duplicates


def _report(name: str, **figures: object) -> None:
    print(f"\n{name}: tokens={TOKENS} workers={WORKERS} batch={BATCH} partition={PARTITION} lease_s={LEASE_S} "
          + " ".join(f"{k}={v}" for k, v in figures.items()))


async def test_a_killed_replica_restarts_and_resumes_its_own_partitions_at_once(world: World) -> None:
    tokens = await _seed(world)
    replica = Replica(world, "crash-a")
    world.emulator.faults.latency_s = SLOW_S  # keep the fan-out going long enough to be killed mid-way
    try:
        replica.start()
        await replica.serving()
        notification_id = await _send(replica.port)
        t0 = time.monotonic()
        settled = await _kill_mid_fan_out(world, replica)
        killed_after_s = time.monotonic() - t0
        world.emulator.faults.latency_s = 0.0
        restart = time.monotonic()
        replica.start()
        resumed_s = await _resumed_after(world, settled, restart)
        # Reclaimed, not waited out: the dead run's leases had LEASE_S to go.
        # (At the big size FerretDB's first full-collection scan alone can take
        # longer; the log line below still proves the reclaim.)
        if not BIG:
            assert resumed_s < LEASE_S, f"delivery resumed {resumed_s:.1f} s after the restart"
        final, got = await _finish(replica.port, notification_id)
        done_s = time.monotonic() - restart
    finally:
        replica.stop()
    lost = _lease_losses(replica)
    duplicates = _check(world, tokens, final, got, WORKERS, lost)
    _report(
        "crash-restart", leases_lost=lost, killed_after_s=f"{killed_after_s:.1f}", accepted_at_kill=settled,
        restart_to_resumed_s=f"{resumed_s:.2f}", restart_to_done_s=f"{done_s:.1f}", duplicates=duplicates,
    )
    reclaimed = f"replica crash-a restarted: resuming {WORKERS} partition(s)"
    assert reclaimed in replica.log.read_text(), "the restarted replica freed both leases its dead run held"


async def test_two_replicas_one_killed_the_other_finishes_after_the_lease(world: World) -> None:
    tokens = await _seed(world)
    a, b = Replica(world, "crash-a"), Replica(world, "crash-b")
    world.emulator.faults.latency_s = SLOW_S
    try:
        a.start()
        b.start()
        await a.serving()
        await b.serving()
        notification_id = await _send(a.port)
        settled = await _kill_mid_fan_out(world, a)
        killed = time.monotonic()
        world.emulator.faults.latency_s = 0.0
        final, got = await _finish(b.port, notification_id)
        done_s = time.monotonic() - killed
    finally:
        a.stop()
        b.stop()
    lost = _lease_losses(a, b)
    duplicates = _check(world, tokens, final, got, WORKERS, lost)
    _report("crash-one-of-two", leases_lost=lost, accepted_at_kill=settled, kill_to_done_s=f"{done_s:.1f}", duplicates=duplicates)
