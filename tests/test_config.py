"""Settings from TOML plus PUSHSVC_* overrides, and `pushsvc serve` running on them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from pushsvc.access import hash_key, new_key
from pushsvc.config import ConfigError, Settings, load_settings
from pushsvc.emulator.credentials import make_demo_credentials
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
    with pytest.raises(ValidationError, match="frozen"):
        s.dispatch.lease_s = 1.0  # type: ignore[misc]  # settings are values: copy with model_copy(update=...)


@pytest.mark.parametrize(
    "text, where",
    [
        ("bogus = 1", "bogus: unknown key"),
        ("port = 'x'", "port"),
        ("[dispatch]\nlease = 3", "dispatch.lease: unknown key (did you mean 'lease_s'?)"),
        ("[apps.a.apns]\nbundle_id = 'b'", "apps.a.apns: set key_file"),
        ("[apps.a.apns]\nbundle_id = 'b'\nkey_file = 'k'", "needs key_id and team_id"),
        ("port = ", "pushsvc.toml"),
        ("log_format = 'yaml'", "log_format: Input should be 'json' or 'text'"),
        ("log_level = 'LOUD'", "log_level: expected one of"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "pushsvc.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(where)):
        load_settings(path, env={})


def test_environment_overrides_every_level(tmp_path: Path) -> None:
    path = tmp_path / "pushsvc.toml"
    path.write_text(CONFIG.replace("[apps.shop.", "[apps.Shop.").replace("[apps.Shop.fcm]", '[apps.Shop.fcm]\nproject_id = "from-file"'))
    env = {
        "PUSHSVC_GRACE_S": "40",
        "PUSHSVC_LOG_FORMAT": "text",
        "PUSHSVC_DISPATCH__WORKERS": "7",  # the nested spelling
        "PUSHSVC_DISPATCH_BATCH_SIZE": "50",  # the flat one
        "PUSHSVC_DISPATCH__LEASE_S": "3",
        "PUSHSVC_DISPATCH_LEASE_S": "4",  # both: the nested spelling wins
        "PUSHSVC_DISPATCH_REPLICA_ID": "pushsvc-7d9f-abcde",
        "PUSHSVC_APPS__SHOP__FCM__PROJECT_ID": "from-env",  # the file's app "Shop", whatever the case
        "PUSHSVC_APPS__SHOP__APNS__TEAM_ID": "TEAMFROMENV",
        "PUSHSVC_APPS__NEWS__FCM__SERVICE_ACCOUNT_FILE": "/run/secrets/news-sa.json",  # an app from the environment alone
        "PUSHSVC_AUTH_API_KEYS_FILE": "keys.toml",
        "PUSHSVC_TLS__CERT_FILE": "/tls/tls.crt",
        "PUSHSVC_TLS_KEY_FILE": "/tls/tls.key",
        "PUSHSVC_TEST_FERRETDB_URL": "mongodb://not-a-setting",  # other PUSHSVC_* variables are not settings
    }
    (tmp_path / "keys.toml").write_text('[[api_keys]]\nname = "ops"\nhash_env = "OPS_HASH"\napps = ["*"]\nactions = ["admin"]\n')
    s = load_settings(path, env=env)
    assert (s.grace_s, s.log_format) == (40.0, "text")
    assert (s.dispatch.workers, s.dispatch.batch_size, s.dispatch.lease_s) == (7, 50, 3.0)
    assert s.dispatch.replica_id == "pushsvc-7d9f-abcde"
    assert sorted(s.apps) == ["Shop", "news"]
    shop = s.apps["Shop"]
    assert shop.app_id == "Shop" and shop.fcm is not None and shop.apns is not None
    assert (shop.fcm.project_id, shop.fcm.service_account_file) == ("from-env", Path("/abs/sa.json"))
    assert (shop.apns.team_id, shop.apns.key_id) == ("TEAMFROMENV", "ABC123DEFG")  # the rest of the table stays
    news = s.apps["news"]
    assert news.fcm is not None and news.fcm.service_account_file == Path("/run/secrets/news-sa.json") and news.apns is None
    assert [k.name for k in s.auth.api_keys] == ["ops"] and s.auth.api_keys_file == tmp_path / "keys.toml"
    assert s.tls is not None and (s.tls.cert_file, s.tls.key_file) == (Path("/tls/tls.crt"), Path("/tls/tls.key"))


def test_arrays_of_tables_take_json_from_the_environment(tmp_path: Path) -> None:
    hashed = hash_key(new_key())
    keys = [{"name": "ci", "hash": hashed, "apps": ["shop"], "actions": ["send", "read"]}]
    s = load_settings(None, env={"PUSHSVC_AUTH__API_KEYS": json.dumps(keys)})
    [key] = s.auth.api_keys
    assert (key.name, key.hash, key.apps, key.actions) == ("ci", hashed, ("shop",), ("send", "read"))
    with pytest.raises(ConfigError, match="PUSHSVC_AUTH|auth"):
        load_settings(None, env={"PUSHSVC_AUTH__API_KEYS": "[{"})


def test_secrets_dir_files_are_values_and_the_environment_wins(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "..2026_12_02").mkdir(parents=True)  # how Kubernetes lays out a mounted Secret
    (secrets / "PUSHSVC_STORE_URL").write_text("mongodb://pushsvc:s3cret@db:27017/pushsvc\n")
    (secrets / "PUSHSVC_APPS__SHOP__FCM__PROJECT_ID").write_text("from-secret")
    (secrets / "PUSHSVC_DISPATCH_WORKERS").write_text("3")
    (secrets / "README").write_text("not a setting")
    path = tmp_path / "pushsvc.toml"
    path.write_text('secrets_dir = "secrets"\nport = 6000\n[apps.shop.fcm]\nservice_account_file = "/sa.json"\n')
    s = load_settings(path, env={})
    assert s.secrets_dir == secrets
    assert s.store_url == "mongodb://pushsvc:s3cret@db:27017/pushsvc"  # the trailing newline is not part of it
    assert s.apps["shop"].fcm is not None and s.apps["shop"].fcm.project_id == "from-secret"
    assert (s.dispatch.workers, s.port) == (3, 6000)
    s = load_settings(path, env={"PUSHSVC_DISPATCH_WORKERS": "9"})
    assert s.dispatch.workers == 9
    s = load_settings(None, env={"PUSHSVC_SECRETS_DIR": str(secrets), "PUSHSVC_APPS__SHOP__FCM__SERVICE_ACCOUNT_ENV": "SA"})
    assert s.store_url.startswith("mongodb://pushsvc:")
    (secrets / "PUSHSVC_DISPATCH_WORKERS").write_text("-1")
    with pytest.raises(ConfigError, match=re.escape(f"dispatch.workers: Input should be greater than or equal to 0 (from the secrets_dir {secrets})")):
        load_settings(path, env={})
    # Not mounted (check-config off the cluster): a warning, and nothing read from it.
    assert load_settings(None, env={"PUSHSVC_SECRETS_DIR": str(tmp_path / "missing")}).store_url == Settings().store_url


BROKEN = """
port = 70000
bogus = 1
log_format = "yaml"

