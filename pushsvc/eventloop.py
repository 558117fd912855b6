"""The event loop `pushsvc serve` runs on: uvloop (the default) or Python's asyncio.

uvloop (libuv) runs the same program with less CPU per loop iteration, which
is what a unary call costs most of after grpc's own work: `bench/register.py`
measured RegisterToken at about 12% less server CPU per call on uvloop, and the
fan-out the same on both (bench/README.md, issue 20). grpc.aio, libcurl's
socket and timer callbacks (`providers/transport.py`) and asyncpg use only the
loop's public API (readers, writers, timers, signal handlers), which both
provide. `event_loop = "asyncio"` is the way back if a platform lacks uvloop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

EventLoop = Literal["uvloop", "asyncio"]
_T = TypeVar("_T")


def run(main: Coroutine[Any, Any, _T], loop: EventLoop) -> _T:
    """Runs `main` to completion on a new loop of the given kind, as `asyncio.run` does."""
    if loop == "uvloop":
        # Imported here: only `serve` needs it, and the tests and tools run on asyncio.
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
