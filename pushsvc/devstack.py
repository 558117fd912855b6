"""The dev stack: emulator + demo credentials + an Application wired to them.

`pushsvc dev` runs it; integration tests and benchmarks build it too, so they
exercise exactly what a developer runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from pathlib import Path

from pushsvc import models
from pushsvc.bootstrap import Application, build_app_profiles, build_application, build_providers
from pushsvc.channels import registry
from pushsvc.clock import Clock
from pushsvc.config import AppSettings, DispatchSettings, Settings
from pushsvc.emulator import DemoCredentials, Emulator, EmulatorConfig, make_demo_credentials
from pushsvc.emulator.credentials import read_manifest, write_manifest
from pushsvc.providers.base import Delivery, ProviderResult
from pushsvc.storage import Stores

DEMO_APP_ID = "demo"

DEV_BATCH_SIZE = 100
"""dev's batch size (serve's default is 500). A batch's receipts are written
together, once its last token is settled (a 429's retry included), so smaller
batches let a person, and a client's resume test, see a Send's receipts arrive
batch by batch while the rest is still being sent."""


def demo_app_settings(app_id: str, emulator: Emulator, credentials: DemoCredentials) -> AppSettings:
    """An app whose credentials point at a running emulator."""
    urls = {
        "apns_url": emulator.apns_url, "apns_sandbox_url": emulator.apns_sandbox_url, "fcm_url": emulator.fcm_url,
        **emulator.channel_urls(),
    }
    return app_settings_for(app_id, urls, credentials)


def app_settings_for(app_id: str, urls: Mapping[str, str], credentials: DemoCredentials) -> AppSettings:
    """An app using the emulator's demo credentials, at the given emulator URLs: every channel the emulator speaks."""
    sections = {c.settings_key: c.demo_settings(urls, credentials) for c in registry.CHANNELS if c.demo_settings}
    return AppSettings(app_id=app_id, **{key: section for key, section in sections.items() if section is not None})


async def deliver_once(
    manifest: Path, message: models.Message, tokens: Mapping[models.Platform, str]
) -> dict[models.Platform, ProviderResult]:
    """Sends one message per platform straight through the provider adapters (no gateway, no store).

    `manifest` is the emulator.json a running `pushsvc emulator` wrote.
    """
    urls, credentials = read_manifest(manifest)
    app = app_settings_for(DEMO_APP_ID, urls, credentials)
    settings = Settings(apps={DEMO_APP_ID: app})
    providers, closers = build_providers(settings)
    renderers = build_app_profiles(settings)[DEMO_APP_ID].renderers
    results = {}
    try:
        for platform, token in tokens.items():
            delivery = Delivery(token=token, rendered=renderers[platform](message))
            (results[platform],) = await providers[(DEMO_APP_ID, platform)].send_batch((delivery,))
    finally:
        for provider in providers.values():
            await provider.aclose()
        for close in closers:
            close()
    return results


@dataclasses.dataclass
class DevStack:
    """A running emulator and the Application wired to it."""

    emulator: Emulator
    credentials: DemoCredentials
    app: Application

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stops the Application, then the emulator."""
        try:
            await self.app.stop(grace_s)
        finally:
            await self.emulator.stop()


async def start_dev_stack(
    *,
    state_dir: Path,
    port: int = 50051,
    host: str = "127.0.0.1",
    store_url: str = "mongomock://localhost/pushsvc",
    dispatch: DispatchSettings | None = None,
    clock: Clock | None = None,
    stores: Stores | None = None,
    emulator_config: EmulatorConfig | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "",
    connect_port: int | None = None,
) -> DevStack:
    """Starts the emulator, writes demo credentials into state_dir, starts pushsvc with app "demo".

    `metrics_port` turns the Prometheus endpoint on (0: a free port); None leaves it off.
    It binds `metrics_host`, or `host` when that is empty. `connect_port` turns
    the Connect and gRPC-web port on (0: a free port) on `host`; None leaves it off.
    """
    emulator = Emulator(emulator_config or EmulatorConfig())
    await emulator.start()
    try:
        credentials, apns_key, fcm_account = make_demo_credentials(
            state_dir, token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        emulator.add_apns_key(apns_key)
        emulator.add_fcm_account(fcm_account)
        emulator.accept_demo_credentials(credentials)
        write_manifest(state_dir, emulator, credentials)
        settings = Settings(
            store_url=store_url,
            host=host,
            port=port,
            apps={DEMO_APP_ID: demo_app_settings(DEMO_APP_ID, emulator, credentials)},
            dispatch=dispatch or DispatchSettings(batch_size=DEV_BATCH_SIZE),
            metrics_port=metrics_port or 0,
            metrics_host=metrics_host or host,
            connect_port=connect_port or 0,
        )
        app = build_application(
            settings, clock=clock, stores=stores, metrics=metrics_port is not None, connect=connect_port is not None
        )
        try:
            await app.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await app.stop(0)
            raise
    except BaseException:
        await emulator.stop()
        raise
    return DevStack(emulator=emulator, credentials=credentials, app=app)
