"""A burst of APNs sends on a fresh HTTP/2 connection, on a busy event loop.

Regression test for duplicate deliveries seen in a 20k fan-out: the requests
that arrived while `H2Transport` opened its first connection queued on a lock
and left it one per event-loop iteration. On a busy loop that took longer than
the request deadline, so the last ones reached the wire just before their
deadline cancelled them; the emulator had already accepted them, the gateway
reported "Timeout" and the dispatcher sent them again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from pushsvc import models
from pushsvc.clock import SystemClock
from pushsvc.providers.apns import ApnsProvider, render_apns
from pushsvc.providers.apns_jwt import ApnsTokenSigner
from pushsvc.providers.base import Delivery, Outcome
from pushsvc.providers.transport import Http2Transport, TlsConfig

BURST = 400
ITERATION_COST_S = 0.01
"""Each event-loop iteration costs at least this much (a gateway busy with
storage and rendering). Draining the old lock queue took BURST iterations,
4 s here, against a 2 s deadline; a burst that is woken all at once needs a
few dozen iterations."""
DEADLINE_S = 2.0


class _BusyLoop:
    """Makes every event-loop iteration take at least `cost_s`, for a bounded number of iterations."""

    def __init__(self, cost_s: float, max_iterations: int) -> None:
        self._cost_s = cost_s
        self._left = max_iterations
        self._handle: asyncio.Handle | None = None
        self.iterations = 0

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        if self._left <= 0:
            self._handle = None
            return
        self._left -= 1
        self.iterations += 1
        time.sleep(self._cost_s)  # deliberately blocking: this is the load
        self._handle = asyncio.get_running_loop().call_soon(self._tick)


@pytest.fixture
def signer(demo, emu_clock) -> ApnsTokenSigner:
    return ApnsTokenSigner(demo.apns_key_file.read_bytes(), demo.apns_key_id, demo.apns_team_id, clock=emu_clock)


async def test_burst_on_a_fresh_connection_is_delivered_once_each_on_the_first_attempt(
    emulator, demo, signer
) -> None:
    provider = ApnsProvider(
        transport=Http2Transport(tls=TlsConfig(ca_pem=emulator.ca_pem), request_timeout_s=DEADLINE_S),
        production_url=emulator.apns_url,
        sandbox_url=emulator.apns_sandbox_url,
        signer=signer,
        clock=SystemClock(),
    )
    message = models.Message(title="burst")
    tokens = [f"{i:064x}" for i in range(1, BURST + 1)]
    deliveries = [Delivery(token=t, rendered=render_apns(message, bundle_id=demo.apns_bundle_id)) for t in tokens]
    busy = _BusyLoop(ITERATION_COST_S, max_iterations=2_000)
    async with provider:
        busy.start()
        try:
            results = await asyncio.gather(*(provider.send(d) for d in deliveries))
        finally:
            busy.stop()
    failed = Counter((r.outcome, r.reason) for r in results if r.outcome is not Outcome.DELIVERED)
    assert not failed, f"{sum(failed.values())} of {BURST} not delivered: {failed} ({busy.iterations} loop iterations)"
    assert all(r.provider_status == 200 for r in results)
    received = Counter(entry.token for entry in emulator.inbox.entries(platform="apns"))
    assert received == Counter(tokens)  # exactly one each
    assert emulator.stats.apns_requests == BURST  # no request was processed twice