[dispatch]
lease_s = 0
leas_s = 3

[apps.shop.fcm]
projectid = "p"

[apps.news.apns]
bundle_id = "com.example.news"
key_file = "AuthKey.p8"

[[auth.api_keys]]
name = "ops"
hash = "sha256:beef"
apps = ["shop"]
actions = ["sned"]
"""


def test_every_problem_is_named_by_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "pushsvc.toml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={"PUSHSVC_DISPATCH_POLL_INTERVAL_S": "soon"})
    assert sorted(caught.value.problems) == sorted([
        "port: Input should be less than or equal to 65535",
        "bogus: unknown key",
        "log_format: Input should be 'json' or 'text'",
        "dispatch.lease_s: Input should be greater than 0",
        "dispatch.leas_s: unknown key (did you mean 'lease_s'?)",
        "dispatch.poll_interval_s: Input should be a valid number, unable to parse string as a number (from the environment)",
        "apps.shop.fcm.projectid: unknown key (did you mean 'project_id'?)",
        "apps.news.apns: token auth needs key_id and team_id",
        "auth.api_keys[0].hash: expected 'sha256:' and 64 hex digits (from `pushsvc keys create`)",
    ])


def test_check_config_explains_errors_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "pushsvc.toml"
    path.write_text(BROKEN)
    out = _check_config(path, {"PUSHSVC_APPS__SHOP__FCM__BASE_URLL": "https://x"})
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.splitlines()
    assert lines[0] == f"{path}: 9 problems"
    assert "  apps.shop.fcm.base_urll: unknown key (did you mean 'base_url'?) (from the environment)" in lines
    assert "  dispatch.lease_s: Input should be greater than 0" in lines
    assert "Traceback" not in out.stderr
    path.write_text("port = ")
    out = _check_config(path, {})
    assert out.returncode == 2 and out.stderr.startswith(f"{path}: 1 problem\n  {path}: ")


def test_serve_names_every_problem_on_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "pushsvc.toml"
    path.write_text(BROKEN)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSVC_")}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "pushsvc"), "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60, env=clean, check=False,
    )
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) == 8 and all(line.startswith("pushsvc: config error: ") for line in lines), out.stderr
    assert "pushsvc: config error: dispatch.leas_s: unknown key (did you mean 'lease_s'?)" in lines


def test_check_config_summarises_a_valid_file(tmp_path: Path) -> None:
    key = new_key()
    credentials, _, _ = make_demo_credentials(tmp_path / "secrets", token_uri="https://127.0.0.1:1/token", ca_pem=b"")
    path = tmp_path / "pushsvc.toml"
    config = CONFIG.replace("secrets/AuthKey.p8", "secrets/apns-auth-key.p8").replace(
        "/abs/sa.json", str(credentials.fcm_service_account_file)
    )
    path.write_text(
        config.replace("mongodb://db.example", "mongodb://pushsvc:s3cret@db.example")
        + f'[[auth.api_keys]]\nname = "ops"\nhash = "{hash_key(key)}"\napps = ["*"]\nactions = ["admin"]\n'
    )
    account = credentials.fcm_service_account_file.read_text()
    out = _check_config(path, {"PUSHSVC_APPS__NEWS__FCM__SERVICE_ACCOUNT_ENV": "NEWS_SA", "NEWS_SA": account})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"{path}: ok",
        "  apps:  news (fcm), shop (apns+fcm)",
        "  store: mongodb://",
        "  auth:  1 API key, 0 JWT issuers, 0 mTLS identities",
        "  tls:   off",
        "  grpc:  0.0.0.0:6000, metrics: off, grace: 25 s",
    ]
    assert "s3cret" not in out.stdout + out.stderr
    # The variable a setting names is a secret serve reads: unset, it is a problem.
    out = _check_config(path, {"PUSHSVC_APPS__NEWS__FCM__SERVICE_ACCOUNT_ENV": "NEWS_SA"})
    assert out.returncode == 2
    assert "  apps.news.fcm.service_account_env: environment variable NEWS_SA is not set" in out.stderr.splitlines()
    # serve's own checks count too: no auth is refused unless the flag says so.
    path.write_text(config)
    out = _check_config(path, {})
    assert out.returncode == 2 and "serve needs [auth] api_keys, jwt or identities" in out.stderr
    assert _check_config(path, {}, "--insecure-no-auth").returncode == 0


UNREADABLE = """
store_url = "mongodb://127.0.0.1:1/pushsvc"

