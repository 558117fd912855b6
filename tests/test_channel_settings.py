"""A channel's settings table and platform come from the channel and the proto, not from edits to the config or models."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from pushsvc import config, models
from pushsvc.channels import registry
from pushsvc.config import schema
from pushsvc.sections import OptionalPath, Section
from pushsvc.v1 import push_pb2
from scripts.platform_enum import render

ROOT = Path(__file__).resolve().parents[1]


class _PagerSettings(Section):
    """A made-up channel's table."""

    pager_id: str
    """The pager."""
    ca_file: OptionalPath = None
    """A CA."""


def test_app_settings_has_each_registered_channels_table() -> None:
    for channel in registry.CHANNELS:
        field = config.AppSettings.model_fields[channel.settings_key]
        assert field.annotation == channel.settings | None
        assert field.description == channel.settings_help
    assert config.AppSettings.__name__ == "AppSettings"
    assert issubclass(config.AppSettings, config.AppSettingsBase)


def test_a_new_channel_brings_its_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pager = dataclasses.replace(
        registry.CHANNELS[-1], settings_key="pager", settings=_PagerSettings, settings_help="Pager credentials."
    )
    monkeypatch.setattr(registry, "CHANNELS", (*registry.CHANNELS, pager))
    model = schema._app_settings_model()
    app = model.model_validate({"app_id": "shop", "pager": {"pager_id": "p1", "ca_file": "ca.pem"}}, context={"base_dir": tmp_path})
    assert app.channel_settings("pager") == _PagerSettings(pager_id="p1", ca_file=tmp_path / "ca.pem")
    assert app.channel_settings("fcm") is None
    assert model.model_fields["pager"].description == "Pager credentials."
    with pytest.raises(ValidationError, match="pager.nope"):
        model.model_validate({"pager": {"pager_id": "p1", "nope": 1}})
    with pytest.raises(ValidationError, match="pager.pager_id"):
        model.model_validate({"pager": {}})


def test_settings_models_still_resolve_by_their_old_names() -> None:
    # Code written before the models moved into their channels.
    from pushsvc.channels.apns import ApnsAppSettings
    from pushsvc.channels.webpush.settings import WebPushAppSettings

    assert config.ApnsAppSettings is ApnsAppSettings
    assert schema.WebPushAppSettings is WebPushAppSettings  # resolved by the module's __getattr__
    with pytest.raises(AttributeError):
        config.NoSuchAppSettings  # noqa: B018  (the attribute access is the test)


def test_platform_is_the_protos_enum() -> None:
    assert (ROOT / "pushsvc" / "v1" / "platform.py").read_text() == render(), "run scripts/gen"
    assert [f"PLATFORM_{p.name}" for p in models.Platform] == list(push_pb2.Platform.keys())
    assert [p.value for p in models.Platform] == [p.name.lower() for p in models.Platform]
    # Every real platform is a registered channel, and every channel a platform.
    assert {c.platform for c in registry.CHANNELS} == set(models.PLATFORMS)


def test_the_dev_banner_has_each_channels_hint() -> None:
    from pushsvc.cli import _dev_hints

    hints = _dev_hints("http://127.0.0.1:8025/_emulator/")
    with_hint = [c for c in registry.CHANNELS if c.dev_hint]
    assert with_hint and hints.count("\n") == len(with_hint)
    assert "curl -s -X POST http://127.0.0.1:8025/_emulator/webpush/subscriptions" in hints
