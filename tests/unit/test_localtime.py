"""The due-instant rule of a local-time send (`pushsvc.dispatch.planning`), on fixed instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.dispatch.planning import due_groups, due_instant, plan_local_devices, plan_local_time

NEXT, NOW = models.LocalTimePassed.NEXT_DAY, models.LocalTimePassed.SEND_NOW
PARIS, TOKYO, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")

# 30 zones with whole, half and quarter hour offsets, both hemispheres, both sides of the date line.
ZONES_30 = (
    "Pacific/Kiritimati", "Pacific/Auckland", "Australia/Sydney", "Australia/Adelaide", "Asia/Tokyo", "Asia/Shanghai",
    "Asia/Bangkok", "Asia/Kathmandu", "Asia/Kolkata", "Asia/Karachi", "Asia/Dubai", "Asia/Tehran", "Europe/Moscow",
    "Africa/Nairobi", "Europe/Athens", "Europe/Paris", "Europe/London", "Atlantic/Azores", "Atlantic/Cape_Verde",
    "America/Noronha", "America/Sao_Paulo", "America/St_Johns", "America/Halifax", "America/New_York",
    "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
    "Pacific/Pago_Pago",
)


def at(hour: int, minute: int = 0, if_passed: models.LocalTimePassed = NEXT, fallback: str = "") -> models.LocalTime:
    return models.LocalTime(hour, minute, fallback, if_passed)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]  # (year, month, day, ...) as given


def test_a_time_still_to_come_today_is_today_in_that_zone() -> None:
    ref = utc(2026, 1, 15, 6, 0)  # 07:00 in Paris, 15:00 in Tokyo
    assert due_instant(PARIS, at(9), ref) == utc(2026, 1, 15, 8, 0)
    assert due_instant(PARIS, at(7), ref) == ref  # exactly now counts as not passed


@pytest.mark.parametrize("policy, expected", [(NEXT, utc(2026, 1, 16, 0, 0)), (NOW, utc(2026, 1, 15, 6, 0))])
def test_a_time_already_passed_follows_the_policy(policy: models.LocalTimePassed, expected: datetime) -> None:
    ref = utc(2026, 1, 15, 6, 0)  # 15:00 in Tokyo: 09:00 has passed there
    assert due_instant(TOKYO, at(9, 0, policy), ref) == expected


def test_the_local_date_is_the_zone_s_own_not_utc_s() -> None:
    ref = utc(2026, 1, 15, 23, 30)  # already 08:30 on the 16th in Tokyo, still the 15th in New York
    assert due_instant(TOKYO, at(9), ref) == utc(2026, 1, 16, 0, 0)
    assert due_instant(NEW_YORK, at(9), ref) == utc(2026, 1, 16, 14, 0)  # 18:30 passed: 09:00 on the 16th


def test_a_time_in_a_dst_gap_moves_forward_by_the_gap() -> None:
    # New York springs forward on 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist.
    ref = utc(2026, 3, 8, 5, 0)  # 00:00 EST
    due = due_instant(NEW_YORK, at(2, 30), ref)
    assert due == utc(2026, 3, 8, 7, 30)  # read with the EST offset: 03:30 EDT
    assert due.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:30 EDT"


def test_a_time_in_a_dst_fold_is_the_first_of_the_two() -> None:
    # New York falls back on 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    ref = utc(2026, 11, 1, 4, 0)  # 00:00 EDT
    assert due_instant(NEW_YORK, at(1, 30), ref) == utc(2026, 11, 1, 5, 30)


def test_next_day_keeps_the_wall_time_across_a_dst_change() -> None:
    # 09:00 in Paris has passed on 2026-03-28; the next day is the first of summer time.
    ref = utc(2026, 3, 28, 12, 0)
    assert due_instant(PARIS, at(9), ref) == utc(2026, 3, 29, 7, 0)  # 09:00 CEST, not 08:00 UTC


def test_zones_with_the_same_instant_share_a_group_and_fallback_covers_unknown_and_empty() -> None:
    ref = utc(2026, 1, 15, 6, 0)
    counts = {"Europe/Paris": 3, "Europe/Berlin": 2, "Asia/Tokyo": 4, "": 5, "Mars/Olympus_Mons": 1}
    groups = due_groups(at(9, fallback="Europe/Madrid"), ref, counts)
    # Paris, Berlin, Madrid (the fallback of "" and of a zone no longer known) are all 09:00 CET.
    assert [(g.due, g.zones, g.targets) for g in groups] == [
        (utc(2026, 1, 15, 8, 0), frozenset({"Europe/Paris", "Europe/Berlin", "", "Mars/Olympus_Mons"}), 11),
        (utc(2026, 1, 16, 0, 0), frozenset({"Asia/Tokyo"}), 4),
    ]
    # No fallback: UTC.
    [g] = due_groups(at(9), ref, {"": 2})
    assert g.due == utc(2026, 1, 15, 9, 0)


def test_thirty_zones_each_get_their_own_local_time_within_a_day() -> None:
    clock = ManualClock(start=utc(2026, 6, 1, 12, 0))
    ref = clock.now()
    groups = due_groups(at(9, 30), ref, {z: 10 for z in ZONES_30})
    assert sum(g.targets for g in groups) == 300
    for g in groups:
        assert ref <= g.due < ref + timedelta(days=1)
        for name in g.zones:
            local = g.due.astimezone(ZoneInfo(name))
            assert (local.hour, local.minute) == (9, 30), name
    plans = plan_local_time(groups=groups, partition_size=4, max_partitions=2)
    assert [p.index for p in plans] == list(range(len(plans)))
    for g in groups:
        mine = [p for p in plans if p.runnable_at == g.due]
        assert {p.timezones for p in mine} == {g.zones}
        assert sum(p.targets for p in mine) == g.targets
        # Each group's partitions cover the whole bucket space once.
        assert sorted(p.buckets for p in mine)[0][0] == 0 and sorted(p.buckets for p in mine)[-1][1] == models.BUCKETS
        assert len(mine) == min(2, -(-g.targets // 4))


def test_device_lists_group_by_the_registered_zone_and_the_fallback() -> None:
    ref = utc(2026, 1, 15, 6, 0)
    apns = models.Platform.APNS
    devices = [models.Device(f"{i:064x}", apns) for i in range(5)]
    zones = {(apns, devices[0].token): "Asia/Tokyo", (apns, devices[1].token): "Europe/Paris"}
    plans = plan_local_devices(at=at(9, fallback="Europe/Paris"), reference=ref, devices=devices, zones=zones, partition_size=2)
    assert [(p.runnable_at, p.devices, p.targets, p.timezones) for p in plans] == [
        (utc(2026, 1, 15, 8, 0), tuple(devices[1:3]), 2, None),
        (utc(2026, 1, 15, 8, 0), tuple(devices[3:5]), 2, None),
        (utc(2026, 1, 16, 0, 0), (devices[0],), 1, None),
    ]