[apps.demo.apns]
bundle_id = "com.example.demo"
key_file = "/nope.p8"
key_id = "ABC123DEFG"
team_id = "TEAM123456"

[apps.demo.fcm]
service_account_file = "not-json.json"

[apps.news.apns]
bundle_id = "com.example.news"
key_file = "rsa.p8"
key_id = "ABC123DEFG"
team_id = "TEAM123456"
ca_file = "garbage-ca.pem"

[apps.shop.apns]
bundle_id = "com.example.shop"
key_file = "rsa.p8"
key_id = "ABC123DEFG"
team_id = "TEAM123456"

[apps.news.fcm]
service_account_file = "half-account.json"

[[auth.jwt]]
issuer = "https://issuer.example"
audience = "pushsvc"
jwks_file = "jwks.json"

[tls]
cert_file = "/nope-cert.pem"
key_file = "/nope-key.pem"
"""

UNREADABLE_PROBLEMS = [
    "apps.demo.apns.key_file: cannot read /nope.p8: No such file or directory",
    "apps.demo.fcm.service_account_file: Expecting value: line 1 column 1 (char 0)",
    "apps.news.apns.ca_file: ",
    "apps.shop.apns.key_file: an APNs signing key must be an EC P-256 private key",
    "apps.news.fcm.service_account_file: Service account info was not in the expected format, missing fields token_uri.",
    "auth.jwt[0].jwks_file",
    "tls.cert_file: cannot read /nope-cert.pem: No such file or directory",
]


def _write_unreadable(tmp_path: Path) -> Path:
    (tmp_path / "not-json.json").write_text("not json")
    (tmp_path / "half-account.json").write_text(json.dumps({"type": "service_account", "project_id": "p", "client_email": "a@p"}))
    (tmp_path / "garbage-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa.p8").write_bytes(
        rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "jwks.json").write_text('{"keys": "none"}')
    path = tmp_path / "pushsvc.toml"
    path.write_text(UNREADABLE)
    return path


def _matching(lines: list[str], prefix: str) -> list[str]:
    return [line for line in lines if line.startswith(prefix)]


def test_check_config_reads_every_credential_serve_reads(tmp_path: Path) -> None:
    path = _write_unreadable(tmp_path)
    out = _check_config(path, {})
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == f"{path}: {len(UNREADABLE_PROBLEMS)} problems", out.stderr
    problems = [line.removeprefix("  ") for line in lines[1:]]
    for expected in UNREADABLE_PROBLEMS:
        assert len(_matching(problems, expected)) == 1, (expected, out.stderr)
    # Settings alone, for a config whose secrets live on another machine.
    out = _check_config(path, {}, "--no-secrets")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "  secrets: not read (--no-secrets)"


def test_serve_names_a_credential_it_cannot_read_as_check_config_does(tmp_path: Path) -> None:
    path = _write_unreadable(tmp_path)
    checked = [line.removeprefix("  ") for line in _check_config(path, {}).stderr.splitlines()[1:]]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSVC_")}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "pushsvc"), "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60, env=clean, check=False,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [f"pushsvc: config error: {problem}" for problem in checked]
    assert "pushsvc: config error: apps.demo.apns.key_file: cannot read /nope.p8: No such file or directory" in out.stderr


def _check_config(path: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSVC_")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "pushsvc"), "check-config", str(path), *flags],
        capture_output=True, text=True, timeout=60, env={**clean, **env}, check=False,
    )


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


def test_serve_logs_json_lines_and_serves_metrics_on_its_configured_port(tmp_path: Path, ferretdb_base_url: str | None) -> None:
    if ferretdb_base_url is None:
        pytest.skip("serve needs a mongodb:// store: no FerretDB server")
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    key = new_key()
    path = tmp_path / "pushsvc.toml"
    path.write_text(
        f'store_url = "{ferretdb_base_url}serve{uuid.uuid4().hex[:12]}"\nhost = "127.0.0.1"\n'
        f'metrics_host = "127.0.0.1"\nmetrics_port = {ports[1]}\n'
        f'[[auth.api_keys]]\nname = "t"\nhash = "{hash_key(key)}"\napps = ["a"]\nactions = ["register"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSVC_")} | {"PUSHSVC_LOG_LEVEL": "DEBUG"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "pushsvc"), "serve", "--config", str(path), "--port", str(ports[0])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        _register_until_up(ports[0], key)
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/metrics", timeout=5) as reply:
            scraped = reply.read().decode()
        assert 'pushsvc_rpcs_total{code="OK",method="RegisterToken",service="pushsvc.v1.PushService"} 1.0' in scraped
        assert "pushsvc_serving 1.0" in scraped
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines()]
    assert any(f"metrics on http://127.0.0.1:{ports[1]}/metrics" == line["message"] for line in lines)
    rpc = [line for line in lines if line.get("rpc") == "/pushsvc.v1.PushService/RegisterToken"]
    assert rpc and all(line["request_id"] and line["level"] == "DEBUG" for line in rpc)
    assert key not in err
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/metrics", timeout=2)


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
