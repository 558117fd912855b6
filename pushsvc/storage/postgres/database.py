"""The connection pool: asyncpg behind one small surface, with its errors mapped and a circuit breaker.

asyncpg was chosen over psycopg 3 by `bench/pg_driver.py` (less client CPU
per statement, most of all for the array inserts of a fan-out batch).

Every store call goes through `Database.run`: it takes a pooled connection,
runs the callable in a transaction when asked, maps a lost or unreachable
server to `errors.StoreUnavailable`, retries the transient conflicts that
PostgreSQL resolves by aborting one side (deadlock, serialization failure,
a racing insert of the same unique key), and trips a breaker so that, while
the server is down, calls fail at once instead of each waiting out the
connect timeout.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from pushsvc import errors
from pushsvc.clock import Clock
from pushsvc.storage.postgres import schema

_T = TypeVar("_T")

DEFAULT_SCHEMA = "pushsvc"
DEFAULT_POOL_SIZE = 10
ACQUIRE_TIMEOUT_S = 30.0
LONG_STATEMENT_S = 600.0
"""For the statements that may legitimately outlast the store timeout: migrations, counts of a whole app, the sweep."""

# Conflicts PostgreSQL settles by aborting one transaction; the loser retries.
_RETRYABLE = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    # A statement prepared before a migration changed its result's shape.
    asyncpg.exceptions.InvalidCachedStatementError,
)
_ATTEMPTS = 5

# The server or the way to it is gone: the caller sees UNAVAILABLE.
_UNREACHABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.QueryCanceledError,
)


def parse_url(url: str) -> tuple[str, str, int]:
    """Splits pushsvc's own options off a store URL: (URL for asyncpg, schema, pool size).

    `?schema=NAME` (default "pushsvc") is the schema pushsvc's tables live in,
    created when missing; `?pool_size=N` (default 10) is the connections per
    process. Other query parameters (sslmode, ...) go to the driver.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in ("schema", "pool_size")}
    rest = [(k, v) for k, v in query if k not in ("schema", "pool_size")]
    schema = ours.get("schema") or DEFAULT_SCHEMA
    try:
        pool_size = int(ours.get("pool_size") or DEFAULT_POOL_SIZE)
    except ValueError:
        raise ValueError(f"pool_size in the store URL must be a whole number, not {ours['pool_size']!r}") from None
    if pool_size < 1:
        raise ValueError("pool_size in the store URL must be at least 1")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema, pool_size


class Database:
    """A lazily opened asyncpg pool on one schema."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock,
        timeout_ms: int,
        retry_after_failure_s: float = 1.0,
        query_logger: Callable[[Any], None] | None = None,
    ) -> None:
        self.dsn, self.schema, self.pool_size = parse_url(url)
        self._query_logger = query_logger
        """Sees every statement sent (asyncpg's LoggedQuery): the index-coverage test records them."""
        self._timeout_s = timeout_ms / 1000
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._down_until = -math.inf
        self._retry_after_failure_s = retry_after_failure_s
        self._on_failure: list[Callable[[], None]] = []

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Calls `callback` each time a store call finds the store unreachable."""
        self._on_failure.append(callback)

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        # json and jsonb values come and go as Python objects.
        for type_name in ("json", "jsonb"):
            await conn.set_type_codec(type_name, encoder=_dumps, decoder=json.loads, schema="pg_catalog")
        if self._query_logger is not None:
            conn.add_query_logger(self._query_logger)

    async def pool(self) -> asyncpg.Pool:
        """The pool, opened on first use."""
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self._timeout_s,
                    # A statement that outlasts the store timeout means a stalled
                    # store: it fails as unreachable, and health says so. The few
                    # statements that may legitimately run long pass their own.
                    command_timeout=self._timeout_s,
                    init=self._init_connection,
                    # pushsvc leaves no session state behind (advisory locks are
                    # transaction-scoped, SET is LOCAL, no LISTEN, no open cursor),
                    # so a released connection needs no reset: the default one is
                    # a round trip and four statements for every store call.
                    reset=_no_reset,
                    server_settings={
                        "search_path": self.schema,
                        "application_name": "pushsvc",
                        # Plans made for the statement's real arguments. A generic
                        # plan guesses 100 rows for every unnest() of an array
                        # argument and then joins by scanning the table: measured,
                        # a registration's server CPU grew from 0.4 to 1.3 ms as
                        # its table grew from 4k to 8k rows.
                        "plan_cache_mode": "force_custom_plan",
                    },
                )
        return self._pool

    async def run(
        self,
        fn: Callable[[asyncpg.Connection], Awaitable[_T]],
        *,
        transaction: bool = False,
        probe: bool = False,
        retry_unique: bool = False,
    ) -> _T:
        """Runs `fn(connection)`, in one transaction when asked; see the module docstring.

        With `retry_unique`, a unique violation is a lost race to be retried
        (the next attempt sees the winner's row), not an answer.
        """
        if not probe and self._clock.monotonic() < self._down_until:
            raise errors.StoreUnavailable("store unreachable (recent failure; retrying shortly)")
        retryable = (*_RETRYABLE, asyncpg.exceptions.UniqueViolationError) if retry_unique else _RETRYABLE
        try:
            result = await self._attempts(fn, transaction, retryable)
        except _UNREACHABLE as exc:
            self._down_until = self._clock.monotonic() + self._retry_after_failure_s
            for callback in self._on_failure:
                callback()
            raise errors.StoreUnavailable(f"store unreachable: {type(exc).__name__}") from exc
        self._down_until = -math.inf
        return result

    async def _attempts(
        self, fn: Callable[[asyncpg.Connection], Awaitable[_T]], transaction: bool, retryable: tuple[type[BaseException], ...]
    ) -> _T:
        pool = await self.pool()
        for attempt in range(_ATTEMPTS):
            try:
                # Waiting for a free connection is load, not an outage: the
                # caller's deadline bounds it; only connecting is held to the timeout.
                async with pool.acquire(timeout=max(self._timeout_s, ACQUIRE_TIMEOUT_S)) as conn:
                    if not transaction:
                        return await fn(conn)
                    async with conn.transaction():
                        return await fn(conn)
            except retryable:
                if attempt == _ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def migrate(self, target: int | None = None) -> list[int]:
        """Applies pending migrations (see `schema.migrate`)."""
        async def apply(conn: asyncpg.Connection) -> list[int]:
            return await schema.migrate(conn, self.schema, target=schema.LATEST if target is None else target)

        return await self.run(apply)

    async def close(self) -> None:
        """Closes every connection."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=self._timeout_s)
            except (TimeoutError, *_UNREACHABLE):
                pool.terminate()

    def terminate(self) -> None:
        """Drops every connection at once (no event loop needed)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
