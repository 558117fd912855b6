"""The server the fuzz tests attack, in its own process so its RSS and log are its own.

    python -m tests.fuzz.server STATE_DIR [STORE_URL]

Starts the dev stack (emulator, app "demo", the embedded store unless
STORE_URL names another) on a free port,
prints the port on stdout, and serves until stdin closes or SIGTERM. The
dispatcher runs no workers: the fuzz targets the RPC surface, and fanning
random notifications out to every fuzzed token would only measure delivery.
Logs go to stderr, one line per record, so the test can read them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from pushsvc.config import DispatchSettings
from pushsvc.devstack import start_dev_stack


async def _serve(state_dir: Path, store_url: str) -> None:
    dispatch = DispatchSettings(workers=0, max_queue_depth=2000)
    stack = await start_dev_stack(state_dir=state_dir, port=0, store_url=store_url, dispatch=dispatch)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1() or stop.set())
    print(stack.app.port, flush=True)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        await stack.stop(0)


def main() -> None:
    """Entry point: `python -m tests.fuzz.server STATE_DIR [STORE_URL]`."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    store_url = sys.argv[2] if len(sys.argv) > 2 else "mongomock://localhost/fuzz"
    asyncio.run(_serve(Path(sys.argv[1]), store_url))


if __name__ == "__main__":
    main()
