"""The Web Push channel's registry entry: token checks, renderer, VAPID credentials and provider."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pushsvc import models
from pushsvc.apps import Renderer
from pushsvc.channels import secrets
from pushsvc.channels.base import BuildContext, Channel
from pushsvc.channels.webpush import keys, subscription
from pushsvc.channels.webpush.provider import WebPushProvider, WebPushReason, render_webpush, rendered_from_body
from pushsvc.channels.webpush.settings import WEBPUSH_PUSH_SERVICES, WebPushAppSettings
from pushsvc.channels.webpush.vapid import VapidSigner, load_private_key
from pushsvc.limits import Limits
from pushsvc.providers.transport import TlsConfig


def check_token(token: str, limits: Limits) -> str:
    """A PushSubscription's JSON, with an https endpoint and usable keys."""
    try:
        parsed = subscription.parse(token, max_chars=limits.max_token_chars)
    except subscription.SubscriptionError as exc:
        return str(exc)
    try:
        # On the curve, or no message could ever be encrypted for it.
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), parsed.p256dh)
    except ValueError:
        return "keys.p256dh is not a point on the P-256 curve"
    return ""


def host_check(settings: WebPushAppSettings | None) -> Callable[[str], str]:
    """The app's check of an endpoint's host against its allow-list (the known push services without settings)."""
    allowed = settings.allowed_hosts if settings is not None else WEBPUSH_PUSH_SERVICES

    def check(token: str) -> str:
        try:
            host = subscription.parse(token, max_chars=1 << 20).host
        except subscription.SubscriptionError as exc:
            return str(exc)
        if subscription.host_allowed(host, allowed):
            return ""
        return f"the endpoint's host {host[:100]!r} is not an allowed push service ({', '.join(allowed)})"

    return check


def renderer(settings: WebPushAppSettings) -> Renderer:
    """The Web Push renderer needs nothing from the app's settings."""
    return render_webpush


def build_provider(webpush: WebPushAppSettings, where: str, ctx: BuildContext) -> WebPushProvider:
    """The VAPID key (file or variable) and one transport for every push-service origin."""
    ca = secrets.ca(webpush.ca_file, f"{where}.ca_file")
    source = f"{where}.vapid_private_key_file" if webpush.vapid_private_key_file else f"{where}.vapid_private_key_env"
    raw = secrets.secret(webpush.vapid_private_key_file, webpush.vapid_private_key_env, source)
    with secrets.credential(source):
        key = load_private_key(raw)
    return WebPushProvider(
        transport=ctx.transport(TlsConfig(ca_pem=ca)),
        signer=VapidSigner(key, webpush.subject, ctx.clock.time),
        allowed_hosts=webpush.allowed_hosts,
        default_ttl_s=webpush.default_ttl_s,
        clock=ctx.clock,
    )


def demo_settings(urls: Mapping[str, str], credentials: Any) -> WebPushAppSettings | None:
    """The emulator's demo VAPID key; its push service is on loopback. None for an emulator without Web Push."""
    key_file = credentials.channels.get("webpush_vapid_key_file")
    if not key_file or "webpush_url" not in urls:
        return None
    return WebPushAppSettings(
        vapid_private_key_file=Path(key_file),
        subject="mailto:demo@pushsvc.invalid",
        allowed_hosts=(*WEBPUSH_PUSH_SERVICES, "127.0.0.1", "localhost"),
        ca_file=credentials.ca_file,
    )


CHANNEL = Channel(
    platform=models.Platform.WEBPUSH,
    display_name="Web Push",
    settings_key="webpush",
    settings=WebPushAppSettings,
    settings_help="Web Push (VAPID) credentials; without them the app cannot send to browsers.",
    reasons=frozenset(r.value for r in WebPushReason),
    check_token=check_token,
    canonical_token=subscription.canonical,
    app_token_check=host_check,
    renderer=renderer,
    restore_rendering=rendered_from_body,
    build_provider=build_provider,
    emulator_handler="pushsvc.emulator.webpush",
    dev_hint="web push  curl -s -X POST {inbox}webpush/subscriptions  (a test browser subscription: its JSON is a PLATFORM_WEBPUSH token)",
    commands={"keys": ("print a new VAPID key pair and the applicationServerKey a page subscribes with", keys.print_keys)},
    deliver_help="a browser's PushSubscription JSON (as JSON.stringify(subscription) gives it)",
    demo_settings=demo_settings,
)
