"""How a fan-out is split into partitions: a domain decision, made once at Send time.

Stored-token queries split the token-bucket space into equal ranges, enough
that each holds about `partition_size` targets (at most `max_partitions`), so
replicas share a big fan-out. Device lists are cut into slices of
`partition_size` devices.

The lane of the partitions is decided here too (`lane_of`): a high-priority
send to a few targets is express, everything else bulk. The size limit is
what keeps the express lane from being filled by a fan-out: a campaign sent
with high priority is still bulk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pushsvc import models
from pushsvc.storage import Lane, PartitionPlan


def plan_partitions(
    *, targeted: int, devices: Sequence[models.Device] | None, partition_size: int, max_partitions: int
) -> list[PartitionPlan]:
    """The partitions of one notification; `devices` is None for a stored-token query."""
    if devices is not None:
        return [
            PartitionPlan(index=i, buckets=(0, 0), devices=tuple(devices[lo : lo + partition_size]))
            for i, lo in enumerate(range(0, len(devices), partition_size))
        ]
    count = max(1, min(max_partitions, math.ceil(targeted / partition_size)))
    edges = [models.BUCKETS * i // count for i in range(count + 1)]
    return [PartitionPlan(index=i, buckets=(edges[i], edges[i + 1])) for i in range(count)]


def lane_of(*, priority: models.Priority, targeted: int, express_max_targets: int, max_per_second: int = 0) -> Lane:
    """The claim lane of a notification: express for an explicitly high-priority send to at most `express_max_targets`.

    A throttled send (`max_per_second` > 0) is always bulk: its workers wait for
    its budget, and an express worker must never be the one waiting.
    """
    if priority is models.Priority.HIGH and targeted <= express_max_targets and not max_per_second:
        return Lane.EXPRESS
    return Lane.BULK
