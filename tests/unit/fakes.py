"""Test doubles for unit tests: a scripted provider and a sleep that moves a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.providers.base import Delivery, Outcome, ProviderResult

OK = ProviderResult(Outcome.DELIVERED, 200, provider_message_id="id")


class ScriptedProvider:
    """A `Provider` that answers each token from a script; the default answer is DELIVERED.

    `script[token]` lists the answers of successive attempts; the last one repeats.
    """

    def __init__(
        self,
        platform: models.Platform,
        script: dict[str, Sequence[ProviderResult]] | None = None,
        *,
        default: Callable[[Delivery], ProviderResult] = lambda d: OK,
    ) -> None:
        self._platform = platform
        self.script = dict(script or {})
        self.default = default
        self.sent: list[Delivery] = []
        self.closed = False
        self.gate: asyncio.Event | None = None
        """When set, each send waits for this event first (to hold deliveries in flight)."""
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def platform(self) -> models.Platform:
        """See `Provider.platform`."""
        return self._platform

    async def send(self, delivery: Delivery) -> ProviderResult:
        """See `Provider.send`."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            attempt = sum(1 for d in self.sent if d.token == delivery.token)
            self.sent.append(delivery)
            answers = self.script.get(delivery.token)
            if not answers:
                return self.default(delivery)
            return answers[min(attempt, len(answers) - 1)]
        finally:
            self.in_flight -= 1

    async def send_batch(self, deliveries: Sequence[Delivery]) -> list[ProviderResult]:
        """See `Provider.send_batch`: each delivery answered as `send` answers it, all at once."""
        return list(await asyncio.gather(*(self.send(d) for d in deliveries)))

    async def aclose(self) -> None:
        """See `Provider.aclose`."""
        self.closed = True

    def attempts(self, token: str) -> int:
        """How often `token` was sent."""
        return sum(1 for d in self.sent if d.token == token)


class ClockSleep:
    """A sleep that advances a manual clock instead of waiting; records each delay."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self._clock.advance(seconds)
        await asyncio.sleep(0)
