"""docs/config.md is the settings models' reference: complete, current, and its environment names work."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pushsvc import config
from pushsvc.config.schema import HmsAppSettings, WebPushAppSettings
from scripts.config_reference import Row, render, rows

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_reference_is_current() -> None:
    # A field added, renamed or re-described without scripts/gen-config-reference fails here.
    assert (ROOT / "docs" / "config.md").read_text() == render(), "run scripts/gen-config-reference and commit docs/config.md"


def _nested(annotation: Any) -> set[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {annotation}
    return {m for arg in typing.get_args(annotation) for m in _nested(arg)}


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        for nested in _nested(field.annotation) - found:
            found |= _models(nested)
    return found


def test_every_field_is_described_and_documented() -> None:
    models = _models(config.Settings)
    assert {config.DispatchSettings, config.ApnsAppSettings, config.FcmAppSettings, config.JwtIssuerSettings, config.TlsSettings} <= models
    keys = {row.key.replace("<app_id>.", "").replace("[]", "") for row in rows()}
    for model in models:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description (a docstring under the field)"
            if model is not config.AppSettings and not _nested(field.annotation):  # leaves; tables are headings
                assert any(k == name or k.endswith(f".{name}") for k in keys), f"{model.__name__}.{name} is not in the reference"
    assert "| `dispatch.lease_s` | float, > 0 | `10.0` | `PUSHSVC_DISPATCH_LEASE_S` |" in render()


def _sample(row: Row) -> tuple[str, Any]:
    """A valid value other than the default, as the environment gives it and as the setting holds it."""
    kind = row.type.split(",")[0]
    if row.key == "log_level":
        return "debug", "DEBUG"
    if row.key.endswith(".hms.client_id"):
        return "42", "42"
    if row.key.endswith(".webpush.subject"):
        return "https://example.com/contact", "https://example.com/contact"
    if row.key == "tracing.otlp_endpoint":
        return "http://collector:4318/v1/traces", "http://collector:4318/v1/traces"
    if row.key == "tracing.sample_ratio":
        return "0.25", 0.25
    if kind == '"json" or "text"':
        return "text", "text"
    if kind == '"uvloop" or "asyncio"':
        return "asyncio", "asyncio"
    if kind == "integer":
        return "4242", 4242
    if kind == "float":
        return "42.5", 42.5
    if kind == "boolean":
        return "true", True
    if kind == "path":
        return "/run/pushsvc/x", Path("/run/pushsvc/x")
    if kind == "array of strings":
        return '["push.example.com"]', ("push.example.com",)
    assert kind == "string", row
    return "value-from-env", "value-from-env"


SCALARS = [r for r in rows() if r.env and "<APP>" not in r.env and not r.type.startswith("array of tables")]


@pytest.mark.parametrize("row", SCALARS, ids=[r.key for r in SCALARS])
def test_each_documented_variable_sets_its_key(row: Row, tmp_path: Path) -> None:
    raw, expected = _sample(row)
    env = {"PUSHSVC_TLS_CERT_FILE": "/c.pem", "PUSHSVC_TLS_KEY_FILE": "/k.pem"} if row.key.startswith("tls.") else {}
    if row.key == "auth.api_keys_file":
        (tmp_path / "keys.toml").write_text("")
        raw, expected = str(tmp_path / "keys.toml"), tmp_path / "keys.toml"
    if row.key == "secrets_dir":
        raw, expected = str(tmp_path), tmp_path
    settings = config.load_settings(None, env={**env, row.env: raw})
    value: Any = settings
    for part in row.key.split("."):
        value = getattr(value, part)
    assert value == expected


def test_app_variables_set_app_keys() -> None:
    app_rows = [r for r in rows() if "<APP>" in r.env]
    webhook_rows = [r for r in app_rows if r.key == "apps.<app_id>.webhooks"]
    assert len(webhook_rows) == 1, "the webhooks array is set as a whole, in JSON"
    app_rows.remove(webhook_rows[0])
    # The app's own settings (not a channel's): `apps.<app_id>.<name>`.
    own_rows = [r for r in app_rows if r.key.count(".") == 2]
    assert [r.key for r in own_rows] == ["apps.<app_id>.default_max_per_second"]
    for r in own_rows:
        app_rows.remove(r)
    assert len(app_rows) == len(config.ApnsAppSettings.model_fields) + len(config.FcmAppSettings.model_fields) + len(WebPushAppSettings.model_fields) + len(HmsAppSettings.model_fields)
    base = {
        "PUSHSVC_APPS__DEMO__APNS__BUNDLE_ID": "com.example.demo",
        "PUSHSVC_APPS__DEMO__APNS__CERT_FILE": "/c.pem",
        "PUSHSVC_APPS__DEMO__FCM__SERVICE_ACCOUNT_FILE": "/sa.json",
        "PUSHSVC_APPS__DEMO__WEBPUSH__SUBJECT": "mailto:ops@example.com",
        "PUSHSVC_APPS__DEMO__WEBPUSH__VAPID_PRIVATE_KEY_FILE": "/vapid.pem",
        "PUSHSVC_APPS__DEMO__HMS__CLIENT_ID": "103456789",
        "PUSHSVC_APPS__DEMO__HMS__CLIENT_SECRET_FILE": "/hms-secret",
        "PUSHSVC_APPS__DEMO__HMS__PROJECT_ID": "736430079244623135",
    }
    for row in app_rows:
        *_, platform, name = row.key.split(".")
        if name in ("key_file", "key_env", "cert_env", "service_account_env", "vapid_private_key_env", "client_secret_env"):
            continue  # one credential each: covered by the credential tests
        raw, expected = _sample(row)
        settings = config.load_settings(None, env={**base, row.env.replace("<APP>", "DEMO"): raw})
        assert getattr(getattr(settings.apps["demo"], platform), name) == expected, row.key
    for row in own_rows:
        raw, expected = _sample(row)
        settings = config.load_settings(None, env={**base, row.env.replace("<APP>", "DEMO"): raw})
        assert getattr(settings.apps["demo"], row.key.rsplit(".", 1)[1]) == expected, row.key
    hooks = '[{"url": "https://hooks.example/receipts", "secret_env": "HOOK_SECRET", "max_batch": 7}]'
    settings = config.load_settings(None, env={**base, webhook_rows[0].env.replace("<APP>", "DEMO"): hooks})
    assert [(w.url, w.secret_env, w.max_batch) for w in settings.apps["demo"].webhooks] == [
        ("https://hooks.example/receipts", "HOOK_SECRET", 7)
    ]
