"""Express lane: Send-to-receipt time of a one-token high-priority Send, idle and during a big fan-out.

pushsvc (memory store, in-process emulator with `--latency-s` per request)
runs as `pushsvc dev` does; a client sends through the real gRPC server. The
run takes `--tries` one-token high-priority Sends on the idle server (the
ceiling: what the lane can do at best), then starts a Send to `-n`
registered tokens and takes `--tries` more while that fan-out runs, each
timed from Send to the end of its receipt stream. It prints p50/p99/max of
both and whether the fan-out was still running at the last try.

Usage:
    python -m bench.express [-n 100000] [--tries 20] [--latency-s 0.02] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a file (python bench/express.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from bench.machine import run_context  # noqa: E402
from pushsvc import models  # noqa: E402
from pushsvc.config import DispatchSettings  # noqa: E402
from pushsvc.devstack import start_dev_stack  # noqa: E402
from pushsvc.v1 import push_pb2 as pb  # noqa: E402
from pushsvc.v1 import push_pb2_grpc  # noqa: E402

APP = "demo"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50_s": _percentile(values, 0.50), "p99_s": _percentile(values, 0.99), "max_s": max(values)}


async def _one(stub: push_pb2_grpc.PushServiceStub, i: int) -> float:
    started = time.monotonic()
    sent = await stub.Send(
        pb.SendRequest(
            app_id=APP,
            target=pb.Target(devices=pb.DeviceList(devices=[pb.Device(token=f"login-{i}", platform=pb.PLATFORM_FCM)])),
            message=pb.Message(title="code", body=f"{i:06d}", priority=pb.PRIORITY_HIGH),
        )
    )
    stream = stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=sent.notification_id))
    async for _ in stream:
        pass
    return time.monotonic() - started


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    dispatch = DispatchSettings(batch_size=args.batch, partition_size=args.partition_size, poll_interval_s=0.2)
    with tempfile.TemporaryDirectory() as tmp:
        dev = await start_dev_stack(state_dir=Path(tmp), port=0, store_url="memory://", dispatch=dispatch)
        try:
            regs = [models.TokenRegistration(app_id=APP, token=f"bulk-{i}", platform=models.Platform.FCM)
                    for i in range(args.tokens)]
            for lo in range(0, len(regs), 5000):
                await dev.app.stores.tokens.insert_new(regs[lo : lo + 5000], dev.app.clock.now())
            dev.emulator.faults.latency_s = args.latency_s
            async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.app.port}") as channel:
                stub = push_pb2_grpc.PushServiceStub(channel)
                idle = [await _one(stub, i) for i in range(args.tries)]
                bulk = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="sale")))
                await asyncio.sleep(args.settle_s)
                busy = []
                for i in range(args.tries):
                    busy.append(await _one(stub, args.tries + i))
                    await asyncio.sleep(args.gap_s)
                during = await stub.GetNotification(
                    pb.GetNotificationRequest(app_id=APP, notification_id=bulk.notification_id)
                )
                still_running = during.notification.state != pb.NOTIFICATION_STATE_COMPLETED
                pending_at_last = during.notification.pending
                async for _ in stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=bulk.notification_id)):
                    pass
                final = await stub.GetNotification(pb.GetNotificationRequest(app_id=APP, notification_id=bulk.notification_id))
        finally:
            dev.emulator.faults.latency_s = 0.0
            await dev.stop(0)
    return {
        "idle": _summary(idle),
        "during_fan_out": _summary(busy),
        "idle_s": idle,
        "during_fan_out_s": busy,
        "fan_out_running_at_last_try": still_running,
        "fan_out_pending_at_last_try": pending_at_last,
        "fan_out_delivered": final.notification.delivered,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tokens", type=int, default=100_000)
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--latency-s", type=float, default=0.02, help="emulator latency per request")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--partition-size", type=int, default=5000)
    parser.add_argument("--settle-s", type=float, default=0.5, help="wait after the fan-out's Send before the tries")
    parser.add_argument("--gap-s", type=float, default=0.1, help="pause between tries")
    parser.add_argument("--out", type=Path, default=Path("bench/results/express.json"))
    args = parser.parse_args()
    context = run_context(packages=("grpcio",))
    result = asyncio.run(measure(args))
    print(f"Express lane: one-token high-priority Send to its receipt, {args.tries} tries idle and during a "
          f"{args.tokens:,}-token fan-out (memory store, in-process emulator, {args.latency_s} s per request)")
    print(context.header)
    print(f"{'':24} {'p50':>8} {'p99':>8} {'max':>8}")
    for name, label in (("idle", "idle (ceiling)"), ("during_fan_out", "during the fan-out")):
        row = result[name]
        print(f"{label:24} {row['p50_s']:>7.3f}s {row['p99_s']:>7.3f}s {row['max_s']:>7.3f}s")
    print(f"fan-out still running at the last try: {result['fan_out_running_at_last_try']} "
          f"({result['fan_out_pending_at_last_try']:,} pending); delivered in the end: {result['fan_out_delivered']:,}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"context": dataclasses.asdict(context), "args": {k: str(v) for k, v in vars(args).items()},
                                    "result": result, "load_average_after": os.getloadavg()}, indent=2))
    print(f"results: {args.out}")
    return 0 if result["fan_out_delivered"] == args.tokens else 1


if __name__ == "__main__":
    sys.exit(main())
