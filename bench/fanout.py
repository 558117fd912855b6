"""End-to-end fan-out: Send to N registered tokens (half APNs, half FCM) until every receipt is in.

The emulator runs as `pushsvc emulator` in a separate process. pushsvc itself
(store, dispatcher, providers) runs in this process, as one replica does. The
run also measures the emulator's own ceiling with h2load, for the same APNs
request, so the table shows how close the gateway gets to its endpoint.

With `--null-provider` no request leaves the process: every delivery is
answered DELIVERED at once by an in-process provider, so the run measures the
gateway's own cost (store, dispatcher, receipts, counters) without HTTP/2.

With `--metrics` the Prometheus metrics are on (served on a free port, and
scraped once at the end to check the delivery count); compare a run without it
for what counting costs per delivery.

Usage:
    python bench/fanout.py [-n 20000] [--store memory://]
                           [--batch 500] [--in-flight 500] [--null-provider] [--metrics]
                           [--out results.json]

Prints one table and writes the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a file (python bench/fanout.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import h2load  # noqa: E402
from bench.machine import run_context  # noqa: E402
from pushsvc import models
from pushsvc.bootstrap import build_application
from pushsvc.config import AppSettings, DispatchSettings, Settings
from pushsvc.devstack import DEMO_APP_ID, app_settings_for
from pushsvc.emulator.credentials import read_manifest
from pushsvc.providers.apns import render_apns
from pushsvc.providers.apns_jwt import ApnsTokenSigner
from pushsvc.providers.base import Delivery, Outcome, ProviderResult

STARTUP_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 1800.0


class NullProvider:
    """A provider that answers DELIVERED at once, without a network (`--null-provider`)."""

    def __init__(self, platform: models.Platform) -> None:
        self._platform = platform

    @property
    def platform(self) -> models.Platform:
        """See `Provider.platform`."""
        return self._platform

    async def send(self, delivery: Delivery) -> ProviderResult:
        """See `Provider.send`."""
        return _DELIVERED

    async def aclose(self) -> None:
        """See `Provider.aclose`."""


_DELIVERED = ProviderResult(Outcome.DELIVERED, 200, provider_message_id="null")


class GcClock:
    """Adds up the time the cyclic garbage collector runs (a `gc.callbacks` observer)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.by_generation: dict[int, list[float]] = {}
        """Generation → [collections, seconds]."""
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            spent = time.perf_counter() - self._started
            self.seconds += spent
            row = self.by_generation.setdefault(info["generation"], [0, 0.0])
            row[0] += 1
            row[1] += spent


