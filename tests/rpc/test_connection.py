"""Connection settings reach the gRPC server: max_connection_age ends old connections, and the drain settings load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from pushsvc.bootstrap import build_application
from pushsvc.clock import ManualClock
from pushsvc.config import Settings, load_settings
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc


async def test_max_connection_age_ends_a_long_stream_with_unavailable_and_the_client_reconnects() -> None:
    settings = Settings(
        store_url="memory://age", host="127.0.0.1", port=0, max_connection_age_s=0.5, max_connection_age_grace_s=0.5
    )
    app = build_application(settings, clock=ManualClock(), providers={})
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            feed = stub.StreamReceipts(pb.StreamReceiptsRequest(app_id="demo"))  # the app's live feed: never ends by itself
            started = time.monotonic()
            try:
                await asyncio.wait_for(feed.read(), 10)
                raise AssertionError("the idle live feed returned a message")
            except grpc.aio.AioRpcError as err:
                code = err.code()
            took = time.monotonic() - started
            assert code == grpc.StatusCode.UNAVAILABLE, code
            # Age (0.5 s, with up to 10% jitter) plus its grace (0.5 s), and not much more.
            assert 0.8 <= took < 5.0, took
            reply = await stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token="fcm-1", platform=pb.PLATFORM_FCM), timeout=5)
            assert reply.created, "the channel reconnected"
    finally:
        await app.stop(0)


def test_drain_and_keepalive_settings_have_mesh_defaults_and_load_from_toml_and_env(tmp_path: Path) -> None:
    defaults = Settings()
    assert (defaults.grace_s, defaults.keepalive_time_s, defaults.keepalive_timeout_s) == (25.0, 60.0, 20.0)
    assert (defaults.keepalive_min_ping_interval_s, defaults.max_connection_age_s, defaults.max_connection_age_grace_s) == (
        30.0, 300.0, 30.0,
    )
    assert (defaults.health_interval_s, defaults.sweep_interval_s) == (2.0, 60.0)
    path = tmp_path / "pushsvc.toml"
    path.write_text("grace_s = 40\nkeepalive_time_s = 90\nmax_connection_age_grace_s = 10\n")
    loaded = load_settings(path, env={"PUSHSVC_GRACE_S": "55", "PUSHSVC_KEEPALIVE_MIN_PING_INTERVAL_S": "15"})
    assert (loaded.grace_s, loaded.keepalive_time_s, loaded.max_connection_age_grace_s) == (55.0, 90.0, 10.0)
    assert loaded.keepalive_min_ping_interval_s == 15.0
