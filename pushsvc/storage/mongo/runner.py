"""Runs blocking pymongo calls off the event loop, maps driver errors, and trips a breaker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import pymongo.errors

from pushsvc import errors
from pushsvc.clock import Clock

_T = TypeVar("_T")


class MongoRunner:
    """Runs blocking pymongo calls on an executor; fails fast for a moment after the store failed."""

    def __init__(self, *, threads: int, clock: Clock, retry_after_failure_s: float = 1.0) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pushsvc-store")
        self._serial: asyncio.Lock | None = None
        self._retry_after_failure_s = retry_after_failure_s
        self._clock = clock
        self._down_until = -math.inf
        self._on_failure: list[Callable[[], None]] = []

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Calls `callback` (on the event loop) each time a store call finds the store unreachable."""
        self._on_failure.append(callback)

    def serialize(self) -> None:
        """Runs one call at a time from now on (for servers whose updates are not atomic)."""
        self._serial = asyncio.Lock()

    async def __call__(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Runs `fn` on the executor; fails fast while the store is known to be down."""
        return await self._guarded(False, fn, *args, **kwargs)

    async def probe(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Like a call, but always reaches the server: the health check uses it to notice recovery."""
        return await self._guarded(True, fn, *args, **kwargs)

    async def _guarded(self, probe: bool, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        # A circuit breaker: after a failure, calls fail at once for a moment
        # instead of each waiting out the server-selection timeout (and, when
        # serialised, queueing behind each other past the caller's deadline).
        self._check_breaker(probe)
        if self._serial is None:
            return await self._tracked(fn, *args, **kwargs)
        async with self._serial:
            self._check_breaker(probe)
            return await self._tracked(fn, *args, **kwargs)

    def _check_breaker(self, probe: bool) -> None:
        if not probe and self._clock.monotonic() < self._down_until:
            raise errors.StoreUnavailable("store unreachable (recent failure; retrying shortly)")

    async def _tracked(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            result = await self._call(fn, *args, **kwargs)
        except errors.StoreUnavailable:
            self._down_until = self._clock.monotonic() + self._retry_after_failure_s
            for callback in self._on_failure:
                callback()
            raise
        self._down_until = -math.inf
        return result

    async def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        except pymongo.errors.DuplicateKeyError:
            raise
        except (pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError) as exc:
            raise errors.StoreUnavailable(f"store unreachable: {type(exc).__name__}") from exc
        except pymongo.errors.PyMongoError as exc:
            if isinstance(exc, pymongo.errors.BulkWriteError):
                raise
            if getattr(exc, "timeout", False):
                raise errors.StoreUnavailable(f"store timed out: {type(exc).__name__}") from exc
            raise

    def close(self) -> None:
        """Stops the executor: queued calls are dropped, and a call stuck on the server is not waited for.

        The drain bounds every store call it makes; waiting here for one that
        the server never answers would hold the exit for the socket timeout.
        """
        self._executor.shutdown(wait=False, cancel_futures=True)
