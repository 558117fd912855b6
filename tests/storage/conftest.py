"""The storage contract suite runs against every backend through `stores`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import Lane, NotificationDraft, PartitionPlan, Stores, TargetQuery, open_stores


@pytest.fixture
async def stores(store_url: str, clock: ManualClock) -> AsyncIterator[Stores]:
    """Fresh stores, prepared, on each backend."""
    s = open_stores(store_url, clock=clock)
    await s.prepare()
    try:
        yield s
    finally:
        s.close()


def draft(
    nid: str,
    now: datetime,
    *,
    app_id: str = "app",
    targeted: int = 10,
    state: models.NotificationState = models.NotificationState.QUEUED,
    runnable_at: datetime | None = None,
    idempotency_key: str = "",
    rendered: dict[models.Platform, dict[str, object]] | None = None,
    lane: Lane = Lane.BULK,
) -> NotificationDraft:
    """A notification to the whole app."""
    return NotificationDraft(
        notification_id=nid,
        app_id=app_id,
        state=state,
        created_at=now,
        targeted=targeted,
        query=TargetQuery("all"),
        rendered=rendered or {},
        runnable_at=runnable_at or now,
        target_kind="all",
        idempotency_key=idempotency_key,
        lane=lane,
    )


def plans(n: int) -> list[PartitionPlan]:
    """`n` partitions splitting the bucket space."""
    edges = [models.BUCKETS * i // n for i in range(n + 1)]
    return [PartitionPlan(index=i, buckets=(edges[i], edges[i + 1])) for i in range(n)]
