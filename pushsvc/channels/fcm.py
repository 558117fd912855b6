"""The FCM channel: token checks, renderer, the service account and provider."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import model_validator

from pushsvc import models
from pushsvc.apps import Renderer
from pushsvc.channels import secrets
from pushsvc.channels.base import BuildContext, Channel, check_opaque_token
from pushsvc.providers.fcm import FcmErrorCode, FcmProvider, render_fcm, rendered_from_body
from pushsvc.providers.fcm_auth import FcmAccessTokenSource
from pushsvc.providers.transport import TlsConfig
from pushsvc.sections import OptionalPath, Section

GOOGLE_RPC_CODES = (
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)
"""google.rpc.Code names: FCM's `error.status` when its body carries no FcmError code."""

FCM_URL = "https://fcm.googleapis.com"


class FcmAppSettings(Section):
    """One app's FCM HTTP v1 credentials."""

    service_account_file: OptionalPath = None
    """The service-account JSON; or service_account_env."""
    service_account_env: str = ""
    """An environment variable holding the service-account JSON, instead of service_account_file."""
    project_id: str = ""
    """The Firebase project; empty means the service account's project_id."""
    base_url: str = FCM_URL
    """FCM endpoint."""
    ca_file: OptionalPath = None
    """Extra CA to trust for FCM and the OAuth token_uri (the emulator's)."""

    @model_validator(mode="after")
    def _one_account(self) -> FcmAppSettings:
        if bool(self.service_account_file) == bool(self.service_account_env):
            raise ValueError("set exactly one of service_account_file, service_account_env")
        return self



def renderer(settings: FcmAppSettings) -> Renderer:
    """The FCM renderer needs nothing from the app's settings."""
    return render_fcm


def build_provider(fcm: FcmAppSettings, where: str, ctx: BuildContext) -> FcmProvider:
    """The service account (file or variable) becomes the project's shared access-token source."""
    ca = secrets.ca(fcm.ca_file, f"{where}.ca_file")
    account = f"{where}.service_account_file" if fcm.service_account_file else f"{where}.service_account_env"
    raw = secrets.secret(fcm.service_account_file, fcm.service_account_env, account)
    with secrets.credential(account):
        info: dict[str, Any] = json.loads(raw)
        if not isinstance(info, dict):
            raise ValueError("expected a service-account JSON object")
        token_source = FcmAccessTokenSource.from_service_account_info(
            info, ca_pem=ca, clock=ctx.clock.time, metrics=ctx.metrics
        )
    ctx.closers.append(token_source.close)
    return FcmProvider(
        transport=ctx.transport(TlsConfig(ca_pem=ca)),
        base_url=fcm.base_url,
        project_id=fcm.project_id or str(info.get("project_id", "")),
        token_source=token_source,
        clock=ctx.clock,
    )


def demo_settings(urls: Mapping[str, str], credentials: Any) -> FcmAppSettings:
    """The emulator's demo service account, at its FCM URL."""
    return FcmAppSettings(
        service_account_file=credentials.fcm_service_account_file,
        project_id=credentials.fcm_project_id,
        base_url=urls["fcm_url"],
        ca_file=credentials.ca_file,
    )


CHANNEL = Channel(
    platform=models.Platform.FCM,
    display_name="FCM",
    settings_key="fcm",
    settings=FcmAppSettings,
    settings_help="FCM credentials; without them the app cannot send to Android devices.",
    reasons=frozenset({*(c.value for c in FcmErrorCode), *GOOGLE_RPC_CODES}),
    check_token=check_opaque_token,
    renderer=renderer,
    restore_rendering=rendered_from_body,
    build_provider=build_provider,
    deliver_help="FCM registration token",
    demo_settings=demo_settings,
)
