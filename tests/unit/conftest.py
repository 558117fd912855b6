"""Unit-test wiring: the service, the dispatcher and the receipt feed on the memory store, with a manual clock."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator

import pytest

from pushsvc import models
from pushsvc.apps import AppProfile
from pushsvc.clock import ManualClock
from pushsvc.config import DispatchSettings
from pushsvc.dispatch import Dispatcher
from pushsvc.providers.apns import render_apns
from pushsvc.providers.fcm import render_fcm
from pushsvc.receipts import ReceiptFeed, ReceiptSignal
from pushsvc.service import PushService
from pushsvc.storage import Stores, open_stores
from tests.unit.fakes import ClockSleep, ScriptedProvider

APP = "app"
APNS, FCM = models.Platform.APNS, models.Platform.FCM
SETTINGS = DispatchSettings(
    batch_size=10, partition_size=50, lease_s=30, max_attempts=4, initial_backoff_s=1.0, max_backoff_s=8.0,
    poll_interval_s=0.01, receipt_gap_grace_s=5.0, max_queue_depth=100,
)


@dataclasses.dataclass
class World:
    """One replica's components over a shared store."""

    clock: ManualClock
    stores: Stores
    signal: ReceiptSignal
    service: PushService
    feed: ReceiptFeed
    apns: ScriptedProvider
    fcm: ScriptedProvider
    sleep: ClockSleep
    settings: DispatchSettings

    def dispatcher(self, owner: str = "w1", **overrides: object) -> Dispatcher:
        """A dispatcher of this world (not started: tests call `run_once()`)."""
        return Dispatcher(
            tokens=self.stores.tokens,
            notifications=self.stores.notifications,
            receipts=self.stores.receipts,
            providers={(APP, APNS): self.apns, (APP, FCM): self.fcm},
            clock=self.clock,
            settings=self.settings.model_copy(update=overrides),
            signal=self.signal,
            owner=owner,
            sleep=self.sleep,
            rand=lambda: 0.5,
        )

    async def drain(self, owner: str = "w1", limit: int = 1000, **overrides: object) -> int:
        """Runs one dispatcher until nothing is runnable; returns how many partitions it worked."""
        d = self.dispatcher(owner, **overrides)
        worked = 0
        for _ in range(limit):
            if not await d.run_once():
                return worked
            worked += 1
        raise AssertionError("the dispatcher never ran out of work")

    async def register(self, n: int, platform: models.Platform = FCM, prefix: str = "t", **kw: object) -> list[str]:
        """Registers n tokens through the service; returns them."""
        tokens = [f"{prefix}{i:04d}" if platform is FCM else f"{prefix}{i:062x}"[:64] for i in range(n)]
        for t in tokens:
            await self.service.register_token(models.TokenRegistration(APP, t, platform, **kw))  # type: ignore[arg-type]
        return tokens


def make_world(settings: DispatchSettings = SETTINGS, platforms: tuple[models.Platform, ...] = (APNS, FCM)) -> World:
    clock = ManualClock()
    stores = open_stores("memory://", clock=clock)
    signal = ReceiptSignal()
    feed = ReceiptFeed(stores.receipts, stores.notifications, signal, poll_interval_s=settings.poll_interval_s,
                       gap_grace_s=settings.receipt_gap_grace_s, clock=clock)
    renderers = {APNS: functools.partial(render_apns, bundle_id="com.example.app"), FCM: render_fcm}
    apps = {APP: AppProfile(APP, {p: renderers[p] for p in platforms})}
    service = PushService(tokens=stores.tokens, notifications=stores.notifications, feed=feed, apps=apps, clock=clock,
                          dispatch=settings, stale_after_days=60)
    return World(clock, stores, signal, service, feed, ScriptedProvider(APNS), ScriptedProvider(FCM), ClockSleep(clock),
                 settings)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = make_world()
    await w.stores.prepare()
    yield w
    w.stores.close()