def current_rss_mib() -> float:
    """The process's resident set size now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_emulator(state: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`pushsvc emulator` on free ports; returns the process and its manifest."""
    proc = subprocess.Popen(
        # A real APNs connection allows 1 stream until a valid JWT arrived; h2load's first burst
        # would be refused (bench/emulator.py does the same for the providers bench).
        [sys.executable, "-m", "pushsvc", "emulator", "--apns-port", "0", "--apns-sandbox-port", "0",
         "--fcm-port", "0", "--apns-streams-before-auth", "1000", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    manifest = state / "emulator.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not manifest.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.05)
    return proc, manifest


def h2load_ceiling(manifest: Path, sends: int, streams: int) -> h2load.Ceiling:
    """The emulator's APNs req/s under h2load (one connection, `streams` in flight), with its count of 2xx."""
    urls, creds = read_manifest(manifest)
    signer = ApnsTokenSigner(creds.apns_key_file.read_bytes(), creds.apns_key_id, creds.apns_team_id)
    rendered = render_apns(models.Message(title="bench"), bundle_id=creds.apns_bundle_id)
    headers = [f"authorization: {signer.authorization()}"]
    headers += [f"{name}: {value}" for name, value in rendered.body["headers"].items()]
    return h2load.measure(f"{urls['apns_url']}/3/device/{'ab' * 32}", headers, rendered.body["payload"].encode(),
                          requests=sends, connections=1, streams=streams)


def nginx_app(manifest: Path, nginx: Any, workdir: Path) -> AppSettings:
    """The demo app pointed at the static nginx endpoint: same keys, nginx's URLs, CA and OAuth route."""
    urls, creds = read_manifest(manifest)
    app = app_settings_for(DEMO_APP_ID, urls, creds)
    assert app.apns is not None and app.fcm is not None and app.fcm.service_account_file is not None
    account = json.loads(app.fcm.service_account_file.read_text())
    account["token_uri"] = nginx.token_uri
    account_file = workdir / "service-account-nginx.json"
    account_file.write_text(json.dumps(account))
    base = nginx.base_url
    return app.model_copy(
        update={
            "apns": app.apns.model_copy(update={"production_url": base, "sandbox_url": base, "ca_file": nginx.ca_file}),
            "fcm": app.fcm.model_copy(update={"base_url": base, "ca_file": nginx.ca_file, "service_account_file": account_file}),
        }
    )


async def fan_out(manifest: Path, args: argparse.Namespace, app_settings: AppSettings | None = None) -> dict[str, Any]:
    """Seeds N tokens, sends to all, waits for completion; returns timings."""
    urls, creds = read_manifest(manifest)
    dispatch = DispatchSettings(batch_size=args.batch, max_in_flight_per_provider=args.in_flight, lease_s=60)
    app_settings = app_settings or app_settings_for(DEMO_APP_ID, urls, creds)
    settings = Settings(store_url=args.store, host="127.0.0.1", port=0,
                        apps={DEMO_APP_ID: app_settings}, dispatch=dispatch)
    providers = None
    if args.null_provider:
        providers = {(DEMO_APP_ID, p): NullProvider(p) for p in models.PLATFORMS}
    app = build_application(settings, providers=providers, metrics=args.metrics)
    await app.start()
    try:
        half = args.tokens // 2
        regs = [models.TokenRegistration(DEMO_APP_ID, f"{i:064x}", models.Platform.APNS) for i in range(half)]
        regs += [models.TokenRegistration(DEMO_APP_ID, f"bench-{i}", models.Platform.FCM) for i in range(args.tokens - half)]
        for i in range(0, len(regs), 5000):
            await app.stores.tokens.insert_new(regs[i : i + 5000], app.clock.now())
        del regs
        gc.collect()
        loaded_rss_mib = current_rss_mib()
        gc_clock = GcClock()
        gc.callbacks.append(gc_clock)
        server_cpu = _server_cpu(args.server_pid)
        started = time.perf_counter()
        cpu_started = time.process_time()
        server_started = server_cpu()
        sent = await app.service.send(
            models.SendCommand(DEMO_APP_ID, models.Target(kind="all", all=True), models.Message(title="bench", body="fan-out"))
        )
        accepted_s = time.perf_counter() - started
        deadline = started + RUN_TIMEOUT_S
        while True:
            view = await app.service.get_notification(DEMO_APP_ID, sent.notification_id)
            if view.state.finished or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        gateway_cpu_s = time.process_time() - cpu_started
        server_cpu_s = server_cpu() - server_started if args.server_pid else None
        gc.callbacks.remove(gc_clock)
        # After the CPU figure: the scrape (and its imports) is not the fan-out's cost.
        counted = scrape_delivered(app.metrics_port) if args.metrics else None
        return {
            "metrics_delivered": counted,
            "targeted": sent.targeted,
            "delivered": view.delivered,
            "state": view.state.value,
            "accept_ms": accepted_s * 1000,
            "seconds": elapsed,
            "rate": view.delivered / elapsed if elapsed else 0.0,
            "gateway_cpu_s": gateway_cpu_s,
            "store_server_cpu_s": server_cpu_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "loaded_rss_mib": loaded_rss_mib,
            "gc_s": gc_clock.seconds,
            "gc_by_generation": gc_clock.by_generation,
            "end_rss_mib": current_rss_mib(),
        }
    finally:
        await app.stop(0)


def _server_cpu(pid: int) -> Any:
    """A reader of the store server's CPU seconds (its process tree), or of 0 without --server-pid."""
    if not pid:
        return lambda: 0.0
    from bench.pgserver import tree_cpu_s

    return lambda: tree_cpu_s(pid)


def scrape_delivered(port: int) -> float:
    """The DELIVERED deliveries /metrics reports (it must match the receipts)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples
        if s.name == "pushsvc_deliveries_total" and s.labels.get("status") == "DELIVERED"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tokens", type=int, default=20_000)
    parser.add_argument("--store", default="memory://", help="memory:// (the gateway's own cost), mongomock://..., mongodb://...")
    parser.add_argument("--null-provider", action="store_true", help="answer every delivery in-process: no HTTP/2")
    parser.add_argument("--endpoint", choices=("emulator", "nginx"), default="emulator",
                        help="where the providers send: the emulator, or a static nginx HTTP/2 endpoint "
                        "(bench/nginx.py; run as python -m bench.fanout)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=500, help="max concurrent requests per provider")
    parser.add_argument("--metrics", action="store_true", help="Prometheus metrics on (off by default, as with metrics_port = 0)")
    parser.add_argument("--server-pid", type=int, default=0,
                        help="the store server's main process (PostgreSQL's postmaster): its CPU during the fan-out is reported too")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pushsvc-bench-fanout.json")
    args = parser.parse_args()
    context = run_context(packages=("grpcio", "pycurl"), tools={"h2load": ["h2load", "--version"]})
    with tempfile.TemporaryDirectory() as tmp:
        proc, manifest = start_emulator(Path(tmp) / "emulator")
        try:
            ceiling: h2load.Ceiling | None = None
            if args.endpoint == "nginx" and not args.null_provider:
                from bench.nginx import NginxEndpoint

                with NginxEndpoint() as nginx:
                    result = asyncio.run(fan_out(manifest, args, nginx_app(manifest, nginx, Path(tmp))))
                    ceiling = h2load.measure(
                        f"{nginx.base_url}/3/device/{'ab' * 32}", ["apns-topic: bench", "apns-push-type: alert"],
                        b'{"aps":{"alert":{"title":"bench","body":"fan-out"}}}', requests=max(args.tokens, 50_000),
                    )
            else:
                result = asyncio.run(fan_out(manifest, args))
                if not args.null_provider:
                    ceiling = h2load_ceiling(manifest, max(args.tokens, 20_000), args.in_flight)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    where = ("in-process null provider" if args.null_provider
             else "static nginx HTTP/2 endpoint" if args.endpoint == "nginx" else "emulator in a separate process")
    print(f"Fan-out: Send to {args.tokens:,} registered tokens (50% APNs, 50% FCM), {where}")
    print(context.header)
    print(f"store: {args.store}")
    print(f"concurrency: {args.in_flight} requests in flight per provider, batches of {args.batch}; "
          f"metrics {'on' if args.metrics else 'off'}")
    print(f"{'what':34} {'value':>12}")
    print(f"{'Send accepted in':34} {result['accept_ms']:>9,.1f} ms")
    print(f"{'all receipts written after':34} {result['seconds']:>10,.2f} s")
    print(f"{'delivered':34} {result['delivered']:>12,} ({result['state']})")
    if result["metrics_delivered"] is not None:
        print(f"{'delivered, as /metrics counts them':34} {result['metrics_delivered']:>12,.0f}")
    print(f"{'gateway throughput':34} {result['rate']:>8,.0f} /s")
    print(f"{'gateway CPU per delivery':34} {1e6 * result['gateway_cpu_s'] / max(1, result['delivered']):>9,.0f} us")
    if result["store_server_cpu_s"] is not None:
        print(f"{'store server CPU per delivery':34} {1e6 * result['store_server_cpu_s'] / max(1, result['delivered']):>9,.0f} us")
    print(f"{'garbage collector, during fan-out':34} {result['gc_s']:>10,.2f} s")
    print(f"{'gateway peak RSS':34} {result['peak_rss_mib']:>8,.0f} MiB")
    print(f"{'RSS after loading the registry':34} {result['loaded_rss_mib']:>8,.0f} MiB")
    print(f"{'RSS growth during the fan-out':34} {result['peak_rss_mib'] - result['loaded_rss_mib']:>8,.0f} MiB")
    if ceiling is None:
        shown = "n/a (null provider)"
    elif ceiling.req_per_s is None:
        shown = f"n/a ({ceiling.error[:60]})"
    else:
        shown = f"{ceiling.shown} /s ({ceiling.ok_2xx}/{ceiling.requests} 2xx)"
    print(f"{args.endpoint + ' ceiling (h2load, APNs)':34} {shown:>12}")
    args.out.write_text(json.dumps({"context": dataclasses.asdict(context), "args": {k: str(v) for k, v in vars(args).items()},
                                    "result": result,
                                    "emulator_ceiling": ceiling.req_per_s if ceiling else None,
                                    "ceiling": dataclasses.asdict(ceiling) if ceiling else None}, indent=2))
    print(f"results: {args.out}")
    counted_ok = result["metrics_delivered"] is None or result["metrics_delivered"] == result["delivered"]
    return 0 if result["delivered"] == args.tokens and counted_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
