"""Drain: streams whose clients stopped reading, in-flight batches, and SIGTERM under load on a real `pushsvc serve`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pushsvc import models
from pushsvc.devstack import start_dev_stack
from pushsvc.emulator import DemoCredentials, Emulator, EmulatorConfig, make_demo_credentials
from pushsvc.storage import open_stores
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.clients.devserver import PUSHSVC, free_port
from tests.conftest import FAST_DISPATCH
from tests.pipeline.helpers import APP, notification, receipts, seed
from tests.pipeline.stalling_store import StallingStore

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# The client side of HTTP/2 flow control stays at its initial window when it
# does not probe the bandwidth-delay product, so a client that stops reading
# stalls the server's writes after a few hundred receipts.
NO_BDP = [("grpc.http2.bdp_probe", 0)]


async def _read_rest(call: grpc.aio.UnaryStreamCall) -> tuple[int, grpc.StatusCode]:  # type: ignore[type-arg]
    """Reads what is left of a stream; returns how many messages and the final code."""
    n = 0
    try:
        while (await call.read()) is not grpc.aio.EOF:
            n += 1
    except grpc.aio.AioRpcError as err:
        return n, err.code()
    return n, grpc.StatusCode.OK


async def test_a_stream_whose_client_stopped_reading_does_not_hold_the_drain(tmp_path: Path) -> None:
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url="memory://drain", dispatch=FAST_DISPATCH)
    stopped = False
    try:
        size = 5_000
        await seed(dev.app.stores, [(f"fcm-{i}", models.Platform.FCM) for i in range(size)])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}", options=NO_BDP) as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="stall")))
            assert len(await receipts(stub, sent.notification_id, timeout_s=60)) == size
            stalled = stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=sent.notification_id))
            first = await stalled.read()
            assert first is not grpc.aio.EOF
            await asyncio.sleep(0.5)  # the server fills the window and blocks in its write
            grace_s = 10.0
            started = time.monotonic()
            stopped = True
            await asyncio.wait_for(dev.app.stop(grace_s), grace_s + 5)
            took = time.monotonic() - started
            read, code = await asyncio.wait_for(_read_rest(stalled), 10)
        # The drain gives open streams 0.5 s (GrpcServer's _STREAMS_END_S) after the unary calls, not the grace.
        assert took < 4.0, f"the drain waited {took:.1f} s of its {grace_s} s grace for a client that does not read"
        assert code == grpc.StatusCode.UNAVAILABLE, code
        assert 0 < read < size - 1, "the client got what was already on its way, then UNAVAILABLE"
    finally:
        if not stopped:
            await dev.app.stop(0)
        await dev.emulator.stop()


class _Serve:
    """A `pushsvc serve --insecure-no-auth` subprocess, its log in a file (a pipe could fill and stall it)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSVC_")} | {"PYTHONUNBUFFERED": "1"}
        self.log = log
        with log.open("a") as out:
            self.proc = subprocess.Popen(
                [PUSHSVC, "serve", "--config", str(config), "--port", str(self.port), "--insecure-no-auth"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def serving(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with grpc.aio.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{self.log.read_text()}"
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == SERVING:
                        return
                assert time.monotonic() < deadline, f"serve not SERVING after {timeout_s} s:\n{self.log.read_text()}"
                await asyncio.sleep(0.1)

    async def exited(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"serve still running {timeout_s} s after SIGTERM:\n{self.log.read_text()}")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    async def exited_after_sigterm(self, timeout_s: float) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await self.exited(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _config(path: Path, store_url: str, emulator: Emulator, credentials: DemoCredentials, grace_s: float, lease_s: float) -> Path:
    path.write_text(
        f'store_url = "{store_url}"\nhost = "127.0.0.1"\ngrace_s = {grace_s}\n'
        f"[dispatch]\nworkers = 2\nlease_s = {lease_s}\nbatch_size = 25\npartition_size = 100\npoll_interval_s = 0.05\n"
        f"initial_backoff_s = 0.05\nmax_backoff_s = 0.5\nreceipt_gap_grace_s = 1.0\n"
        f"[apps.{APP}.fcm]\n"
        f'service_account_file = "{credentials.fcm_service_account_file}"\nproject_id = "{credentials.fcm_project_id}"\n'
        f'base_url = "{emulator.fcm_url}"\nca_file = "{credentials.ca_file}"\n'
    )
    return path


class _Follower:
    """Reads a stream to its end; remembers each receipt, when the stream ended and how."""

    def __init__(self, call: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
        self.call = call
        self.got: list[pb.Receipt] = []
        self.ended_at = 0.0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> grpc.StatusCode:
        try:
            async for r in self.call:
                self.got.append(r.receipt)
        except grpc.aio.AioRpcError as err:
            return err.code()
        finally:
            self.ended_at = time.monotonic()
        return grpc.StatusCode.OK


class _Load:
    """Sends to three devices at a time, with idempotency keys, until stopped; keeps every answer."""

    def __init__(self, stub: push_pb2_grpc.PushServiceStub, workers: int = 3) -> None:
        self._stub = stub
        self._stop = asyncio.Event()
        self.answers: list[tuple[float, float, grpc.StatusCode, str, list[str]]] = []
        """(started, ended, code, notification id or details, tokens)"""
        self._tasks = [asyncio.ensure_future(self._run(w)) for w in range(workers)]

    async def _run(self, worker: int) -> None:
        i = 0
        while not self._stop.is_set():
            tokens = [f"load-{worker}-{i}-{k}" for k in range(3)]
            request = pb.SendRequest(
                app_id=APP,
                target=pb.Target(devices=pb.DeviceList(devices=[pb.Device(token=t, platform=pb.PLATFORM_FCM) for t in tokens])),
                message=pb.Message(title="load"),
                idempotency_key=f"load-{worker}-{i}",
            )
            started = time.monotonic()
            try:
                sent = await self._stub.Send(request, timeout=30)
                self.answers.append((started, time.monotonic(), grpc.StatusCode.OK, sent.notification_id, tokens))
            except grpc.aio.AioRpcError as err:
                self.answers.append((started, time.monotonic(), err.code(), err.details() or "", tokens))
                if err.code() == grpc.StatusCode.UNAVAILABLE:
                    return  # a client would now go to another replica
            i += 1

    async def finished(self, timeout_s: float) -> None:
        await asyncio.wait_for(asyncio.gather(*self._tasks), timeout_s)

    def stop(self) -> None:
        self._stop.set()


async def test_sigterm_under_load_drains_in_order_and_loses_nothing(tmp_path: Path, ferretdb_base_url: str | None) -> None:
    if ferretdb_base_url is None:
        pytest.skip("serve needs a mongodb:// store: no FerretDB server")
    grace_s, lease_s, size = 15.0, 60.0, 800
    emulator = Emulator(EmulatorConfig())
    await emulator.start()
    replicas: list[_Serve] = []
    stores = None
    load: _Load | None = None
    try:
        credentials, _apns_key, fcm_account = make_demo_credentials(
            tmp_path / "creds", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        emulator.add_fcm_account(fcm_account)
        store_url = f"{ferretdb_base_url}drain{uuid.uuid4().hex[:12]}"
        config = _config(tmp_path / "pushsvc.toml", store_url, emulator, credentials, grace_s, lease_s)
        first = _Serve(config, tmp_path / "first.log")
        replicas.append(first)
        await first.serving()
        stores = open_stores(store_url)
        tokens = [f"fcm-{i}" for i in range(size)]
        await seed(stores, [(t, models.Platform.FCM) for t in tokens])

        async with grpc.aio.insecure_channel(first.target, options=NO_BDP) as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            # A stream that stops reading: a finished notification with more receipts than fit the flow-control window.
            old = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="old")))
            assert len(await receipts(stub, old.notification_id, timeout_s=120)) == size
            stalled = stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=old.notification_id))
            assert (await stalled.read()) is not grpc.aio.EOF

            emulator.faults.latency_s = 0.05  # the fan-out is under way at SIGTERM
            sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="drain")))
            assert sent.targeted == size
            follower = _Follower(stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=sent.notification_id)))
            feed = _Follower(stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP)))
            watch = health.Watch(health_pb2.HealthCheckRequest(service="pushsvc.v1.PushService"))
            assert (await asyncio.wait_for(watch.read(), 5)).status == SERVING  # type: ignore[union-attr]
            load = _Load(stub)
            deadline = time.monotonic() + 60
            while len(follower.got) < size // 5:
                assert time.monotonic() < deadline and not follower.task.done(), "the fan-out did not get going"
                await asyncio.sleep(0.02)

            # A unary call that is surely in flight at SIGTERM: a batch of
            # registrations takes FerretDB about 5-13 ms per item. (Another
            # app's tokens: the fan-out to all of APP is still reading targets.)
            bulk_items = [pb.TokenRegistration(token=f"bulk-{i}", platform=pb.PLATFORM_FCM) for i in range(200)]
            bulk = asyncio.ensure_future(
                stub.RegisterTokens(pb.RegisterTokensRequest(app_id="drain-bulk", items=bulk_items), timeout=60)
            )
            await asyncio.sleep(0.2)
            assert not bulk.done(), "the batch finished before SIGTERM"
            first.proc.send_signal(signal.SIGTERM)
            sigterm = time.monotonic()
            change = await asyncio.wait_for(watch.read(), 5)
            not_serving_at = time.monotonic()
            assert change.status == NOT_SERVING  # type: ignore[union-attr]
            assert await asyncio.wait_for(follower.task, grace_s) == grpc.StatusCode.UNAVAILABLE
            assert await asyncio.wait_for(feed.task, grace_s) == grpc.StatusCode.UNAVAILABLE
            await load.finished(grace_s)  # each sender stops at its first UNAVAILABLE
            rc = await first.exited(grace_s + 5)
            took = time.monotonic() - sigterm
            _, stalled_code = await asyncio.wait_for(_read_rest(stalled), 10)

        assert rc == 0, first.log.read_text()
        assert took < grace_s + 2, f"exit {took:.1f} s after SIGTERM; grace_s is {grace_s}"
        assert took < grace_s / 2, f"exit took {took:.1f} s: something held the drain (the stalled stream?)"
        assert stalled_code == grpc.StatusCode.UNAVAILABLE
        # Health first. The server turns NOT_SERVING before it signals the
        # streams, in the same event-loop turn, so the client may see the two in
        # either order within a few milliseconds, never the streams well before.
        assert not_serving_at <= min(follower.ended_at, feed.ended_at) + 0.05, (not_serving_at, follower.ended_at, feed.ended_at)
        # Sends under way when the signal went out finish OK (with a margin for the signal's delivery).
        before = [(ended, code) for started, ended, code, _, _ in load.answers if started < sigterm - 0.1]
        assert all(code == grpc.StatusCode.OK for _, code in before), load.answers
        # The unary call in flight at SIGTERM finishes, with its answer.
        registered = await bulk
        assert len(registered.results) == len(bulk_items)
        assert all(r.outcome == pb.REGISTRATION_OUTCOME_CREATED for r in registered.results), registered
        # Later ones are refused: UNAVAILABLE from pushsvc, or, for one that
        # reaches the server in the instant it stops, CANCELLED from grpc core,
        # which never handed it to pushsvc.
        late = Counter(code for started, _, code, _, _ in load.answers if started >= sigterm - 0.1 and code != grpc.StatusCode.OK)
        assert set(late) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED} and late[grpc.StatusCode.UNAVAILABLE], load.answers
        # Leases are released: every unfinished partition is free the moment the process is gone.
        parts = await stores.notifications.partitions(sent.notification_id)
        assert all(p.done or p.owner is None for p in parts), parts
        assert not all(p.done for p in parts), "SIGTERM came mid-fan-out"

        emulator.faults.latency_s = 0.0
        restarted = time.monotonic()
        second = _Serve(config, tmp_path / "second.log")
        replicas.append(second)
        await second.serving()
        async with grpc.aio.insecure_channel(second.target) as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            # The follower resumes by cursor on the new replica: nothing lost, nothing repeated.
            rest = await receipts(stub, sent.notification_id, after=follower.got[-1].cursor if follower.got else "", timeout_s=120)
            finished = time.monotonic() - restarted
            everything = follower.got + rest
            assert sorted(r.token for r in everything) == sorted(tokens)
            n = await notification(stub, sent.notification_id)
            assert (n.state, n.delivered, n.pending) == (pb.NOTIFICATION_STATE_COMPLETED, size, 0)
            # Every Send the first replica accepted ends with exactly one receipt per token.
            accepted = [(nid, toks) for _, _, c, nid, toks in load.answers if c == grpc.StatusCode.OK]
            assert accepted
            for nid, toks in accepted:
                got = await receipts(stub, nid, timeout_s=60)
                assert sorted(r.token for r in got) == sorted(toks), nid
        assert finished < lease_s / 2, f"the restart took {finished:.1f} s to finish: it waited for leases"
        assert await second.exited_after_sigterm(grace_s + 5) == 0
    finally:
        if load is not None:
            load.stop()
        for replica in replicas:
            replica.kill()
        if stores is not None:
            stores.close()
        await emulator.stop()


