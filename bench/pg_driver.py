"""Which PostgreSQL driver the `postgresql://` adapter uses: asyncpg against psycopg 3, measured.

Both drivers run the statements the adapter's hot paths send, each through
its own async pool of `--pool` connections with `--concurrency` tasks:
- `upsert`: one token upsert per call (RegisterToken);
- `batch`: a 100-row receipt-like insert from arrays (`unnest`), one per call
  (a fan-out batch);
- `get`: a primary-key read (GetToken, lookups).
The ceiling, measured in the same run, is the server itself: pgbench runs
the same upsert with the same number of connections, so the gap to it is
what the Python side costs. CPU is this process's (user + system) per
operation; the server's CPU is outside it.

Usage:
    python bench/pg_driver.py --url postgresql://... [-n 5000] [--pool 8] [--concurrency 32] [--out results.json]
Without --url it starts a throw-away cluster with scripts/postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import run_context  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

SCHEMA = """
DROP TABLE IF EXISTS bench_tokens, bench_receipts;
CREATE TABLE bench_tokens (
    app_id text NOT NULL, platform text NOT NULL, token text NOT NULL, user_id text NOT NULL,
    created_at timestamptz NOT NULL, last_seen_at timestamptz NOT NULL,
    PRIMARY KEY (app_id, platform, token));
CREATE TABLE bench_receipts (
    notification_id text NOT NULL, token text NOT NULL, seq bigint NOT NULL, status text NOT NULL,
    PRIMARY KEY (notification_id, token));
"""
UPSERT = (
    "INSERT INTO bench_tokens VALUES ($1, 'fcm', $2, $3, now(), now()) "
    "ON CONFLICT (app_id, platform, token) DO UPDATE SET user_id = EXCLUDED.user_id, last_seen_at = EXCLUDED.last_seen_at "
    "RETURNING xmax = 0"
)
BATCH = (
    "INSERT INTO bench_receipts SELECT $1, t, s, 'delivered' FROM unnest($2::text[], $3::bigint[]) AS u(t, s) "
    "ON CONFLICT DO NOTHING RETURNING seq"
)
GET = "SELECT * FROM bench_tokens WHERE app_id = $1 AND platform = 'fcm' AND token = $2"


def _psycopg_sql(sql: str) -> str:
    return re.sub(r"\$(\d+)", "%s", sql)


async def _drive(n: int, concurrency: int, op: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    """Runs op(0..n-1) on `concurrency` tasks; returns (ops per second, CPU µs per op)."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await op(i)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return n / wall, cpu / n * 1e6


