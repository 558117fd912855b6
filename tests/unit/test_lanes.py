"""The express lane's two domain rules: which sends are express, and how express batches take the provider budget."""

from __future__ import annotations

import asyncio

from pushsvc import models
from pushsvc.dispatch.delivery import InFlightBudget
from pushsvc.dispatch.planning import lane_of
from pushsvc.storage import Lane


def test_only_a_high_priority_send_to_few_targets_is_express() -> None:
    high, normal, unspecified = models.Priority.HIGH, models.Priority.NORMAL, models.Priority.UNSPECIFIED
    assert lane_of(priority=high, targeted=1, express_max_targets=500) is Lane.EXPRESS
    assert lane_of(priority=high, targeted=500, express_max_targets=500) is Lane.EXPRESS
    assert lane_of(priority=high, targeted=501, express_max_targets=500) is Lane.BULK, "a high-priority campaign is bulk"
    assert lane_of(priority=normal, targeted=1, express_max_targets=500) is Lane.BULK
    assert lane_of(priority=unspecified, targeted=1, express_max_targets=500) is Lane.BULK
    assert lane_of(priority=high, targeted=1, express_max_targets=0) is Lane.BULK, "0 turns the lane off"


async def test_an_express_batch_does_not_queue_behind_bulk_batches() -> None:
    budget = InFlightBudget(10)
    await budget.acquire(10)
    waiting = asyncio.create_task(budget.acquire(5))
    await asyncio.sleep(0)
    assert not waiting.done(), "a bulk batch waits for places"
    await asyncio.wait_for(budget.acquire(1, express=True), 0.1)
    assert budget.used == 11
    budget.release(10)
    await asyncio.wait_for(waiting, 0.1)
    assert budget.used == 6
    budget.release(1)
    budget.release(5)
    assert budget.used == 0
