"""How a fan-out is split into partitions: a domain decision, made once at Send time.

Stored-token queries split the token-bucket space into equal ranges, enough
that each holds about `partition_size` targets (at most `max_partitions`), so
replicas share a big fan-out. Device lists are cut into slices of
`partition_size` devices.

A local-time send (`plan_local_time`) is cut by due instant first: the
targets' zones are grouped by the instant their local time comes
(`due_instant`), and each group gets its own partitions, runnable at that
instant and restricted to its zones. Nothing waits in memory: the partitions
are stored at Send and claimed when due, like a scheduled send's.

The lane of the partitions is decided here too (`lane_of`): a high-priority
send to a few targets is express, everything else bulk. The size limit is
what keeps the express lane from being filled by a fan-out: a campaign sent
with high priority is still bulk.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta, tzinfo

from pushsvc import models, timezones
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


def due_instant(zone: tzinfo, at: models.LocalTime, reference: datetime) -> datetime:
    """When `at` comes in `zone`, as seen from `reference` (an aware instant); returned in UTC.

    The rule: the wall time `at.hour:at.minute` on the zone's local date of
    `reference`. When that is before `reference`, NEXT_DAY takes the same wall
    time on the next local day, SEND_NOW takes `reference` itself. A wall time
    is read the way `zoneinfo` reads it with fold=0: in a DST gap (a time that
    does not exist that day) it lands as far past the gap's start as the
    requested time is, i.e. moved forward by the gap (02:30 on a spring-forward
    night in New York is 03:30 EDT); in a fold (a time that happens twice) it
    is the first of the two.
    """
    local_date = reference.astimezone(zone).date()
    wall = datetime.combine(local_date, time(at.hour, at.minute), tzinfo=zone).astimezone(UTC)
    if wall >= reference:
        return wall
    if at.if_passed is models.LocalTimePassed.SEND_NOW:
        return reference.astimezone(UTC)
    return datetime.combine(local_date + timedelta(days=1), time(at.hour, at.minute), tzinfo=zone).astimezone(UTC)


def fallback_zone(at: models.LocalTime) -> tzinfo:
    """The zone of targets without a usable one of their own: the send's fallback, or UTC when it names none."""
    zone = timezones.zone(at.fallback_timezone or timezones.UTC_NAME)
    if zone is None:  # validation rejects unknown fallback names before Send gets here
        raise ValueError(f"unknown fallback time zone {at.fallback_timezone!r}")
    return zone


def zone_of(name: str, fallback: tzinfo) -> tzinfo:
    """A stored zone name resolved: the zone, or `fallback` for "" and for names the database no longer knows."""
    return (timezones.zone(name) or fallback) if name else fallback


@dataclasses.dataclass(frozen=True, slots=True)
class DueGroup:
    """The stored zone names whose local time comes at the same instant, and how many targets they hold."""

    due: datetime
    zones: frozenset[str]
    """Stored zone names as the tokens hold them ("" for tokens without one)."""
    targets: int


def due_groups(at: models.LocalTime, reference: datetime, counts: Mapping[str, int]) -> list[DueGroup]:
    """Stored zone name → target count (`TokenStore.count_by_timezone`) grouped by due instant, earliest first."""
    fallback = fallback_zone(at)
    zones: dict[datetime, set[str]] = {}
    targets: dict[datetime, int] = {}
    for name, n in counts.items():
        due = due_instant(zone_of(name, fallback), at, reference)
        zones.setdefault(due, set()).add(name)
        targets[due] = targets.get(due, 0) + n
    return [DueGroup(due, frozenset(zones[due]), targets[due]) for due in sorted(zones)]


def plan_local_time(
    *, groups: Sequence[DueGroup], partition_size: int, max_partitions: int
) -> list[PartitionPlan]:
    """The partitions of a local-time send to a stored-token query: each due group split into bucket ranges.

    Each partition is runnable at its group's due instant and scans only its
    group's zones; its `targets` is its even share of the group's count, so the
    partitions of a group add up to it exactly.
    """
    plans: list[PartitionPlan] = []
    for group in groups:
        count = max(1, min(max_partitions, math.ceil(group.targets / partition_size)))
        edges = [models.BUCKETS * i // count for i in range(count + 1)]
        for i in range(count):
            share = group.targets // count + (1 if i < group.targets % count else 0)
            plans.append(PartitionPlan(
                index=len(plans), buckets=(edges[i], edges[i + 1]), runnable_at=group.due, timezones=group.zones,
                targets=share,
            ))
    return plans


def plan_local_devices(
    *, at: models.LocalTime, reference: datetime, devices: Sequence[models.Device],
    zones: Mapping[tuple[models.Platform, str], str], partition_size: int,
) -> list[PartitionPlan]:
    """The partitions of a local-time send to a device list: the devices grouped by due instant, then sliced.

    `zones` holds the registered zone name of each registered device, by
    (platform, token); the others take the fallback zone.
    """
    fallback = fallback_zone(at)
    by_due: dict[datetime, list[models.Device]] = {}
    for d in devices:
        by_due.setdefault(due_instant(zone_of(zones.get((d.platform, d.token), ""), fallback), at, reference), []).append(d)
    plans: list[PartitionPlan] = []
    for due in sorted(by_due):
        group = by_due[due]
        for lo in range(0, len(group), partition_size):
            part = tuple(group[lo : lo + partition_size])
            plans.append(PartitionPlan(
                index=len(plans), buckets=(0, 0), devices=part, runnable_at=due, targets=len(part)
            ))
    return plans


def lane_of(
    *, priority: models.Priority, targeted: int, express_max_targets: int, max_per_second: int = 0, local_time: bool = False
) -> Lane:
    """The claim lane of a notification: express for an explicitly high-priority send to at most `express_max_targets`.

    A throttled send (`max_per_second` > 0) is always bulk: its workers wait for
    its budget, and an express worker must never be the one waiting. A
    local-time send is always bulk too: its point is to wait for each zone's
    time, and its groups must not take the express workers when they come due.
    """
    if priority is models.Priority.HIGH and targeted <= express_max_targets and not max_per_second and not local_time:
        return Lane.EXPRESS
    return Lane.BULK
