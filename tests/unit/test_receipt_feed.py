"""The receipt feed on the memory store with a manual clock: replay, resume by cursor, gaps, the live feed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pushsvc import errors, models
from pushsvc.receipts import ReceiptFeed, parse_cursor
from pushsvc.storage import LogEntry
from tests.unit.conftest import APP, World

ALL = models.Target(kind="all", all=True)


async def sent_and_delivered(world: World, n: int) -> str:
    await world.register(n)
    sent = await world.service.send(models.SendCommand(APP, ALL, models.Message(title="x")))
    await world.drain()
    return sent.notification_id


async def collect(it: Any, limit: int | None = None) -> list[models.Receipt]:
    out = []
    async for r in it:
        out.append(r)
        if limit is not None and len(out) == limit:
            break
    return out


async def test_a_finished_notification_replays_then_ends_and_resumes_by_cursor(world: World) -> None:
    nid = await sent_and_delivered(world, 25)
    everything = await asyncio.wait_for(collect(world.feed.follow_notification(APP, nid, 0)), 5)
    assert len(everything) == 25 and len({r.token for r in everything}) == 25
    _, nseq = parse_cursor(everything[9].cursor)
    rest = await asyncio.wait_for(collect(world.feed.follow_notification(APP, nid, nseq)), 5)
    assert [r.token for r in rest] == [r.token for r in everything[10:]]


async def test_a_running_notification_is_followed_until_it_finishes(world: World) -> None:
    await world.register(30)
    sent = await world.service.send(models.SendCommand(APP, ALL, models.Message(title="x")))
    reader = asyncio.create_task(collect(world.feed.follow_notification(APP, sent.notification_id, 0)))
    await asyncio.sleep(0.05)
    assert not reader.done()
    await world.drain()
    assert len(await asyncio.wait_for(reader, 5)) == 30


class _Hiding:
    """A receipt store whose reads miss one number, as when a writer died between allocating and writing."""

    def __init__(self, inner: Any, hidden_nseq: int) -> None:
        self._inner = inner
        self._hidden = hidden_nseq

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read_notification(self, app_id: str, nid: str, after: int, limit: int) -> list[LogEntry]:
        return [e for e in await self._inner.read_notification(app_id, nid, after, limit) if e.nseq != self._hidden]


async def test_a_gap_is_waited_out_for_the_grace_period_of_the_injected_clock(world: World) -> None:
    nid = await sent_and_delivered(world, 5)
    feed = ReceiptFeed(_Hiding(world.stores.receipts, 3), world.stores.notifications, world.signal,  # type: ignore[arg-type]
                       poll_interval_s=0.01, gap_grace_s=5.0, clock=world.clock)
    reader = asyncio.create_task(collect(feed.follow_notification(APP, nid, 0)))
    await asyncio.sleep(0.1)
    assert not reader.done(), "the reader waits for number 3"
    world.clock.advance(5)
    got = await asyncio.wait_for(reader, 5)
    assert len(got) == 4 and [parse_cursor(r.cursor)[1] for r in got] == [1, 2, 4, 5]


async def test_the_app_feed_starts_now_and_sees_later_receipts(world: World) -> None:
    await sent_and_delivered(world, 3)
    live = world.feed.follow_app(APP, None)
    first = asyncio.create_task(collect(live, limit=2))
    await asyncio.sleep(0.05)
    sent = await world.service.send(models.SendCommand(APP, ALL, models.Message(title="later")))
    await world.drain()
    got = await asyncio.wait_for(first, 5)
    assert [r.notification_id for r in got] == [sent.notification_id] * 2
    replay = await asyncio.wait_for(collect(world.feed.follow_app(APP, 0), limit=6), 5)
    assert len(replay) == 6


async def test_an_unknown_notification_is_not_found(world: World) -> None:
    with pytest.raises(errors.NotFound):
        await collect(world.feed.follow_notification(APP, "nope", 0))


async def test_a_malformed_cursor_is_an_invalid_argument_on_after() -> None:
    with pytest.raises(errors.InvalidArgument) as bad:
        parse_cursor("12")
    assert [v.field for v in bad.value.violations] == ["after"]

