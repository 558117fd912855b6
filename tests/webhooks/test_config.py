"""Webhook settings: what the models refuse, and what check-config reads (secrets, CA files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pushsvc.config import ConfigError, load_settings
from tests.webhooks.receiver import SECRET

BASE = """
store_url = "mongodb://db.example/pushsvc"
[apps.shop.fcm]
service_account_env = "SHOP_SA"
"""


def _settings(tmp_path: Path, hooks: str) -> None:
    path = tmp_path / "pushsvc.toml"
    path.write_text(BASE + hooks)
    load_settings(path, env={})


@pytest.mark.parametrize(
    ("hook", "problem"),
    [
        ('url = "http://hooks.example/r"\nsecret_env = "S"', "apps.shop.webhooks[0].url: http:// is allowed only to a loopback host; use https://"),
        ('url = "ftp://hooks.example/r"\nsecret_env = "S"', "apps.shop.webhooks[0].url: expected an https:// URL"),
        ('url = "https://hooks.example/r"', "apps.shop.webhooks[0]: set exactly one of secret_file, secret_env (never the secret itself)"),
        ('url = "https://hooks.example/r"\nsecret_env = "S"\nsecret_file = "s.txt"', "apps.shop.webhooks[0]: set exactly one of secret_file, secret_env (never the secret itself)"),
        ('url = "https://hooks.example/r"\nsecret = "inline"', "apps.shop.webhooks[0].secret: unknown key"),
        ('url = "https://hooks.example/r"\nsecret_env = "S"\nmax_batch = 0', "apps.shop.webhooks[0].max_batch: Input should be greater than 0"),
        ('url = "https://hooks.example/r"\nsecret_env = "S"\nmax_delay_ms = -1', "apps.shop.webhooks[0].max_delay_ms: Input should be greater than or equal to 0"),
    ],
)
def test_bad_webhook_settings_are_named_by_key_path(tmp_path: Path, hook: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, f"[[apps.shop.webhooks]]\n{hook}\n")
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_loopback_http_is_allowed_and_two_endpoints_need_distinct_names(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8080/r", "http://localhost/r", "http://[::1]:9/r"):
        _settings(tmp_path, f'[[apps.shop.webhooks]]\nurl = "{url}"\nsecret_env = "S"\n')
    twice = '[[apps.shop.webhooks]]\nurl = "https://a.example/r"\nsecret_env = "S"\n' * 2
    with pytest.raises(ConfigError, match="same name"):
        _settings(tmp_path, twice)
    _settings(tmp_path, twice + 'name = "second"\n')


def _check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSVC_")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "pushsvc"), "check-config", str(path), "--insecure-no-auth"],
        capture_output=True, text=True, timeout=60, env={**clean, **env}, check=False,
    )


def test_check_config_reads_each_webhook_secret_and_ca(tmp_path: Path) -> None:
    from pushsvc.emulator.credentials import make_demo_credentials

    credentials, _, _ = make_demo_credentials(tmp_path / "creds", token_uri="https://127.0.0.1:1/token", ca_pem=b"")
    (tmp_path / "short.txt").write_text("tooshort\n")
    (tmp_path / "bad-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    (tmp_path / "good.txt").write_text(SECRET + "\n")
    path = tmp_path / "pushsvc.toml"
    hooks = (
        '[[apps.shop.webhooks]]\nurl = "https://a.example/r"\nsecret_env = "HOOK_A"\n'
        '[[apps.shop.webhooks]]\nurl = "https://b.example/r"\nsecret_file = "short.txt"\n'
        '[[apps.shop.webhooks]]\nurl = "https://c.example/r"\nsecret_file = "missing.txt"\n'
        '[[apps.shop.webhooks]]\nurl = "https://d.example/r"\nsecret_file = "good.txt"\nca_file = "bad-ca.pem"\n'
        '[[apps.shop.webhooks]]\nurl = "https://e.example/r"\nsecret_env = "HOOK_E"\n'
    )
    path.write_text(BASE + hooks)
    env = {"SHOP_SA": credentials.fcm_service_account_file.read_text(), "HOOK_E": "whsec_%%%notbase64"}
    out = _check_config(path, env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == f"{path}: 5 problems", out.stderr
    assert "  apps.shop.webhooks[0].secret_env: environment variable HOOK_A is not set" in lines
    assert "  apps.shop.webhooks[1].secret_file: the secret is shorter than 16 bytes" in lines
    assert any(line.startswith("  apps.shop.webhooks[2].secret_file: cannot read") for line in lines)
    assert any(line.startswith("  apps.shop.webhooks[3].ca_file: ") for line in lines)
    assert "  apps.shop.webhooks[4].secret_env: a secret starting whsec_ must go on in base64" in lines
    assert "tooshort" not in out.stderr and "Traceback" not in out.stderr
    good = '[[apps.shop.webhooks]]\nurl = "https://a.example/r"\nsecret_env = "HOOK_A"\n'
    path.write_text(BASE + good + '[[apps.shop.webhooks]]\nurl = "https://d.example/r"\nsecret_file = "good.txt"\n')
    out = _check_config(path, {**env, "HOOK_A": "a raw secret of enough bytes"})
    assert out.returncode == 0, out.stderr
