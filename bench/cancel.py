"""A cancel during a fan-out: what is delivered after CancelNotification returns, and whether every token is accounted for.

pushsvc runs in this process as one replica does (store, dispatcher, the
providers, and the real gRPC server, which the bench calls with the generated
stubs). The tokens are half APNs, half FCM. The endpoint records each
delivery's time:

- `--endpoint nginx` (the default): a static nginx HTTP/2 endpoint
  (bench/nginx.py) that answers at once and logs every request with the
  wall-clock time of its answer, in milliseconds. A request that arrived just
  before the cancel but was answered after it counts as "after": the count
  errs on the high side.
- `--endpoint emulator`: the pushsvc emulator in this process (as `pushsvc
  dev` runs it), whose inbox records each request's arrival time;
  `--latency-s` delays every answer, so batches stay in flight for that long.

1. The ceiling: a Send to all N tokens, uncancelled, until its receipts are
   written; its rate is what the endpoint and gateway reach in this run.
2. The cancel: a Send to the same N tokens; once `--cancel-at` of them are
   delivered (GetNotification, polled), CancelNotification. Then the bench
   reads the receipt stream to its end (in this process, through gRPC, so the
   time to its end includes the reading) and the final counters, and counts
   the deliveries the endpoint timed after CancelNotification returned.

Issue 21's goal: fewer than batch_size x partitions deliveries after the
cancel returned (the batches that may be in flight), and the receipts plus
the counters account for all N: one receipt per token, and
delivered + cancelled + the other outcomes = N, in the receipts and in the
counters alike, and as many deliveries at the endpoint as counted delivered.

Usage:
    python -m bench.cancel [-n 100000] [--cancel-at 0.3] [--batch 500] [--partition-size 5000]
                           [--store memory://] [--endpoint nginx | --endpoint emulator --latency-s 0.2]
                           [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a file (python bench/cancel.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from bench.machine import run_context  # noqa: E402
from bench.nginx import _LOG_FLUSH_S, NginxEndpoint  # noqa: E402
from pushsvc import models  # noqa: E402
from pushsvc.bootstrap import build_application  # noqa: E402
from pushsvc.config import ApnsAppSettings, AppSettings, DispatchSettings, FcmAppSettings, Settings  # noqa: E402
from pushsvc.devstack import DEMO_APP_ID, start_dev_stack  # noqa: E402
from pushsvc.dispatch.planning import plan_partitions  # noqa: E402
from pushsvc.emulator import EmulatorConfig, make_demo_credentials  # noqa: E402
from pushsvc.v1 import push_pb2 as pb  # noqa: E402
from pushsvc.v1 import push_pb2_grpc  # noqa: E402

APP = "bench"
RUN_TIMEOUT_S = 900.0
POLL_S = 0.01
"""How often the cancel phase polls GetNotification for the point to cancel at."""


def app_settings(nginx: NginxEndpoint, workdir: Path) -> AppSettings:
    """APNs and FCM pointed at nginx, with fresh demo keys (nginx checks none)."""
    creds, _, _ = make_demo_credentials(workdir / "creds", token_uri=nginx.token_uri, ca_pem=nginx.ca_pem)
    base, ca = nginx.base_url, nginx.ca_file
    return AppSettings(
        app_id=APP,
        apns=ApnsAppSettings(bundle_id=creds.apns_bundle_id, key_file=creds.apns_key_file, key_id=creds.apns_key_id,
                             team_id=creds.apns_team_id, production_url=base, sandbox_url=base, ca_file=ca),
        fcm=FcmAppSettings(service_account_file=creds.fcm_service_account_file, project_id=creds.fcm_project_id,
                           base_url=base, ca_file=ca),
    )


def counters(n: pb.Notification) -> dict[str, int]:
    return {"targeted": n.targeted, "delivered": n.delivered, "failed": n.failed, "invalid_tokens": n.invalid_tokens,
            "expired": n.expired, "cancelled": n.cancelled, "vanished": n.vanished, "pending": n.pending}


async def receipts(stub: push_pb2_grpc.PushServiceStub, app_id: str, notification_id: str) -> dict[str, Any]:
    """The notification's receipt stream, read to its end: how many, of how many tokens, by status."""
    by_status: collections.Counter[str] = collections.Counter()
    tokens: set[tuple[int, str]] = set()
    count = 0
    request = pb.StreamReceiptsRequest(app_id=app_id, notification_id=notification_id)
    async for item in stub.StreamReceipts(request, timeout=RUN_TIMEOUT_S):
        count += 1
        by_status[pb.DeliveryStatus.Name(item.receipt.status)] += 1
        tokens.add((item.receipt.platform, item.receipt.token))
    return {"receipts": count, "tokens": len(tokens), "by_status": dict(by_status)}


