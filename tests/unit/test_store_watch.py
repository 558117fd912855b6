"""StoreCalls: which store calls count as in flight, and for how long (any adapter; memory:// here)."""

from __future__ import annotations

import asyncio

import pytest

from pushsvc import errors, models
from pushsvc.clock import ManualClock
from pushsvc.storage import TargetQuery
from pushsvc.storage.memory import MemoryStores
from pushsvc.storage.watch import StoreCalls


async def test_a_call_is_in_flight_until_it_returns_and_its_age_is_on_the_injected_clock() -> None:
    clock = ManualClock()
    calls = StoreCalls(clock)
    gate = asyncio.Event()

    class Slow:
        async def get(self) -> str:
            await gate.wait()
            return "answer"

        def name(self) -> str:
            return "not a store call"

    slow = calls.watch(Slow())
    assert slow.name() == "not a store call" and calls.in_flight == 0
    first = asyncio.ensure_future(slow.get())
    await asyncio.sleep(0)
    clock.advance(3)
    second = asyncio.ensure_future(slow.get())
    await asyncio.sleep(0)
    assert (calls.in_flight, calls.oldest_s()) == (2, 3.0)  # the oldest one's age
    gate.set()
    assert await first == await second == "answer"
    assert (calls.in_flight, calls.oldest_s()) == (0, 0.0)


async def test_a_scan_is_in_flight_while_a_page_is_awaited_not_while_the_caller_holds_one() -> None:
    stores = MemoryStores()
    calls = StoreCalls(ManualClock())
    tokens = calls.watch(stores.tokens)
    now = ManualClock().now()
    regs = [models.TokenRegistration(app_id="a", token=f"fcm-{i}", platform=models.Platform.FCM) for i in range(25)]
    assert await tokens.upsert_many(regs, now) == [True] * 25
    assert calls.in_flight == 0
    pages = tokens.scan_targets("a", TargetQuery("all"), (0, models.BUCKETS), None, 10)
    seen = []
    async for page in pages:
        assert calls.in_flight == 0
        seen += [t.token for t in page]
    assert sorted(seen) == sorted(r.token for r in regs)
    # Closed early, the scan releases its pages and nothing stays in flight.
    pages = tokens.scan_targets("a", TargetQuery("all"), (0, models.BUCKETS), None, 10)
    assert len(await pages.__anext__()) == 10
    await pages.aclose()
    assert calls.in_flight == 0


async def test_a_call_counts_as_answered_unless_the_store_was_unreachable_or_it_was_given_up() -> None:
    calls = StoreCalls(ManualClock())

    class Store:
        async def fails(self, exc: Exception) -> None:
            raise exc

        async def hangs(self) -> None:
            await asyncio.Event().wait()

    store = calls.watch(Store())
    with pytest.raises(errors.StoreUnavailable):
        await store.fails(errors.StoreUnavailable("down"))
    hung = asyncio.ensure_future(store.hangs())
    await asyncio.sleep(0)
    hung.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hung
    assert (calls.answered, calls.in_flight) == (0, 0)
    with pytest.raises(errors.NotFound):
        await store.fails(errors.NotFound("an answer all the same"))
    assert calls.answered == 1