async def test_sigterm_with_a_store_that_hangs_logs_each_step_and_exits_within_the_grace(tmp_path: Path) -> None:
    grace_s = 3.0
    emulator = Emulator(EmulatorConfig())
    await emulator.start()
    store = StallingStore()
    serve: _Serve | None = None
    try:
        credentials, _apns_key, fcm_account = make_demo_credentials(
            tmp_path / "creds", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        emulator.add_fcm_account(fcm_account)
        config = _config(tmp_path / "pushsvc.toml", store.url, emulator, credentials, grace_s, lease_s=30.0)
        serve = _Serve(config, tmp_path / "serve.log")
        await serve.serving()
        store.stall()  # from now on every store call waits forever, the drain's own included
        async with grpc.aio.insecure_channel(serve.target) as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            stuck = asyncio.ensure_future(
                stub.RegisterToken(pb.RegisterTokenRequest(app_id=APP, token="fcm-stuck", platform=pb.PLATFORM_FCM), timeout=30)
            )
            await asyncio.sleep(0.5)
            assert not stuck.done(), "the store answered"
            serve.proc.send_signal(signal.SIGTERM)
            sigterm = time.monotonic()
            rc = await serve.exited(grace_s + 10)
            took = time.monotonic() - sigterm
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stuck
        text = serve.log.read_text()
        assert rc == 0, text
        assert took <= grace_s + 0.5, f"exit {took:.1f} s after SIGTERM with grace_s = {grace_s}:\n{text}"
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        messages = [line["message"] for line in lines]
        steps = [
            "received SIGTERM: draining",
            "drain: health NOT_SERVING, new calls refused; 1 unary call(s) in flight, 0 receipt stream(s) open",
            "drain: calls done after",
            "0 unary call(s) finished, 1 cancelled at the grace; 0 receipt stream(s) ended with UNAVAILABLE",
            "drain: dispatcher stopped after",
            "leases left to expire",
            "drain: done in",
            "exit 0, ",
        ]
        at = [next((i for i, m in enumerate(messages) if step in m), -1) for step in steps]
        assert -1 not in at and at == sorted(at), "\n".join(messages)
    finally:
        if serve is not None:
            serve.kill()
        store.close()
        await emulator.stop()


async def test_the_drain_logs_its_counts_when_the_store_answers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dev = await start_dev_stack(state_dir=tmp_path, port=0, store_url="memory://drain-counts", dispatch=FAST_DISPATCH)
    try:
        await seed(dev.app.stores, [(f"fcm-{i}", models.Platform.FCM) for i in range(300)])
        dev.emulator.faults.latency_s = 0.2  # a batch is in flight when the drain begins
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="counts")))
            deadline = time.monotonic() + 10
            while not dev.app.dispatcher.working:
                assert time.monotonic() < deadline, "the fan-out did not start"
                await asyncio.sleep(0.01)
            caplog.set_level("INFO", logger="pushsvc")
            await dev.app.stop(5.0)
        parts = await dev.app.stores.notifications.partitions(sent.notification_id)
    finally:
        await dev.emulator.stop()
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("drain:")]
    assert len(messages) == 4, messages
    assert "0 unary call(s) in flight, 0 receipt stream(s) open, 1 partition(s) being sent" in messages[0]
    assert "0 unary call(s) finished, 0 cancelled at the grace; 0 receipt stream(s) ended" in messages[1]
    # The batch in flight finished and was checkpointed; its partition went back to the store.
    assert "1 partition(s) were being sent, 0 batch(es) cancelled; 1 lease(s) released" in messages[2], messages[2]
    assert messages[3].startswith("drain: done in")
    assert all(p.owner is None for p in parts) and not all(p.done for p in parts)