async def wait_finished(
    stub: push_pb2_grpc.PushServiceStub, app_id: str, notification_id: str, deadline: float
) -> pb.Notification:
    request = pb.GetNotificationRequest(app_id=app_id, notification_id=notification_id)
    while True:
        notification = (await stub.GetNotification(request)).notification
        if notification.state in FINISHED or time.monotonic() > deadline:
            return notification
        await asyncio.sleep(0.05)


def deliveries(arrivals: list[tuple[float, int, str]]) -> list[tuple[float, int, str]]:
    """The APNs and FCM sends among nginx's requests (not the OAuth token's)."""
    return [row for row in arrivals if row[2].startswith("/3/device/") or row[2].endswith("/messages:send")]


FINISHED = {pb.NOTIFICATION_STATE_COMPLETED, pb.NOTIFICATION_STATE_FAILED, pb.NOTIFICATION_STATE_CANCELLED}


class NginxArrivals:
    """Deliveries as nginx's access log records them (answer times)."""

    flush_s = _LOG_FLUSH_S + 0.5

    def __init__(self, nginx: NginxEndpoint) -> None:
        self._nginx = nginx

    def mark(self) -> int:
        return self._nginx.access_log_path.stat().st_size

    def since(self, mark: int) -> list[tuple[float, int, str]]:
        return deliveries(self._nginx.arrivals(mark))


