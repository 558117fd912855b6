"""The answers' timestamps: `convert._ts` gives what protobuf's own `Timestamp.FromDatetime` gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from pushsvc.rpc import convert


def _reference(dt: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


@pytest.mark.parametrize(
    "dt",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the epoch: seconds < 0, nanos >= 0
        datetime(1901, 3, 4, 5, 6, 7, 1, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_fixed_instants(dt: datetime) -> None:
    assert convert._ts(dt) == _reference(dt)


def test_random_instants_and_offsets() -> None:
    rng = random.Random(20)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for _ in range(5000):
        dt = epoch + timedelta(microseconds=rng.randint(-(10**16), 10**17))
        dt = dt.astimezone(timezone(timedelta(minutes=rng.randint(-900, 900))))
        assert convert._ts(dt) == _reference(dt), dt


def test_naive_is_read_as_local_time_as_before() -> None:
    dt = datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert convert._ts(dt) == _reference(dt)


def test_none_stays_none() -> None:
    assert convert._ts(None) is None
