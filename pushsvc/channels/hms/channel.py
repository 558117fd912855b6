"""The HMS channel's registry entry: renderer, OAuth client credentials and provider."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pushsvc import models
from pushsvc.apps import Renderer
from pushsvc.channels import secrets
from pushsvc.channels.base import BuildContext, Channel, check_opaque_token
from pushsvc.channels.hms.auth import HmsTokenSource
from pushsvc.channels.hms.provider import REASONS, HmsProvider, render_hms, rendered_from_body
from pushsvc.channels.hms.settings import HmsAppSettings
from pushsvc.providers.transport import TlsConfig


def renderer(settings: HmsAppSettings) -> Renderer:
    """The HMS renderer needs nothing from the app's settings."""
    return render_hms


def build_provider(hms: HmsAppSettings, where: str, ctx: BuildContext) -> HmsProvider:
    """The client secret (file or variable), and one transport for Push Kit and the token endpoint."""
    ca = secrets.ca(hms.ca_file, f"{where}.ca_file")
    source = f"{where}.client_secret_file" if hms.client_secret_file else f"{where}.client_secret_env"
    secret = secrets.secret(hms.client_secret_file, hms.client_secret_env, source).decode().strip()
    transport = ctx.transport(TlsConfig(ca_pem=ca))
    tokens = HmsTokenSource(transport=transport, token_url=hms.token_url, client_id=hms.client_id, client_secret=secret, clock=ctx.clock)
    return HmsProvider(transport=transport, base_url=hms.base_url, project_id=hms.project_id, token_source=tokens, clock=ctx.clock)


def demo_settings(urls: Mapping[str, str], credentials: Any) -> HmsAppSettings | None:
    """The emulator's demo OAuth client; None for an emulator without HMS."""
    entries = credentials.channels
    if not entries.get("hms_client_secret_file") or "hms_url" not in urls:
        return None
    return HmsAppSettings(
        client_id=entries["hms_client_id"],
        client_secret_file=Path(entries["hms_client_secret_file"]),
        project_id=entries["hms_project_id"],
        base_url=urls["hms_url"],
        token_url=f"{urls['hms_url']}/oauth2/v3/token",
        ca_file=credentials.ca_file,
    )


CHANNEL = Channel(
    platform=models.Platform.HMS,
    display_name="HMS",
    settings_key="hms",
    settings=HmsAppSettings,
    settings_help="Huawei Push Kit credentials; without them the app cannot send to Huawei devices without Google services.",
    reasons=REASONS,
    check_token=check_opaque_token,
    renderer=renderer,
    restore_rendering=rendered_from_body,
    build_provider=build_provider,
    emulator_handler="pushsvc.emulator.hms",
    deliver_help="Huawei Push Kit token",
    demo_settings=demo_settings,
)
