"""Store outage: FerretDB dies mid-test, RPCs fail fast with UNAVAILABLE, health follows, nothing is lost."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pushsvc.config import DispatchSettings
from pushsvc.devstack import start_dev_stack
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH, FERRETDB_BIN
from tests.pipeline.helpers import APP, by_token, notification, receipts

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Ferret:
    """A FerretDB process this test may kill and restart on the same port and data."""

    def __init__(self, root: Path) -> None:
        self.port = _free_port()
        self.data = root / "data"
        self.data.mkdir(parents=True)
        self.state = root / "state"
        self.state.mkdir(parents=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/outage"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(FERRETDB_BIN), "--handler=sqlite", f"--sqlite-url=file:{self.data}/",
                f"--listen-addr=127.0.0.1:{self.port}", f"--debug-addr=127.0.0.1:{_free_port()}",
                f"--state-dir={self.state}", "--telemetry=disable", "--log-level=error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("ferretdb did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def ferret(tmp_path: Path) -> Iterator[Ferret]:
    if not FERRETDB_BIN.exists():
        reason = f"ferretdb backend: {FERRETDB_BIN} missing (run scripts/install-ferretdb)"
        if os.environ.get("PUSHSVC_REQUIRE_FERRETDB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    f = Ferret(tmp_path / "ferret")
    f.start()
    try:
        yield f
    finally:
        if f.proc is not None and f.proc.poll() is None:
            f.kill()


async def _health(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="pushsvc.v1.PushService"), timeout=2)
    return int(reply.status)


async def _eventually(check: object, want: object, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        got = await check()  # type: ignore[operator]
        if got == want or time.monotonic() > deadline:
            assert got == want
            return
        await asyncio.sleep(0.2)


async def test_store_outage_gives_unavailable_not_serving_and_loses_nothing(ferret: Ferret, tmp_path: Path) -> None:
    dispatch = DispatchSettings(**FAST_DISPATCH.model_dump())
    dev = await start_dev_stack(state_dir=tmp_path / "dev", port=0, store_url=ferret.url, dispatch=dispatch)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            assert await _health(channel) == SERVING
            devices = [pb.Device(token=f"fcm-{i}", platform=pb.PLATFORM_FCM) for i in range(40)]
            later = timestamp_pb2.Timestamp()
            later.FromDatetime(dev.app.clock.now() + timedelta(seconds=3))
            accepted = await stub.Send(
                pb.SendRequest(app_id=APP, target=pb.Target(devices=pb.DeviceList(devices=devices)),
                               message=pb.Message(title="survives"), send_at=later)
            )

            ferret.kill()
            reg = pb.RegisterTokenRequest(app_id=APP, token="fcm-x", platform=pb.PLATFORM_FCM)
            # The first failed store call turns health NOT_SERVING at once, not
            # at the next probe (every 2 s).
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.RegisterToken(reg, timeout=8)
            await _eventually(lambda: _health(channel), NOT_SERVING, within_s=0.5)
            for call in (
                lambda: stub.RegisterToken(reg, timeout=8),
                lambda: stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="x")), timeout=8),
                lambda: stub.GetNotification(pb.GetNotificationRequest(app_id=APP, notification_id=accepted.notification_id), timeout=8),
            ):
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call()
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
                assert time.monotonic() - started < 8
            await _eventually(lambda: _health(channel), NOT_SERVING, within_s=15)

            ferret.start()
            await _eventually(lambda: _health(channel), SERVING, within_s=20)
            await stub.RegisterToken(reg, timeout=10)
            got = by_token(await receipts(stub, accepted.notification_id, timeout_s=60))
            assert set(got) == {d.token for d in devices}
            assert all(r.status == pb.DELIVERY_STATUS_DELIVERED for r in got.values())
            n = await notification(stub, accepted.notification_id)
            assert (n.state, n.delivered, n.pending) == (pb.NOTIFICATION_STATE_COMPLETED, 40, 0)
            assert len({e.token for e in dev.emulator.inbox.entries()}) == 40
    finally:
        await dev.stop(0)
