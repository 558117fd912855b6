"""The in-flight budget's bookkeeping when a waiting batch is cancelled (a drain cancels the workers)."""

from __future__ import annotations

import asyncio

import pytest

from pushsvc.dispatch.delivery import InFlightBudget


async def test_a_waiter_cancelled_after_a_release_dropped_its_place_leaves_the_budget_whole() -> None:
    budget = InFlightBudget(1)
    await budget.acquire(1)
    waiter = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0)  # the waiter queues its place
    waiter.cancel()  # its place is cancelled now; the task sees it at its next step
    budget.release(1)  # meanwhile a release drops the cancelled place from the queue
    with pytest.raises(asyncio.CancelledError):
        await waiter  # before the fix: ValueError, the place was no longer queued
    assert budget.used == 0
    await asyncio.wait_for(budget.acquire(1), 1)  # the whole budget is free again
    assert budget.used == 1


async def test_a_waiter_cancelled_while_queued_gives_its_turn_to_the_next() -> None:
    budget = InFlightBudget(2)
    await budget.acquire(2)
    first = asyncio.create_task(budget.acquire(2))
    second = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    budget.release(1)
    await asyncio.wait_for(second, 1)
    assert budget.used == 2
