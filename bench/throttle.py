"""Throttled fan-out in real time: two `pushsvc serve` replicas on one PostgreSQL hold one rate together.

The run starts a throw-away PostgreSQL cluster (bench/pgserver.py), the static
nginx HTTP/2 endpoint (bench/nginx.py) and two `pushsvc serve` processes
(bench/postgres.py's `Replica`) on that store, registers `-n` tokens (half
APNs, half FCM) and sends to all of them twice from the first replica:

1. unthrottled: the ceiling, what the two replicas deliver at most on this
   machine in the same run (a rate above it cannot be held);
2. with `max_per_second = --rate`.

For each, the receipts are read back (StreamReceipts) and their timestamps
(the gateway's clock when the provider answered) counted in every window of
`--window-s` (default 10 s), sliding by a tenth of it, from the first
receipt to the last. The goal (issue 21): every window of the throttled
send holds rate x window within 10%.

Usage:
    python -m bench.throttle [-n 20000] [--rate 1000] [--window-s 10] [--partition-size 2500] [--out results.json]
Writes bench/results/throttle-<time>.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a file (python bench/throttle.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from bench.machine import run_context  # noqa: E402
from bench.nginx import NginxEndpoint  # noqa: E402
from bench.pgserver import PostgresServer  # noqa: E402
from bench.postgres import APP, RESULTS, Replica, _seed  # noqa: E402
from pushsvc.emulator import make_demo_credentials  # noqa: E402
from pushsvc.v1 import push_pb2 as pb  # noqa: E402
from pushsvc.v1 import push_pb2_grpc  # noqa: E402

BOUND = 0.10
"""The goal: every window within 10% of rate x window."""


def windows(offsets_s: list[float], width_s: float, step_s: float) -> list[int]:
    """Receipts in every window [t, t + width) for t = 0, step, 2 step, ... while the window ends by the last receipt."""
    ordered = sorted(offsets_s)
    if not ordered:
        return []
    counts = []
    t = 0.0
    while t + width_s <= ordered[-1] + 1e-9:
        counts.append(bisect.bisect_left(ordered, t + width_s) - bisect.bisect_left(ordered, t))
        t += step_s
    return counts


async def _send_and_time(stub: push_pb2_grpc.PushServiceStub, rate: int, n: int) -> dict[str, Any]:
    """One Send to every token; waits for its receipts; when each was answered, from the first."""
    started = time.perf_counter()
    sent = await stub.Send(
        pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="bench"), max_per_second=rate),
        timeout=120,
    )
    stamps: list[float] = []
    request = pb.StreamReceiptsRequest(app_id=APP, notification_id=sent.notification_id)
    async for reply in stub.StreamReceipts(request, timeout=max(600, 3 * n / max(rate, 1))):
        stamps.append(reply.receipt.at.ToNanoseconds() / 1e9)
    elapsed = time.perf_counter() - started
    view = (await stub.GetNotification(pb.GetNotificationRequest(app_id=APP, notification_id=sent.notification_id))).notification
    first = min(stamps)
    offsets = [s - first for s in stamps]
    span = max(offsets)
    return {
        "notification_id": sent.notification_id,
        "max_per_second": view.max_per_second,
        "delivered": view.delivered,
        "receipts": len(stamps),
        "send_to_last_receipt_s": elapsed,
        "first_to_last_receipt_s": span,
        "rate": (len(stamps) - 1) / span if span else float("inf"),
        "offsets_s": offsets,
    }


async def measure(args: argparse.Namespace, pg: PostgresServer, nginx: NginxEndpoint, workdir: Path) -> dict[str, Any]:
    store_url = pg.store_url() + "&pool_size=10"
    await _seed(store_url, args.tokens)
    creds, _, _ = make_demo_credentials(workdir / "creds", token_uri=nginx.token_uri, ca_pem=nginx.ca_pem)
    replicas = [Replica(f"r{i}", store_url, creds, nginx, workdir, args.partition_size) for i in range(2)]
    try:
        for r in replicas:
            r.start()
        for r in replicas:
            await r.serving()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{replicas[0].port}") as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            ceiling = await _send_and_time(stub, 0, args.tokens)
            throttled = await _send_and_time(stub, args.rate, args.tokens)
    finally:
        for r in replicas:
            r.stop()
    step = args.window_s / 10
    counts = windows(throttled["offsets_s"], args.window_s, step)
    want = args.rate * args.window_s
    worst = max((abs(c - want) / want for c in counts), default=float("nan"))
    return {
        "ceiling": {k: v for k, v in ceiling.items() if k != "offsets_s"},
        "throttled": {k: v for k, v in throttled.items() if k != "offsets_s"},
        "window_s": args.window_s,
        "window_step_s": step,
        "window_counts": counts,
        "window_expected": want,
        "window_min": min(counts, default=0),
        "window_max": max(counts, default=0),
        "worst_deviation": worst,
        "within_bound": bool(counts) and worst <= BOUND,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tokens", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1000, help="max_per_second of the throttled send")
    parser.add_argument("--window-s", type=float, default=10.0, help="width of the measured windows")
    parser.add_argument("--partition-size", type=int, default=2500, help="targets per partition (both replicas' workers busy)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with PostgresServer() as pg, NginxEndpoint() as nginx, tempfile.TemporaryDirectory() as tmp:
        context = run_context(packages=("asyncpg", "grpcio"))
        result = asyncio.run(measure(args, pg, nginx, Path(tmp)))
    print(f"Throttled fan-out: {args.tokens:,} tokens (50/50 APNs/FCM), two `pushsvc serve` replicas (2 workers each) "
          f"on one PostgreSQL, static nginx HTTP/2 endpoint, all on this machine")
    print(context.header)
    c, t = result["ceiling"], result["throttled"]
    print(f"unthrottled (ceiling): {c['rate']:8,.0f}/s  ({c['receipts']:,} receipts over {c['first_to_last_receipt_s']:.1f} s)")
    print(f"max_per_second={args.rate}: {t['rate']:8,.0f}/s  ({t['receipts']:,} receipts over {t['first_to_last_receipt_s']:.1f} s)")
    print(f"{len(result['window_counts'])} windows of {args.window_s:g} s (every {result['window_step_s']:g} s): "
          f"min {result['window_min']:,}, max {result['window_max']:,}, expected {result['window_expected']:,.0f}; "
          f"worst {100 * result['worst_deviation']:.1f}% (goal <= {100 * BOUND:.0f}%): "
          f"{'met' if result['within_bound'] else 'MISSED'}")
    out = args.out or RESULTS / f"throttle-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-pg-{args.tokens}-{args.rate}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": context.__dict__, "args": {k: str(v) for k, v in vars(args).items()},
                               "result": result, "load_average_after": os.getloadavg()}, indent=2, default=str))
    print(f"results: {out}")
    ok = c["receipts"] == t["receipts"] == args.tokens and t["max_per_second"] == args.rate
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
