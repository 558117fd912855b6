"""`pushsvc serve` safety checks and `pushsvc keys create`, run as the operator runs them."""

from __future__ import annotations

import os
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

from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc

PUSHSVC = str(Path(sys.executable).parent / "pushsvc")
KEY = """
[[auth.api_keys]]
name = "k"
hash = "sha256:{zeros}"
apps = ["a"]
actions = ["register"]
""".format(zeros="0" * 64)


def refuse(tmp_path: Path, config: str, *flags: str, env: dict[str, str] | None = None) -> str:
    """Runs serve, which must exit 2 at once; returns its stderr, which must be one line."""
    path = tmp_path / "pushsvc.toml"
    path.write_text(config)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSVC_")} | (env or {})
    out = subprocess.run(
        [PUSHSVC, "serve", "--config", str(path), *flags], capture_output=True, text=True, timeout=30, env=environment
    )
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize(
    "config, error",
    [
        (KEY, "serve needs store_url = 'postgresql://...', 'mongodb://...'"),
        ('store_url = "mongomock://localhost/x"\n' + KEY, "the in-memory store is for `pushsvc dev` only"),
        ('store_url = "memory://"\n' + KEY, "serve needs store_url"),
        ('store_url = "mongodb://127.0.0.1:1/x"\n', "serve needs [auth] api_keys, jwt or identities"),
        (
            'store_url = "mongodb://127.0.0.1:1/x"\n[[auth.identities]]\nspiffe_id = "spiffe://t/x"\napps = ["a"]\nactions = ["send"]\n',
            "auth.identities need mTLS",
        ),
        ('store_url = "mongodb://127.0.0.1:1/x"\n[auth]\nbogus = 1\n', "auth.bogus: unknown key"),
    ],
)
def test_serve_refuses_unsafe_configs_with_one_line(tmp_path: Path, config: str, error: str) -> None:
    assert error in refuse(tmp_path, config)


def test_serve_refuses_a_missing_secret(tmp_path: Path) -> None:
    config = (
        'store_url = "mongodb://127.0.0.1:1/x"\n[[auth.api_keys]]\nname = "k"\nhash_env = "ALPHA_KEY_HASH"\n'
        'apps = ["a"]\nactions = ["send"]\n'
    )
    assert "environment variable ALPHA_KEY_HASH is not set" in refuse(tmp_path, config)
    line = refuse(tmp_path, config, env={"ALPHA_KEY_HASH": "sha256:short"})
    assert "expected 'sha256:' and 64 hex digits" in line and "short" not in line


def test_insecure_no_auth_conflicts_with_configured_auth(tmp_path: Path) -> None:
    assert "--insecure-no-auth conflicts" in refuse(tmp_path, 'store_url = "mongodb://127.0.0.1:1/x"\n' + KEY, "--insecure-no-auth")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _register(port: int, metadata: tuple[tuple[str, str], ...], app_id: str = "alpha") -> grpc.StatusCode:
    deadline = time.monotonic() + 20
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        while True:
            try:
                stub.RegisterToken(
                    pb.RegisterTokenRequest(app_id=app_id, token="t" + uuid.uuid4().hex, platform=pb.PLATFORM_FCM),
                    timeout=2,
                    wait_for_ready=True,
                    metadata=metadata,
                )
                return grpc.StatusCode.OK
            except grpc.RpcError as exc:
                starting = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)  # type: ignore[attr-defined]
                if not starting or time.monotonic() > deadline:
                    return exc.code()  # type: ignore[attr-defined,no-any-return]
                time.sleep(0.2)


def _serve(path: Path, port: int, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSVC_")} | (env or {})
    return subprocess.Popen(
        [PUSHSVC, "serve", "--config", str(path), "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def test_keys_create_then_serve_with_the_key(tmp_path: Path, ferretdb_base_url: str | None) -> None:
    if ferretdb_base_url is None:
        pytest.skip("serve needs a mongodb:// store: no FerretDB server")
    created = subprocess.run(
        [PUSHSVC, "keys", "create", "--app", "alpha", "--actions", "register,read", "--name", "alpha-backend"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    key = re.search(r"^\s+(psk_\S+)$", created.stdout, re.M)
    assert key is not None, created.stdout
    snippet = created.stdout[created.stdout.index("[[auth.api_keys]]") :].replace("[[auth.api_keys]]", "[[api_keys]]")
    # The snippet goes to a secrets file; a second key's hash comes from the environment.
    (tmp_path / "keys.toml").write_text(snippet)
    other = subprocess.run(
        [PUSHSVC, "keys", "create", "--app", "beta-*", "--actions", "register"], capture_output=True, text=True, timeout=30, check=True
    )
    other_key = re.search(r"^\s+(psk_\S+)$", other.stdout, re.M)
    other_hash = re.search(r'^hash = "(sha256:[0-9a-f]{64})"$', other.stdout, re.M)
    assert other_key is not None and other_hash is not None
    config = tmp_path / "pushsvc.toml"
    config.write_text(
        f'store_url = "{ferretdb_base_url}serve{uuid.uuid4().hex[:12]}"\nhost = "127.0.0.1"\n'
        '[auth]\napi_keys_file = "keys.toml"\n'
        '[[auth.api_keys]]\nname = "beta-team"\nhash_env = "BETA_KEY_HASH"\napps = ["beta-*"]\nactions = ["register"]\n'
    )
    port = _free_port()
    proc = _serve(config, port, env={"BETA_KEY_HASH": other_hash.group(1)})
    try:
        assert _register(port, (("authorization", f"Bearer {key.group(1)}"),)) == grpc.StatusCode.OK
        assert _register(port, ()) == grpc.StatusCode.UNAUTHENTICATED
        assert _register(port, (("authorization", f"Bearer {key.group(1)}"),), "beta-1") == grpc.StatusCode.PERMISSION_DENIED
        assert _register(port, (("authorization", f"Bearer {other_key.group(1)}"),), "beta-1") == grpc.StatusCode.OK
    finally:
        err = _stop(proc)
    assert key.group(1) not in err and other_key.group(1) not in err


def test_insecure_no_auth_serves_and_warns(tmp_path: Path, ferretdb_base_url: str | None) -> None:
    if ferretdb_base_url is None:
        pytest.skip("serve needs a mongodb:// store: no FerretDB server")
    config = tmp_path / "pushsvc.toml"
    config.write_text(f'store_url = "{ferretdb_base_url}serve{uuid.uuid4().hex[:12]}"\nhost = "127.0.0.1"\n')
    port = _free_port()
    proc = _serve(config, port, "--insecure-no-auth")
    try:
        assert _register(port, ()) == grpc.StatusCode.OK
    finally:
        err = _stop(proc)
    assert "auth is OFF (--insecure-no-auth)" in err