class EmulatorArrivals:
    """Deliveries as the emulator's inbox records them (arrival times, before its `--latency-s`)."""

    flush_s = 0.0

    def __init__(self, emulator: Any) -> None:
        self._inbox = emulator.inbox

    def mark(self) -> int:
        # The inbox is bounded; emptied between the phases so that nothing of the second is dropped.
        self._inbox.clear()
        return 0

    def since(self, mark: int) -> list[tuple[float, int, str]]:
        return [(entry.received_at, 200, entry.platform) for entry in self._inbox.entries()[mark:]]


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Starts pushsvc and the endpoint; runs the ceiling and the cancel phase."""
    dispatch = DispatchSettings(batch_size=args.batch, partition_size=args.partition_size, lease_s=60)
    if args.endpoint == "nginx":
        with NginxEndpoint(access_log=True) as nginx:
            settings = Settings(store_url=args.store, host="127.0.0.1", port=0,
                                apps={APP: app_settings(nginx, workdir)}, dispatch=dispatch)
            app = build_application(settings)
            await app.start()
            try:
                return await phases(args, app, APP, dispatch, NginxArrivals(nginx))
            finally:
                await app.stop(0)
    dev = await start_dev_stack(state_dir=workdir / "dev", port=0, store_url=args.store, dispatch=dispatch,
                                emulator_config=EmulatorConfig(inbox_limit=2 * args.tokens))
    try:
        dev.emulator.faults.latency_s = args.latency_s
        return await phases(args, dev.app, DEMO_APP_ID, dispatch, EmulatorArrivals(dev.emulator))
    finally:
        dev.emulator.faults.latency_s = 0.0
        await dev.stop(0)


async def phases(args: argparse.Namespace, app: Any, app_id: str, dispatch: DispatchSettings, endpoint: Any) -> dict[str, Any]:
    """The uncancelled Send (the ceiling), then the cancelled one; what each endpoint saw."""
    half = args.tokens // 2
    regs = [models.TokenRegistration(app_id, f"{i:064x}", models.Platform.APNS) for i in range(half)]
    regs += [models.TokenRegistration(app_id, f"bench-{i}", models.Platform.FCM) for i in range(args.tokens - half)]
    for lo in range(0, len(regs), 5000):
        await app.stores.tokens.insert_new(regs[lo : lo + 5000], app.clock.now())
    del regs
    partitions = len(plan_partitions(targeted=args.tokens, devices=None, partition_size=args.partition_size,
                                     max_partitions=dispatch.max_partitions))
    everyone = pb.SendRequest(app_id=app_id, target=pb.Target(all=True), message=pb.Message(title="bench", body="cancel"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        # 1. The ceiling: the same Send, uncancelled.
        load_ceiling = os.getloadavg()[0]
        started = time.monotonic()
        sent = await stub.Send(everyone)
        full = await wait_finished(stub, app_id, sent.notification_id, started + RUN_TIMEOUT_S)
        ceiling_s = time.monotonic() - started
        await asyncio.sleep(endpoint.flush_s)
        ceiling_requests = len(endpoint.since(0))
        offset = endpoint.mark()
        # 2. The cancel, at `--cancel-at` of the tokens delivered.
        load_cancel = os.getloadavg()[0]
        started = time.monotonic()
        sent = await stub.Send(everyone)
        get = pb.GetNotificationRequest(app_id=app_id, notification_id=sent.notification_id)
        at_cancel = None
        while time.monotonic() < started + RUN_TIMEOUT_S:
            at_cancel = (await stub.GetNotification(get)).notification
            if at_cancel.delivered >= args.cancel_at * args.tokens or at_cancel.state in FINISHED:
                break
            await asyncio.sleep(POLL_S)
        cancel_called = time.time()
        answer = await stub.CancelNotification(pb.CancelNotificationRequest(app_id=app_id, notification_id=sent.notification_id))
        cancel_returned = time.time()
        cancel_returned_mono = time.monotonic()
        stream = await receipts(stub, app_id, sent.notification_id)
        final = await wait_finished(stub, app_id, sent.notification_id, time.monotonic() + RUN_TIMEOUT_S)
        settled_s = time.monotonic() - cancel_returned_mono
        await asyncio.sleep(endpoint.flush_s)
    arrivals = endpoint.since(offset)
    after = sum(1 for at, _, _ in arrivals if at > cancel_returned)
    during_call = sum(1 for at, _, _ in arrivals if cancel_called < at <= cancel_returned)
    return {
        "partitions": partitions,
        "bound": args.batch * partitions,
        "in_flight_bound": args.batch * dispatch.workers,
        "workers": dispatch.workers,
        "ceiling": {"notification": counters(full), "seconds": ceiling_s, "rate": full.delivered / ceiling_s,
                    "state": pb.NotificationState.Name(full.state), "endpoint_requests": ceiling_requests,
                    "load_average": load_ceiling},
        "cancel": {
            "load_average": load_cancel,
            "at_cancel": counters(at_cancel) if at_cancel is not None else None,
            "cancel_rpc_ms": 1000 * (cancel_returned - cancel_called),
            "answer": counters(answer.notification),
            "answer_state": pb.NotificationState.Name(answer.notification.state),
            "final": counters(final),
            "final_state": pb.NotificationState.Name(final.state),
            "stream_ended_after_cancel_s": settled_s,
            "stream": stream,
            "endpoint_requests": len(arrivals),
            "endpoint_non_2xx": sum(1 for _, status, _ in arrivals if not 200 <= status < 300),
            "delivered_after_cancel_returned": after,
            "delivered_during_cancel_call": during_call,
        },
    }


def verdict(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, bool]:
    """Each check of the goal, by name."""
    c, n = result["cancel"], args.tokens
    final, stream = c["final"], c["stream"]
    statuses = stream["by_status"]
    counted = sum(final[k] for k in ("delivered", "failed", "invalid_tokens", "expired", "cancelled", "vanished"))
    return {
        "after_cancel_below_bound": c["delivered_after_cancel_returned"] < result["bound"],
        "one_receipt_per_token": stream["receipts"] == stream["tokens"] == n,
        "receipts_add_up": sum(statuses.values()) == n,
        "counters_add_up": counted == final["targeted"] == n and final["pending"] == 0,
        "receipts_match_counters": statuses.get("DELIVERY_STATUS_DELIVERED", 0) == final["delivered"]
        and statuses.get("DELIVERY_STATUS_CANCELLED", 0) == final["cancelled"],
        "endpoint_saw_every_delivery": c["endpoint_requests"] == final["delivered"] and c["endpoint_non_2xx"] == 0,
        "some_cancelled": final["cancelled"] > 0 and c["final_state"] == "NOTIFICATION_STATE_CANCELLED",
        "ceiling_complete": result["ceiling"]["notification"]["delivered"] == n,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tokens", type=int, default=100_000)
    parser.add_argument("--cancel-at", type=float, default=0.3, help="cancel once this share of the tokens is delivered")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--partition-size", type=int, default=5000)
    parser.add_argument("--store", default="memory://")
    parser.add_argument("--endpoint", choices=("nginx", "emulator"), default="nginx",
                        help="nginx (answers at once; its access log times each answer) or the in-process emulator "
                        "(its inbox times each arrival; --latency-s before every answer)")
    parser.add_argument("--latency-s", type=float, default=0.0, help="with --endpoint emulator: delay of every answer")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default bench/results/cancel-<UTC time>.json)")
    args = parser.parse_args()
    context = run_context(packages=("grpcio", "pycurl"))
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    checks = verdict(args, result)
    c, ceiling = result["cancel"], result["ceiling"]
    where = ("static nginx HTTP/2 endpoint" if args.endpoint == "nginx"
             else f"in-process emulator, {args.latency_s} s per answer")
    print(f"Cancel during a fan-out: Send to {args.tokens:,} tokens (50% APNs, 50% FCM), {where}, "
          f"CancelNotification at {args.cancel_at:.0%} delivered")
    print(context.header)
    print(f"store: {args.store}; batches of {args.batch}, partitions of {args.partition_size} "
          f"({result['partitions']} partitions), {result['workers']} dispatch workers")
    print(f"ceiling, uncancelled Send: {ceiling['rate']:,.0f} deliveries/s ({ceiling['notification']['delivered']:,} in "
          f"{ceiling['seconds']:.2f} s), load average {ceiling['load_average']:.2f}")
    print(f"cancel phase, load average {c['load_average']:.2f}:")
    at = c["at_cancel"] or {}
    print(f"  delivered when CancelNotification was called  {at.get('delivered', 0):>9,}")
    print(f"  CancelNotification took                       {c['cancel_rpc_ms']:>9,.1f} ms")
    print(f"  delivered while the call ran (endpoint)      {c['delivered_during_cancel_call']:>9,}")
    print(f"  delivered after it returned (endpoint)       {c['delivered_after_cancel_returned']:>9,}   "
          f"bound batch_size x partitions = {result['bound']:,} (batch_size x workers = {result['in_flight_bound']:,})")
    print(f"  receipt stream read to its end after          {c['stream_ended_after_cancel_s']:>9,.2f} s ({c['final_state']})")
    print(f"  counters: {json.dumps(c['final'])}")
    print(f"  receipts: {c['stream']['receipts']:,} for {c['stream']['tokens']:,} tokens: {json.dumps(c['stream']['by_status'])}")
    print(f"  the endpoint got {c['endpoint_requests']:,} sends in this phase ({c['endpoint_non_2xx']} not 2xx)")
    for name, ok in checks.items():
        print(f"  {'ok ' if ok else 'NO '} {name}")
    out = args.out or Path("bench/results") / f"cancel-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": dataclasses.asdict(context), "args": {k: str(v) for k, v in vars(args).items()},
                               "result": result, "checks": checks, "load_average_after": os.getloadavg()}, indent=2))
    print(f"results: {out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