async def bench_asyncpg(url: str, n: int, pool_size: int, concurrency: int, tag: str) -> dict[str, Any]:
    import asyncpg

    pool = await asyncpg.create_pool(url, min_size=pool_size, max_size=pool_size)
    async with pool.acquire() as conn:
        await conn.execute(SCHEMA)
    out: dict[str, Any] = {}

    async def upsert(i: int) -> None:
        await pool.fetchval(UPSERT, "app", f"{tag}-{i}", "u")

    async def batch(i: int) -> None:
        await pool.fetch(BATCH, f"n{tag}-{i}", [f"t{j}" for j in range(100)], list(range(100)))

    async def get(i: int) -> None:
        await pool.fetchrow(GET, "app", f"{tag}-{i}")

    out["upsert"] = await _drive(n, concurrency, upsert)
    out["batch"] = await _drive(max(1, n // 10), concurrency, batch)
    out["get"] = await _drive(n, concurrency, get)
    await pool.close()
    return out


async def bench_psycopg(url: str, n: int, pool_size: int, concurrency: int, tag: str) -> dict[str, Any]:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(url, min_size=pool_size, max_size=pool_size, open=False, kwargs={"autocommit": True})
    await pool.open(wait=True)
    async with pool.connection() as conn:
        await conn.execute(SCHEMA)
    upsert_sql, batch_sql, get_sql = _psycopg_sql(UPSERT), _psycopg_sql(BATCH), _psycopg_sql(GET)
    out: dict[str, Any] = {}

    async def upsert(i: int) -> None:
        async with pool.connection() as conn:
            await (await conn.execute(upsert_sql, ("app", f"{tag}-{i}", "u"), prepare=True)).fetchone()

    async def batch(i: int) -> None:
        async with pool.connection() as conn:
            cur = await conn.execute(batch_sql, (f"n{tag}-{i}", [f"t{j}" for j in range(100)], list(range(100))), prepare=True)
            await cur.fetchall()

    async def get(i: int) -> None:
        async with pool.connection() as conn:
            await (await conn.execute(get_sql, ("app", f"{tag}-{i}"), prepare=True)).fetchone()

    out["upsert"] = await _drive(n, concurrency, upsert)
    out["batch"] = await _drive(max(1, n // 10), concurrency, batch)
    out["get"] = await _drive(n, concurrency, get)
    await pool.close()
    return out


def pgbench_upsert(url: str, n: int, clients: int) -> float | None:
    """The server's own rate for the same upsert, with pgbench as the client (None without pgbench)."""
    pgbench = shutil.which("pgbench") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)
    if pgbench is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(
            "\\set k random(1, 1000000000)\n"
            + UPSERT.replace("$1", "'app'").replace("$2", "'pgb-' || :k").replace("$3", "'u'")
            + ";\n"
        )
        script = f.name
    try:
        per_client = max(1, n // clients)
        out = subprocess.run(
            [str(pgbench), "-n", "-M", "prepared", "-c", str(clients), "-j", "1", "-t", str(per_client), "-f", script, url],
            capture_output=True, text=True, timeout=300, check=True,
        ).stdout
    finally:
        os.unlink(script)
    m = re.search(r"tps = ([\d.]+)", out)
    return float(m.group(1)) if m else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="")
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--pool", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per driver")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    state = None
    url = args.url
    if not url:
        state = tempfile.mkdtemp(prefix="pg-bench-")
        url = subprocess.run([str(ROOT / "scripts/postgres"), "start", state], capture_output=True, text=True, check=True).stdout.split()[-1]
    try:
        ctx = run_context(packages=("asyncpg", "psycopg", "psycopg-pool"))
        results: dict[str, list[dict[str, Any]]] = {"asyncpg": [], "psycopg": []}
        for r in range(args.rounds):
            results["asyncpg"].append(asyncio.run(bench_asyncpg(url, args.n, args.pool, args.concurrency, f"a{r}")))
            results["psycopg"].append(asyncio.run(bench_psycopg(url, args.n, args.pool, args.concurrency, f"p{r}")))
        ceiling = pgbench_upsert(url, args.n, args.pool)
    finally:
        if state:
            subprocess.run([str(ROOT / "scripts/postgres"), "stop", state], check=False)
    print(ctx.header)
    print(f"n={args.n} pool={args.pool} concurrency={args.concurrency} rounds={args.rounds}; min–max over rounds")
    print(f"{'driver':10} {'op':7} {'ops/s':>17} {'CPU µs/op':>15}")
    for driver, rounds in results.items():
        for op in ("upsert", "batch", "get"):
            rates = [x[op][0] for x in rounds]
            cpus = [x[op][1] for x in rounds]
            print(f"{driver:10} {op:7} {min(rates):8,.0f}–{max(rates):<8,.0f} {min(cpus):7.0f}–{max(cpus):<7.0f}")
    print(f"ceiling: pgbench, same upsert, {args.pool} connections: " + (f"{ceiling:,.0f}/s" if ceiling else "pgbench not found"))
    record = {"context": ctx.__dict__, "args": vars(args) | {"url": "(throw-away)" if state else "(given)"}, "results": results, "pgbench_upsert_per_s": ceiling}
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
