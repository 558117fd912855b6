"""serve's event loop choice (pushsvc.eventloop)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from pushsvc import eventloop


async def _loop_type() -> type:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


@pytest.mark.parametrize(("kind", "uv"), [("uvloop", True), ("asyncio", False)])
def test_runs_the_coroutine_on_the_chosen_loop(kind: eventloop.EventLoop, uv: bool) -> None:
    assert issubclass(eventloop.run(_loop_type(), kind), uvloop.Loop) is uv


def test_serve_defaults_to_uvloop() -> None:
    from pushsvc.config import Settings

    assert Settings().event_loop == "uvloop"
