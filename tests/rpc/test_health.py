"""grpc.health.v1 through a real server: NOT_SERVING while starting, while the store is unreachable and while draining."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from pushsvc import models
from pushsvc.bootstrap import Application, build_application
from pushsvc.clock import Clock, ManualClock, SystemClock
from pushsvc.config import Settings
from pushsvc.rpc.server import LIVENESS_SERVICE
from pushsvc.storage.memory import MemoryStores
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
NAMES = ("", "pushsvc.v1.PushService")


class _GatedTokens:
    """The memory token store; `upsert` waits for `gate` when one is set (a RegisterToken held in flight)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.gate: asyncio.Event | None = None
        self.waiting = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        if self.gate is not None:
            self.waiting += 1
            await self.gate.wait()
        return await self._inner.upsert(reg, now)  # type: ignore[no-any-return]


class GatedStores:
    """The memory stores, with a `prepare` that waits for `prepared` and a `ping` that answers `reachable`
    (after `ping_gate`, when one is set)."""

    def __init__(self) -> None:
        self._inner = MemoryStores()
        self.tokens = _GatedTokens(self._inner.tokens)
        self.prepared = asyncio.Event()
        self.reachable = True
        self.ping_gate: asyncio.Event | None = None
        """When set, `ping` waits for it (a store that does not answer)."""
        self._failure: list[Callable[[], None]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def prepare(self) -> None:
        await self.prepared.wait()

    async def ping(self) -> bool:
        if self.ping_gate is not None:
            await self.ping_gate.wait()
        return self.reachable

    def on_failure(self, callback: Callable[[], None]) -> None:
        self._failure.append(callback)

    def fail(self) -> None:
        """What a store call that finds the store unreachable does."""
        self.reachable = False
        for callback in self._failure:
            callback()


def _app(stores: GatedStores, clock: Clock | None = None, metrics: bool = False, **settings: Any) -> Application:
    config = Settings(store_url="memory://health", host="127.0.0.1", port=0, dispatch=FAST_DISPATCH, **settings)
    return build_application(  # type: ignore[arg-type]  # GatedStores is a Stores by duck typing
        config, clock=clock or ManualClock(), providers={}, stores=stores, metrics=metrics
    )


async def _bound(app: Application) -> int:
    """The port, once `start()` has bound it (it binds before preparing the store)."""
    deadline = time.monotonic() + 10
    while not app.port:
        assert time.monotonic() < deadline, "the port was never bound"
        await asyncio.sleep(0.01)
    return app.port


async def _statuses(health: health_pb2_grpc.HealthStub) -> set[int]:
    return {(await health.Check(health_pb2.HealthCheckRequest(service=n), timeout=5)).status for n in NAMES}


async def _eventually(check: Callable[[], Awaitable[object]], want: object, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while (got := await check()) != want:
        assert time.monotonic() < deadline, f"still {got!r} after {within_s} s, want {want!r}"
        await asyncio.sleep(0.02)


class _Watch:
    """One Health.Watch stream per name; `next()` is the next status it reports."""

    def __init__(self, health: health_pb2_grpc.HealthStub) -> None:
        self._calls = [health.Watch(health_pb2.HealthCheckRequest(service=n)) for n in NAMES]

    async def next(self) -> set[int]:
        replies = [await asyncio.wait_for(call.read(), 5) for call in self._calls]
        return {r.status for r in replies}  # type: ignore[union-attr]

    async def ended(self) -> set[grpc.StatusCode]:
        """How each stream ended (the next read must end it)."""
        codes = set()
        for call in self._calls:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(call.read(), 5)
            codes.add(info.value.code())
        return codes

    def cancel(self) -> None:
        for call in self._calls:
            call.cancel()


async def _code(call: Awaitable[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code()


def _register(token: str = "fcm-1") -> pb.RegisterTokenRequest:
    return pb.RegisterTokenRequest(app_id="demo", token=token, platform=pb.PLATFORM_FCM)


@pytest.fixture
async def stores() -> AsyncIterator[GatedStores]:
    gated = GatedStores()
    yield gated
    gated.close()


async def test_not_serving_while_starting_then_serving(stores: GatedStores) -> None:
    app = _app(stores)
    starting = asyncio.create_task(app.start())
    try:
        port = await _bound(app)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = _Watch(health)
            # The port is open and the store not yet prepared: no probe may see SERVING.
            assert await watch.next() == {NOT_SERVING}
            assert await _statuses(health) == {NOT_SERVING}
            stub = push_pb2_grpc.PushServiceStub(channel)
            assert await _code(stub.RegisterToken(_register(), timeout=5)) == grpc.StatusCode.UNAVAILABLE
            assert not starting.done()
            stores.prepared.set()
            await asyncio.wait_for(starting, 5)
            assert await watch.next() == {SERVING}
            assert await _statuses(health) == {SERVING}
            assert (await stub.RegisterToken(_register(), timeout=5)).created
            watch.cancel()
    finally:
        stores.prepared.set()
        await asyncio.wait_for(starting, 5)
        await app.stop(0)


async def test_not_serving_while_the_store_is_unreachable(stores: GatedStores) -> None:
    stores.prepared.set()
    # A long ping interval: the failed store call, not the next ping, turns health NOT_SERVING.
    app = _app(stores, health_interval_s=30.0)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = _Watch(health)
            assert await watch.next() == {SERVING}
            stores.fail()
            assert await watch.next() == {NOT_SERVING}
            assert await _statuses(health) == {NOT_SERVING}
            watch.cancel()
    finally:
        await app.stop(0)
    # And back, at the next ping.
    stores.reachable = True
    app = _app(stores, health_interval_s=0.05)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = _Watch(health)
            assert await watch.next() == {SERVING}
            stores.reachable = False
            assert await watch.next() == {NOT_SERVING}
            stores.reachable = True
            assert await watch.next() == {SERVING}
            assert await _statuses(health) == {SERVING}
            watch.cancel()
    finally:
        await app.stop(0)


async def test_liveness_serves_while_the_process_runs_whatever_the_store_does(stores: GatedStores) -> None:
    # The liveness probe's name: a store that is slow to answer at start, or
    # down later, must not restart the pod (readiness takes it out of the Service).
    app = _app(stores, health_interval_s=30.0)
    starting = asyncio.create_task(app.start())
    try:
        port = await _bound(app)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def liveness() -> int:
                return (await health.Check(health_pb2.HealthCheckRequest(service=LIVENESS_SERVICE), timeout=5)).status

            assert await _statuses(health) == {NOT_SERVING}
            assert await liveness() == SERVING
            stores.prepared.set()
            await asyncio.wait_for(starting, 5)
            assert await _statuses(health) == {SERVING}
            stores.fail()
            await _eventually(lambda: _statuses(health), {NOT_SERVING}, within_s=5)
            assert await liveness() == SERVING
    finally:
        stores.prepared.set()
        await asyncio.wait_for(starting, 5)
        await app.stop(0)


async def test_draining_is_not_serving_refuses_new_calls_and_finishes_the_call_in_flight(stores: GatedStores) -> None:
    stores.prepared.set()
    app = _app(stores)
    await app.start()
    stopping: asyncio.Task[None] | None = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = push_pb2_grpc.PushServiceStub(channel)
            watch = _Watch(health)
            assert await watch.next() == {SERVING}
            stores.tokens.gate = asyncio.Event()
            in_flight = asyncio.ensure_future(stub.RegisterToken(_register("fcm-in-flight"), timeout=30))
            await _eventually(lambda: _value(stores.tokens.waiting), 1, within_s=5)

            stopping = asyncio.create_task(app.stop(grace_s=20.0))
            assert await watch.next() == {NOT_SERVING}
            # The health service answers throughout the drain, until the server stops.
            assert await _statuses(health) == {NOT_SERVING}
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.RegisterToken(_register("fcm-late"), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "draining" in (refused.value.details() or "")
            get = stub.GetNotification(pb.GetNotificationRequest(app_id="demo", notification_id="n"), timeout=5)
            assert await _code(get) == grpc.StatusCode.UNAVAILABLE
            await asyncio.sleep(0.3)
            assert not stopping.done() and not in_flight.done(), "the drain waits for the call in flight"

            stores.tokens.gate.set()
            reply = await asyncio.wait_for(in_flight, 5)
            assert reply.created and reply.token.token == "fcm-in-flight"
            # The open Watch streams do not hold the stop for the rest of the grace: they end too.
            await asyncio.wait_for(stopping, 5)
            assert await watch.ended() == {grpc.StatusCode.UNAVAILABLE}
            assert await stores.tokens.get("demo", models.Platform.FCM, "fcm-late") is None, "a refused call did nothing"
            assert await _code(health.Check(health_pb2.HealthCheckRequest(), timeout=2)) == grpc.StatusCode.UNAVAILABLE
    finally:
        if stores.tokens.gate is not None:
            stores.tokens.gate.set()
        if stopping is None:
            await app.stop(0)
        else:
            await asyncio.wait_for(stopping, 25)


async def test_the_grace_bounds_a_call_that_does_not_finish(stores: GatedStores) -> None:
    stores.prepared.set()
    app = _app(stores)
    await app.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        stores.tokens.gate = asyncio.Event()  # never set: the call hangs
        in_flight = asyncio.ensure_future(stub.RegisterToken(_register("fcm-stuck"), timeout=30))
        await _eventually(lambda: _value(stores.tokens.waiting), 1, within_s=5)
        started = time.monotonic()
        await asyncio.wait_for(app.stop(grace_s=1.0), 10)
        took = time.monotonic() - started
        assert await _code(in_flight) == grpc.StatusCode.UNAVAILABLE
    # Waited for most of the grace, then cancelled by grpc after its short
    # wait: all within the grace, which keeps a part for the dispatcher's leases.
    assert 0.5 <= took <= 1.1, took


async def _value(x: object) -> object:
    return x


def _store_up(port: int) -> float:
    """`pushsvc_store_up` as /metrics serves it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    [value] = [s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "pushsvc_store_up"]
    return value


STALL_S = 0.5


async def test_a_store_call_that_hangs_turns_health_not_serving_and_store_up_0_before_its_deadline(
    stores: GatedStores,
) -> None:
    # The store answers pings and fails nothing: only the call that hangs tells.
    # The system clock: the stall is measured as it happens.
    stores.prepared.set()
    app = _app(stores, clock=SystemClock(), metrics=True, store_stall_s=STALL_S, health_interval_s=0.1)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = push_pb2_grpc.PushServiceStub(channel)
            watch = _Watch(health)
            assert await watch.next() == {SERVING}
            assert await asyncio.to_thread(_store_up, app.metrics_port) == 1
            # A call shorter than the stall changes nothing.
            assert (await stub.RegisterToken(_register("fcm-quick"), timeout=5)).created

            stores.tokens.gate = asyncio.Event()
            deadline_s = 5.0
            started = time.monotonic()
            in_flight = asyncio.ensure_future(stub.RegisterToken(_register("fcm-hangs"), timeout=deadline_s))
            assert await watch.next() == {NOT_SERVING}
            took = time.monotonic() - started
            assert STALL_S <= took < deadline_s, took
            assert not in_flight.done(), "NOT_SERVING while the call still waits, within its deadline"
            assert await _statuses(health) == {NOT_SERVING}
            assert await asyncio.to_thread(_store_up, app.metrics_port) == 0
            # Still unanswered: still NOT_SERVING, though pings answer; and the
            # watcher waits for its next ping meanwhile (it once spun a core here).
            cpu = time.process_time()
            await asyncio.sleep(1.0)
            assert time.process_time() - cpu < 0.25
            assert await _statuses(health) == {NOT_SERVING}

            stores.tokens.gate.set()  # the store answers again
            assert (await asyncio.wait_for(in_flight, deadline_s)).created
            assert await watch.next() == {SERVING}
            assert await asyncio.to_thread(_store_up, app.metrics_port) == 1
            watch.cancel()
    finally:
        if stores.tokens.gate is not None:
            stores.tokens.gate.set()
        await app.stop(0)


async def test_a_ping_that_does_not_answer_is_a_failed_one(stores: GatedStores) -> None:
    # A store that serialises its calls queues the ping behind the one that hangs.
    stores.prepared.set()
    app = _app(stores, clock=SystemClock(), metrics=True, store_stall_s=STALL_S, health_interval_s=0.1)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            watch = _Watch(health_pb2_grpc.HealthStub(channel))
            assert await watch.next() == {SERVING}
            stores.ping_gate = asyncio.Event()
            started = time.monotonic()
            assert await watch.next() == {NOT_SERVING}
            assert time.monotonic() - started < 0.1 + STALL_S + 1.0
            assert await asyncio.to_thread(_store_up, app.metrics_port) == 0
            stores.ping_gate.set()
            assert await watch.next() == {SERVING}
            assert await asyncio.to_thread(_store_up, app.metrics_port) == 1
            watch.cancel()
    finally:
        if stores.ping_gate is not None:
            stores.ping_gate.set()
        await app.stop(0)


async def test_after_a_stall_health_stays_not_serving_until_a_store_call_is_answered_again(
    stores: GatedStores,
) -> None:
    # FerretDB answered pings while every call to the database hung; a call given
    # up on (its deadline passed, or the driver timed it out) is no answer.
    # No dispatcher workers: the RPCs are the only store calls.
    stores.prepared.set()
    config = Settings(
        store_url="memory://health", host="127.0.0.1", port=0, dispatch=FAST_DISPATCH.model_copy(update={"workers": 0}),
        store_stall_s=STALL_S, health_interval_s=0.1,
    )
    app = build_application(config, clock=SystemClock(), providers={}, stores=stores, metrics=True)  # type: ignore[arg-type]  # a Stores by duck typing
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = push_pb2_grpc.PushServiceStub(channel)
            watch = _Watch(health)
            assert await watch.next() == {SERVING}
            stores.tokens.gate = asyncio.Event()
            given_up = stub.RegisterToken(_register("fcm-given-up"), timeout=3 * STALL_S)
            assert await watch.next() == {NOT_SERVING}
            assert await _code(given_up) == grpc.StatusCode.DEADLINE_EXCEEDED
            await _eventually(lambda: _value(app.store_calls.in_flight), 0, within_s=5)
            # Nothing waits any more and pings answer, but nothing was answered either.
            await asyncio.sleep(10 * 0.1)
            assert await _statuses(health) == {NOT_SERVING}
            assert await asyncio.to_thread(_store_up, app.metrics_port) == 0

            stores.tokens.gate.set()
            assert (await stub.RegisterToken(_register("fcm-answered"), timeout=5)).created
            assert await watch.next() == {SERVING}
            assert await asyncio.to_thread(_store_up, app.metrics_port) == 1
            watch.cancel()
    finally:
        if stores.tokens.gate is not None:
            stores.tokens.gate.set()
        await app.stop(0)
