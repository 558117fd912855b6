"""The APNs channel: token checks, renderer, credentials (key or certificate) and provider."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from pushsvc import models
from pushsvc.apps import Renderer
from pushsvc.channels import secrets
from pushsvc.channels.base import BuildContext, Channel
from pushsvc.limits import Limits
from pushsvc.providers.apns import ApnsProvider, apns_client_tls, render_apns, rendered_from_body
from pushsvc.providers.apns_jwt import ApnsTokenSigner
from pushsvc.providers.aps import ApnsReason
from pushsvc.providers.transport import TlsConfig
from pushsvc.sections import OptionalPath, Section

_HEX = re.compile(r"[0-9A-Fa-f]+")

APNS_PRODUCTION_URL = "https://api.push.apple.com"
APNS_SANDBOX_URL = "https://api.sandbox.push.apple.com"


class ApnsAppSettings(Section):
    """One app's APNs credentials: token auth (key_file or key_env) or certificate auth (cert_file or cert_env)."""

    bundle_id: str = Field(min_length=1)
    """The app's bundle id, the default apns-topic; push types add their suffix (".voip", ...)."""
    key_file: OptionalPath = None
    """The .p8 signing key (token auth)."""
    key_env: str = ""
    """An environment variable holding the .p8 key's PEM text, instead of key_file."""
    key_id: str = ""
    """The signing key's 10-character Key ID (token auth)."""
    team_id: str = ""
    """The Apple developer Team ID (token auth)."""
    cert_file: OptionalPath = None
    """PEM or P12 client certificate (certificate auth)."""
    cert_env: str = ""
    """An environment variable holding the PEM client certificate (and its key, unless cert_key_file), instead of cert_file."""
    cert_key_file: OptionalPath = None
    """PEM private key when it is not with the certificate."""
    cert_password_file: OptionalPath = None
    """File holding the P12 or key password."""
    production_url: str = APNS_PRODUCTION_URL
    """APNs production endpoint."""
    sandbox_url: str = APNS_SANDBOX_URL
    """APNs sandbox (development) endpoint."""
    ca_file: OptionalPath = None
    """Extra CA to trust (the emulator's); unset means the system store."""

    @model_validator(mode="after")
    def _one_credential(self) -> ApnsAppSettings:
        token = [n for n in ("key_file", "key_env") if getattr(self, n)]
        cert = [n for n in ("cert_file", "cert_env") if getattr(self, n)]
        if not token and not cert:
            raise ValueError("set key_file or key_env (token auth), or cert_file or cert_env (certificate auth)")
        if len(token) + len(cert) > 1:
            raise ValueError(f"set one credential, not {' and '.join(token + cert)}")
        if token and not (self.key_id and self.team_id):
            raise ValueError("token auth needs key_id and team_id")
        return self



def check_token(token: str, limits: Limits) -> str:
    """APNs device tokens are hex of a plausible, even length."""
    if not _HEX.fullmatch(token):
        return "an APNs device token must be hexadecimal"
    if not (limits.apns_token_min_hex <= len(token) <= limits.apns_token_max_hex) or len(token) % 2:
        return (
            f"an APNs device token must be an even number of {limits.apns_token_min_hex} to "
            f"{limits.apns_token_max_hex} hex digits (got {len(token)})"
        )
    return ""


def renderer(settings: ApnsAppSettings) -> Renderer:
    """Renders with the app's bundle id as the default apns-topic."""
    return functools.partial(render_apns, bundle_id=settings.bundle_id)


def build_provider(apns: ApnsAppSettings, where: str, ctx: BuildContext) -> ApnsProvider:
    """Token auth (one signer per key, shared across apps) or certificate auth."""
    signers: dict[tuple[Path, str, str], ApnsTokenSigner] = ctx.shared.setdefault("apns.signers", {})
    ca = secrets.ca(apns.ca_file, f"{where}.ca_file")
    signer = None
    if apns.key_file is not None or apns.key_env:
        key = (apns.key_file.resolve() if apns.key_file else Path(f"env:{apns.key_env}"), apns.key_id, apns.team_id)
        if key not in signers:
            source = f"{where}.key_file" if apns.key_file else f"{where}.key_env"
            pem = secrets.secret(apns.key_file, apns.key_env, source)
            with secrets.credential(source):
                signers[key] = ApnsTokenSigner(pem, apns.key_id, apns.team_id, clock=ctx.clock.time, metrics=ctx.metrics)
        signer = signers[key]
        tls = TlsConfig(ca_pem=ca)
    else:
        password = (
            secrets.read(apns.cert_password_file, f"{where}.cert_password_file").strip()
            if apns.cert_password_file else None
        )
        if apns.cert_key_file is not None:
            secrets.read(apns.cert_key_file, f"{where}.cert_key_file")
        source = f"{where}.cert_file" if apns.cert_file else f"{where}.cert_env"
        cert = apns.cert_file or secrets.secret(None, apns.cert_env, source)
        with secrets.credential(source):
            tls = apns_client_tls(cert, apns.cert_key_file, password, ca)
    return ApnsProvider(
        transport=ctx.transport(tls),
        production_url=apns.production_url,
        sandbox_url=apns.sandbox_url,
        signer=signer,
        clock=ctx.clock,
    )


def demo_settings(urls: Mapping[str, str], credentials: Any) -> ApnsAppSettings:
    """The emulator's demo key, at its production and sandbox URLs."""
    return ApnsAppSettings(
        bundle_id=credentials.apns_bundle_id,
        key_file=credentials.apns_key_file,
        key_id=credentials.apns_key_id,
        team_id=credentials.apns_team_id,
        production_url=urls["apns_url"],
        sandbox_url=urls["apns_sandbox_url"],
        ca_file=credentials.ca_file,
    )


CHANNEL = Channel(
    platform=models.Platform.APNS,
    display_name="APNs",
    settings_key="apns",
    settings=ApnsAppSettings,
    settings_help="APNs credentials; without them the app cannot send to iOS devices.",
    reasons=frozenset(r.value for r in ApnsReason),
    check_token=check_token,
    renderer=renderer,
    restore_rendering=rendered_from_body,
    build_provider=build_provider,
    deliver_help="hex APNs device token",
    demo_settings=demo_settings,
)
