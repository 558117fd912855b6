"""Settings from TOML plus PUSHSVC_* overrides, and `pushsvc serve` running on them."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest

from pushsvc.auth.apikeys import hash_key, new_key
from pushsvc.config import ConfigError, load_settings
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc

CONFIG = """
store_url = "mongodb://db.example:27017/pushsvc"
port = 6000

[dispatch]
lease_s = 45
batch_size = 200

[apps.shop.apns]
bundle_id = "com.example.shop"
key_file = "secrets/AuthKey.p8"
key_id = "ABC123DEFG"
team_id = "TEAM123456"

[apps.shop.fcm]
service_account_file = "/abs/sa.json"
"""


def test_toml_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "pushsvc.toml"
    path.write_text(CONFIG)
    s = load_settings(path, env={})
    assert (s.store_url, s.port, s.stale_after_days) == ("mongodb://db.example:27017/pushsvc", 6000, 60.0)
    assert (s.dispatch.lease_s, s.dispatch.batch_size, s.dispatch.workers) == (45.0, 200, 2)
    shop = s.apps["shop"]
    assert shop.apns is not None and shop.apns.key_file == tmp_path / "secrets/AuthKey.p8"  # relative to the file
    assert shop.fcm is not None and shop.fcm.service_account_file == Path("/abs/sa.json")
    env = {"PUSHSVC_PORT": "7000", "PUSHSVC_STALE_AFTER_DAYS": "30", "PUSHSVC_DISPATCH_LEASE_S": "12.5"}
    s = load_settings(path, env=env)
    assert (s.port, s.stale_after_days, s.dispatch.lease_s) == (7000, 30.0, 12.5)
    assert load_settings(path, env=env, port=8000).port == 8000


@pytest.mark.parametrize(
    "text, where",
    [
        ("bogus = 1", "bogus: unknown key"),
        ("port = 'x'", "port"),
        ("[dispatch]\nlease = 3", "dispatch.lease: unknown key (did you mean 'lease_s'?)"),
        ("[apps.a.apns]\nbundle_id = 'b'", "apps.a.apns: set key_file"),
        ("[apps.a.apns]\nbundle_id = 'b'\nkey_file = 'k'", "needs key_id and team_id"),
        ("port = ", "pushsvc.toml"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "pushsvc.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(where)):
        load_settings(path, env={})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_from_a_config_file_and_stops_cleanly(
    tmp_path: Path, signum: int, ferretdb_base_url: str | None
) -> None:
    # serve accepts only a real MongoDB-protocol store and configured auth (tests/auth/test_serve.py).
    if ferretdb_base_url is None:
        pytest.skip("serve needs a mongodb:// store: no FerretDB server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = new_key()
    path = tmp_path / "pushsvc.toml"
    path.write_text(
        f'store_url = "{ferretdb_base_url}serve{uuid.uuid4().hex[:12]}"\nhost = "127.0.0.1"\n'
        f'[[auth.api_keys]]\nname = "t"\nhash = "{hash_key(key)}"\napps = ["a"]\nactions = ["register"]\n'
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "pushsvc"), "serve", "--config", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert _register_until_up(port, key).created is True
    finally:
        proc.send_signal(signum)
        assert proc.wait(15) == 0


def _register_until_up(port: int, key: str) -> pb.RegisterTokenResponse:
    deadline = time.monotonic() + 20
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        while True:
            try:
                return stub.RegisterToken(
                    pb.RegisterTokenRequest(app_id="a", token="t", platform=pb.PLATFORM_FCM),
                    timeout=2,
                    wait_for_ready=True,
                    metadata=[("authorization", f"Bearer {key}")],
                )
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
