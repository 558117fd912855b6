"""Delivery at local time: a local-time Send to `-n` tokens across 30 zones, walked with a manual clock.

pushsvc (memory store, in-process emulator) runs as `pushsvc dev` does; a
client sends through the real gRPC server. The tokens are spread over 30 IANA
zones (and a share with none, which take the fallback zone). The clock is a
manual one: the run moves it to one second before each due group's instant,
checks that nothing of that group (or a later one) has reached the emulator,
then to the instant itself, and waits until the whole group has arrived before
moving on. So every token is delivered while the clock shows its own local
time (within one batch interval of it), and `early` counts any that came
sooner. Halfway, the server is stopped in the middle of a group and a new one
is started on the same store; `repeats` counts tokens the emulator got twice.

The ceiling, measured in the same run on the same tokens: one plain Send to
all of them (no local time), timed from Send to its last receipt, against the
sum of the groups' delivery times.

Usage:
    python -m bench.localtime [-n 100000] [--batch 500] [--partition-size 5000] [--out results.json]
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
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Run as a file (python bench/localtime.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from bench.machine import run_context  # noqa: E402
from pushsvc import models  # noqa: E402
from pushsvc.bootstrap import Application, build_application  # noqa: E402
from pushsvc.clock import ManualClock  # noqa: E402
from pushsvc.config import DispatchSettings, Settings  # noqa: E402
from pushsvc.devstack import DEMO_APP_ID, demo_app_settings, start_dev_stack  # noqa: E402
from pushsvc.emulator import EmulatorConfig  # noqa: E402
from pushsvc.storage import open_stores  # noqa: E402
from pushsvc.v1 import push_pb2 as pb  # noqa: E402
from pushsvc.v1 import push_pb2_grpc  # noqa: E402

APP = "demo"
ZONES = (
    "Pacific/Kiritimati", "Pacific/Auckland", "Australia/Sydney", "Australia/Adelaide", "Asia/Tokyo", "Asia/Shanghai",
    "Asia/Bangkok", "Asia/Kathmandu", "Asia/Kolkata", "Asia/Karachi", "Asia/Dubai", "Asia/Tehran", "Europe/Moscow",
    "Africa/Nairobi", "Europe/Athens", "Europe/Paris", "Europe/London", "Atlantic/Azores", "Atlantic/Cape_Verde",
    "America/Noronha", "America/Sao_Paulo", "America/St_Johns", "America/Halifax", "America/New_York",
    "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
    "Pacific/Pago_Pago",
)
START = datetime(2026, 6, 1, 12, 0, 7, tzinfo=UTC)
FALLBACK = "Europe/Paris"


def _due(zone: str, hour: int, minute: int) -> datetime:
    """The NEXT_DAY rule, worked out from zoneinfo alone (not from pushsvc's planning)."""
    local = START.astimezone(ZoneInfo(zone))
    wall = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if wall < local:
        wall = (local + timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return wall.astimezone(UTC)


class _Seen:
    """The emulator's inbox read incrementally: which tokens arrived, how often."""

    def __init__(self, inbox: Any) -> None:
        self._inbox = inbox
        self._cursor = 0
        self.counts: Counter[str] = Counter()

    def update(self) -> list[str]:
        entries = self._inbox.entries()
        new = [e.token for e in entries[self._cursor :]]
        self._cursor = len(entries)
        self.counts.update(new)
        return new


async def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not arrive in {timeout_s} s")
        await asyncio.sleep(0.02)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    clock = ManualClock(start=START)
    dispatch = DispatchSettings(batch_size=args.batch, partition_size=args.partition_size, poll_interval_s=0.05,
                                lease_s=60.0)
    stores = open_stores("memory://localtime-bench", clock=clock)
    with tempfile.TemporaryDirectory() as tmp:
        # The inbox keeps every delivery of the run, repeats included (it drops the oldest beyond its limit).
        dev = await start_dev_stack(state_dir=Path(tmp), port=0, store_url="memory://localtime-bench", dispatch=dispatch,
                                    stores=stores, clock=clock,
                                    emulator_config=EmulatorConfig(inbox_limit=args.tokens + 10 * args.batch + 1000))
        app: Application = dev.app
        try:
            expected: dict[str, datetime] = {}
            regs = []
            for i in range(args.tokens):
                token = f"lt-{i:07d}"
                # One token in twenty has no zone: it takes the fallback's.
                zone = "" if i % 20 == 19 else ZONES[i % len(ZONES)]
                regs.append(models.TokenRegistration(APP, token, models.Platform.FCM, timezone=zone))
                expected[token] = _due(zone or FALLBACK, 9, 30)
            for lo in range(0, len(regs), 5000):
                await stores.tokens.insert_new(regs[lo : lo + 5000], clock.now())
            groups = sorted(set(expected.values()))
            by_due: dict[datetime, set[str]] = {}
            for token, due in expected.items():
                by_due.setdefault(due, set()).add(token)
            seen = _Seen(dev.emulator.inbox)
            early = 0
            group_rows = []
            restarted_at_group = -1
            restart: dict[str, int] = {}
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = push_pb2_grpc.PushServiceStub(channel)
                t0 = time.monotonic()
                sent = await stub.Send(pb.SendRequest(
                    app_id=APP, target=pb.Target(all=True), message=pb.Message(title="Good morning"),
                    local_time=pb.LocalTime(hour=9, minute=30, fallback_timezone=FALLBACK),
                ))
                send_s = time.monotonic() - t0
            delivered: set[str] = set()
            for step, due in enumerate(groups):
                clock.advance((due - clock.now()).total_seconds() - 1)
                app.dispatcher.wake()
                await asyncio.sleep(0.1)
                for token in seen.update():
                    if expected[token] > clock.now():
                        early += 1
                    delivered.add(token)
                clock.advance(1)
                app.dispatcher.wake()
                group = by_due[due]
                started = time.monotonic()
                if step == len(groups) // 2:
                    # Stop the server once part of this group has arrived (slowed down, so that part of it is
                    # still to go), and start a new one on the same store.
                    dev.emulator.faults.latency_s = 0.02

                    def partly(group: set[str] = group) -> bool:
                        delivered.update(seen.update())
                        return len(group & delivered) >= len(group) // 4

                    await _wait(partly, 300, f"a quarter of group {step}")
                    await app.stop(0)
                    delivered.update(seen.update())
                    restart = {"group_tokens": len(group), "arrived_before_stop": len(group & delivered)}
                    dev.emulator.faults.latency_s = 0.0
                    settings = Settings(store_url="memory://localtime-bench", host="127.0.0.1", port=0, dispatch=dispatch,
                                        apps={DEMO_APP_ID: demo_app_settings(DEMO_APP_ID, dev.emulator, dev.credentials)})
                    app = build_application(settings, clock=clock, stores=stores)
                    await app.start()
                    app.dispatcher.wake()
                    restarted_at_group = step

                def arrived(group: set[str] = group) -> bool:
                    delivered.update(seen.update())
                    return group <= delivered

                await _wait(arrived, 600, f"group {step} ({len(group & delivered)} of {len(group)} so far)")
                # The inbox can show a group complete while its last batches' receipts are being written: the
                # clock moves on only once no partition is runnable or running (a real clock never jumps hours
                # in the middle of a batch, expiring its lease).
                now = clock.now()
                while True:
                    parts = await stores.notifications.partitions(sent.notification_id)
                    if all(p.done or (p.owner is None and p.not_before is not None and p.not_before > now) for p in parts):
                        break
                    await asyncio.sleep(0.02)
                group_rows.append({"due_utc": due.isoformat(), "tokens": len(group), "wall_s": time.monotonic() - started})
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = push_pb2_grpc.PushServiceStub(channel)
                async for _ in stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=sent.notification_id)):
                    pass
                final = (await stub.GetNotification(
                    pb.GetNotificationRequest(app_id=APP, notification_id=sent.notification_id))).notification
                seen.update()
                repeats = sum(c - 1 for c in seen.counts.values())
                missing = len(set(expected) - set(seen.counts))
                # The ceiling: the same tokens in one plain Send.
                dev.emulator.inbox.clear()
                t0 = time.monotonic()
                plain = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="now")))
                plain_send_s = time.monotonic() - t0
                async for _ in stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id=plain.notification_id)):
                    pass
                plain_s = time.monotonic() - t0
        finally:
            await app.stop(0)
            await dev.emulator.stop()
            stores.close()
    return {
        "tokens": args.tokens,
        "zones": len(ZONES) + 1,
        "groups": len(groups),
        "local_time_send_call_s": send_s,
        "plain_send_call_s": plain_send_s,
        "early": early,
        "missing": missing,
        "repeats": repeats,
        "restarted_at_group": restarted_at_group,
        "restart": restart,
        "delivered": final.delivered,
        "state": pb.NotificationState.Name(final.state),
        "groups_wall_s": sum(r["wall_s"] for r in group_rows),
        "plain_send_to_last_receipt_s": plain_s,
        "group_rows": group_rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tokens", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--partition-size", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/localtime.json"))
    args = parser.parse_args()
    context = run_context(packages=("grpcio",))
    result = asyncio.run(measure(args))
    print(f"Delivery at local time: {args.tokens:,} tokens across {result['zones']} zones (30 and none), 09:30 local, "
          f"manual clock, memory store, in-process emulator")
    print(context.header)
    print(f"due groups: {result['groups']}; server restarted in group {result['restarted_at_group']} "
          f"after {result['restart']['arrived_before_stop']:,} of its {result['restart']['group_tokens']:,} tokens")
    print(f"early: {result['early']}  missing: {result['missing']}  repeats: {result['repeats']}  "
          f"(batch {args.batch})  delivered: {result['delivered']:,}  state: {result['state']}")
    print(f"Send call: {result['local_time_send_call_s']:.3f} s at local time, {result['plain_send_call_s']:.3f} s plain")
    print(f"delivery wall time: {result['groups_wall_s']:.1f} s over the groups, "
          f"{result['plain_send_to_last_receipt_s']:.1f} s for one plain Send (ceiling)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"context": dataclasses.asdict(context), "args": {k: str(v) for k, v in vars(args).items()},
                                    "result": result, "load_average_after": os.getloadavg()}, indent=2))
    print(f"results: {args.out}")
    ok = result["early"] == 0 and result["missing"] == 0 and result["repeats"] <= dispatch_in_flight(args)
    return 0 if ok and result["delivered"] == args.tokens else 1


def dispatch_in_flight(args: argparse.Namespace) -> int:
    """The most a restart may repeat: one batch per worker of the stopped server."""
    return DispatchSettings().workers * args.batch


if __name__ == "__main__":
    sys.exit(main())
