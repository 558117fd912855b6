"""Store calls in flight, for any adapter: how long the oldest unanswered one has waited.

A store can stop answering without failing: FerretDB 1.24 hung for good on one
bulk write while it still answered pings, and a store call that never returns
raises nothing, so neither `Stores.on_failure` nor a ping notices it. The health
watcher (`pushsvc.bootstrap`) asks `StoreCalls.oldest_s()` instead, and counts a
call unanswered for longer than `store_stall_s` as the store being unreachable,
until a call is answered again (`StoreCalls.answered`): a store can answer
pings while every call to its data hangs.

`StoreCalls.watch` wraps a store of any adapter: each coroutine method is timed
from the call until it returns or raises (a call queued behind a hung one counts
as waiting too), and each page of an async-generator method (`scan_targets`) from
the request of the page until it arrives, not while the caller works on a page.
Only the Protocols' methods are used, so a new adapter is watched as it is.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from pushsvc import errors
from pushsvc.clock import Clock

_S = TypeVar("_S")
_T = TypeVar("_T")


class StoreCalls:
    """The store calls in flight, by start time on the injected clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._ids = itertools.count()
        self.answered = 0
        """How many calls the store has answered (returned, or raised anything but StoreUnavailable)."""
        # Insertion order is start order (the clock is monotonic), so the
        # first entry is the oldest call: O(1) to add, remove and ask.
        self._started: dict[int, float] = {}

    @property
    def in_flight(self) -> int:
        """How many store calls are waiting for an answer."""
        return len(self._started)

    def oldest_s(self) -> float:
        """Seconds the oldest call in flight has waited (0.0 when none is)."""
        for started in self._started.values():
            return self._clock.monotonic() - started
        return 0.0

    def watch(self, store: _S) -> _S:
        """`store` with every call timed (the same Protocol: only its methods are wrapped)."""
        return _Watched(store, self)  # type: ignore[return-value]  # a proxy with the same methods

    async def timed(self, call: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
        """Awaits `call(*args, **kwargs)` while it counts as in flight."""
        key = next(self._ids)
        self._started[key] = self._clock.monotonic()
        try:
            result = await call(*args, **kwargs)
        except errors.StoreUnavailable:
            raise
        except Exception:
            self.answered += 1  # with an error of its own (not found, duplicate key, ...), but it answered
            raise
        finally:
            del self._started[key]
        self.answered += 1
        return result

    async def timed_pages(self, pages: AsyncGenerator[_T, None]) -> AsyncGenerator[_T, None]:
        """Yields the pages of `pages`, each request for a page in flight until it arrives."""
        try:
            while True:
                try:
                    page = await self.timed(pages.__anext__)
                except StopAsyncIteration:
                    return
                yield page
        finally:
            await pages.aclose()


class _Watched:
    """A store whose coroutine and async-generator methods go through `StoreCalls`; the rest pass through."""

    def __init__(self, inner: Any, calls: StoreCalls) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        calls = self._calls
        if inspect.iscoroutinefunction(attr):

            @functools.wraps(attr)
            async def call(*args: Any, **kwargs: Any) -> Any:
                # The arguments go through as they are: no closure per store call.
                return await calls.timed(attr, *args, **kwargs)

            wrapped: Any = call
        elif inspect.isasyncgenfunction(attr):

            @functools.wraps(attr)
            def pages(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
                return calls.timed_pages(attr(*args, **kwargs))

            wrapped = pages
        else:
            return attr
        # Cached on the proxy: later calls find it without `__getattr__`.
        setattr(self, name, wrapped)
        return wrapped
