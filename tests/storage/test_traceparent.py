"""Contract: the traceparent of the Send that queued a notification is stored with it, on every backend."""

from __future__ import annotations

import dataclasses

from pushsvc.clock import ManualClock
from pushsvc.storage import Stores
from tests.storage.conftest import draft, plans

SEND = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_traceparent_round_trips(stores: Stores, clock: ManualClock) -> None:
    await stores.notifications.create(dataclasses.replace(draft("n1", clock.now()), traceparent=SEND), plans(2))
    record = await stores.notifications.get("app", "n1")
    assert record is not None and record.traceparent == SEND
    # Stored as given, not re-derived: an unsampled Send's flags come back as they went in.
    unsampled = SEND[:-2] + "00"
    await stores.notifications.create(dataclasses.replace(draft("n2", clock.now()), traceparent=unsampled), [])
    completed = await stores.notifications.get("app", "n2")
    assert completed is not None and completed.traceparent == unsampled


async def test_untraced_sends_store_none(stores: Stores, clock: ManualClock) -> None:
    await stores.notifications.create(draft("n1", clock.now()), plans(1))
    record = await stores.notifications.get("app", "n1")
    assert record is not None and record.traceparent == ""
