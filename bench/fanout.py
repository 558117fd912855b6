"""End-to-end fan-out: Send to N registered tokens (half APNs, half FCM) until every receipt is in.

The emulator runs as `pushsvc emulator` in a separate process, pinned to one
core (CPU 1; pushsvc and h2load on CPU 0; `--no-pin` to leave both free).
pushsvc itself (store, dispatcher, providers) runs in this process, as one
replica does. After the fan-out the run measures the emulator's ceiling with
h2load, the same way and on the same emulator: pushsvc's APNs request alone,
its FCM request alone, and the two 50/50 as in the fan-out (one connection per
origin, `--in-flight` streams), each with the emulator's CPU per request from
/proc/<pid>/stat, so the table shows how close the gateway gets to its
endpoint and whether the endpoint was the limit.

With `--null-provider` no request leaves the process: every delivery is
answered DELIVERED at once by an in-process provider, so the run measures the
gateway's own cost (store, dispatcher, receipts, counters) without HTTP/2.

With `--metrics` the Prometheus metrics are on (served on a free port, and
scraped once at the end to check the delivery count); compare a run without it
for what counting costs per delivery.

With `--locales K` (1-5) the tokens are registered in K locales (token i in
the (i mod K)-th of de-DE, fr-FR, es-MX, pt-BR, ja-JP) and the run makes
`--pairs` pairs of Sends on that one registry: the unlocalized message, and the
same message with K localized variants (de, fr, es, pt-BR, ja: exact tags and
language fallbacks both), alternating which goes first. It prints the CPU per
delivery of each, and localized ÷ unlocalized of the medians (issue 21's goal:
at most 1.1).

The garbage collector is tuned as `pushsvc serve` tunes it (thresholds at
start, the startup heap frozen once the application runs); `--python-gc`
leaves Python's defaults, as the bench did before 2026-12-07.

With `--tracing` spans are made as with `[tracing] otlp_endpoint` set (the SDK's
batch processor), into an in-memory exporter instead of a collector; compare a
run without it for what tracing costs per delivery.

Usage:
    python bench/fanout.py [-n 20000] [--store memory://]
                           [--batch 500] [--in-flight 500] [--null-provider] [--metrics] [--tracing]
                           [--locales 5 [--pairs 2]]
                           [--out results.json]

Prints one table and writes the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a file (python bench/fanout.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import h2load  # noqa: E402
from bench.emulator import EmulatorEndpoint  # noqa: E402
from bench.machine import run_context  # noqa: E402
from pushsvc import eventloop, models
from pushsvc.bootstrap import build_application, freeze_startup_heap, tune_garbage_collector
from pushsvc.config import AppSettings, DispatchSettings, Settings
from pushsvc.devstack import DEMO_APP_ID, app_settings_for
from pushsvc.emulator.credentials import read_manifest
from pushsvc.providers.apns import render_apns
from pushsvc.providers.apns_jwt import ApnsTokenSigner
from pushsvc.providers.base import Delivery, Outcome, ProviderResult
from pushsvc.providers.fcm import render_fcm

MESSAGE = models.Message(title="bench", body="fan-out")
"""What the fan-out sends, and what h2load's requests carry."""
RUN_TIMEOUT_S = 1800.0

LOCALES = (("de-DE", "de"), ("fr-FR", "fr"), ("es-MX", "es"), ("pt-BR", "pt-BR"), ("ja-JP", "ja"))
"""(a device's locale, the variant tag it gets) for `--locales`: language fallbacks and exact tags."""


def localized_message(locales: int) -> models.Message:
    """MESSAGE with one variant per locale of `--locales` (content of about the same size)."""
    return dataclasses.replace(MESSAGE, localized={
        tag: models.LocalizedContent(title=f"bench {tag}", body=f"fan-out {tag}") for _, tag in LOCALES[:locales]
    })


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class NullProvider:
    """A provider that answers DELIVERED at once, without a network (`--null-provider`)."""

    def __init__(self, platform: models.Platform) -> None:
        self._platform = platform

    @property
    def platform(self) -> models.Platform:
        """See `Provider.platform`."""
        return self._platform

    async def send_batch(self, deliveries: Sequence[Delivery]) -> list[ProviderResult]:
        """See `Provider.send_batch`."""
        return [_DELIVERED] * len(deliveries)

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


def loop_thread_times() -> tuple[float, float]:
    """Seconds the calling thread (the event loop's) has run on a CPU, and waited runnable for one (/proc schedstat).

    Over a fan-out, wall time minus both is the time the loop had nothing to
    do (it waited on the network or a store's executor): whether the gateway
    is CPU-bound or idles, even on a machine other work keeps busy.
    """
    try:
        on_cpu_ns, waited_ns, _ = Path("/proc/thread-self/schedstat").read_text().split()
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(on_cpu_ns) / 1e9, int(waited_ns) / 1e9


def current_rss_mib() -> float:
    """The process's resident set size now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


EMULATOR_CPU, CLIENT_CPU = 1, 0
"""With --pin (the default): the emulator (or the nginx worker) on CPU 1, pushsvc and h2load on CPU 0."""


def apns_load(manifest: Path, requests: int, *, one_path: bool = False) -> h2load.Load:
    """The APNs requests pushsvc sends in the fan-out (same device tokens, headers and payload), with its JWT.

    Each request goes to its own device token's path, as in the fan-out
    (`one_path`: every request to one token, h2load's usual way, which lets
    the emulator's HPACK caches serve the `:path`). What h2load cannot vary
    per request: pushsvc's `apns-id` (unique per request; h2load sends none,
    and the emulator then makes one), and libcurl's WINDOW_UPDATE frames
    (pushsvc's libcurl sends about 1.6 per request, h2load none).
    """
    urls, creds = read_manifest(manifest)
    signer = ApnsTokenSigner(creds.apns_key_file.read_bytes(), creds.apns_key_id, creds.apns_team_id)
    rendered = render_apns(MESSAGE, bundle_id=creds.apns_bundle_id)
    headers = [f"authorization: {signer.authorization()}"]
    headers += [f"{name}: {value}" for name, value in rendered.body["headers"].items()]
    paths = () if one_path else [f"/3/device/{i:064x}" for i in range(requests)]
    return h2load.Load(f"{urls['apns_url']}/3/device/{1:064x}", headers, rendered.body["payload"].encode(), requests, paths)


def fcm_load(manifest: Path, requests: int) -> h2load.Load:
    """The FCM request pushsvc sends in the fan-out, with an access token from the emulator's OAuth route."""
    from bench.oauth import fetch_access_token

    urls, creds = read_manifest(manifest)
    app = app_settings_for(DEMO_APP_ID, urls, creds)
    assert app.fcm is not None and app.fcm.service_account_file is not None and app.fcm.ca_file is not None
    token = fetch_access_token(app.fcm.service_account_file, app.fcm.ca_file)
    project = json.loads(app.fcm.service_account_file.read_text())["project_id"]
    body = json.dumps({"message": {**render_fcm(MESSAGE).body, "token": "bench-1"}}, separators=(",", ":")).encode()
    headers = [f"authorization: Bearer {token}", "content-type: application/json"]
    return h2load.Load(f"{app.fcm.base_url}/v1/projects/{project}/messages:send", headers, body, requests)


def emulator_ceilings(emulator: EmulatorEndpoint, requests: int, streams: int, cpu: int | None,
                      *, one_path: bool = False) -> dict[str, Any]:
    """h2load's APNs, FCM and 50/50 ceilings of the emulator, each with the emulator's CPU per request.

    One connection per origin with `streams` streams, as pushsvc holds per
    provider; the 50/50 run is the fan-out's mix, the figure the fan-out is
    compared with.
    """
    manifest = emulator.manifest
    runs = {
        "apns": [apns_load(manifest, requests // 2, one_path=one_path)],
        "fcm": [fcm_load(manifest, requests // 2)],
        "mix": [apns_load(manifest, requests // 2, one_path=one_path), fcm_load(manifest, requests - requests // 2)],
    }
    out: dict[str, Any] = {}
    for name, loads in runs.items():
        cpu_started = emulator.cpu_s()
        ceiling = h2load.measure_mix(loads, connections=1, streams=streams, cpu=cpu)
        cpu_s = emulator.cpu_s() - cpu_started
        out[name] = {**dataclasses.asdict(ceiling), "emulator_cpu_us_per_req": 1e6 * cpu_s / ceiling.requests,
                     "shown": ceiling.shown}
    return out


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


def _tracing() -> tuple[Any, Any]:
    """An SDK provider with the batch processor `[tracing]` uses, into memory; its exporter and tracer."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pushsvc.tracing.otel import OtelTracer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    exporter.provider = provider  # type: ignore[attr-defined]  # kept for the flush in _spans
    return exporter, OtelTracer(provider)


def _spans(exporter: Any) -> int:
    exporter.provider.force_flush()
    return len(exporter.get_finished_spans())


async def fan_out(manifest: Path, args: argparse.Namespace, app_settings: AppSettings | None = None,
                  emulator_cpu_s: Any = None) -> list[dict[str, Any]]:
    """Seeds N tokens, sends to all (once, or `--pairs` pairs with `--locales`), waits for each; returns timings."""
    urls, creds = read_manifest(manifest)
    dispatch = DispatchSettings(batch_size=args.batch, max_in_flight_per_provider=args.in_flight, lease_s=60,
                                workers=getattr(args, "workers", DispatchSettings().workers))
    app_settings = app_settings or app_settings_for(DEMO_APP_ID, urls, creds)
    settings = Settings(store_url=args.store, host="127.0.0.1", port=0,
                        apps={DEMO_APP_ID: app_settings}, dispatch=dispatch)
    providers = None
    if args.null_provider:
        providers = {(DEMO_APP_ID, p): NullProvider(p) for p in models.PLATFORMS}
    exporter, tracer = _tracing() if args.tracing else (None, None)
    app = build_application(settings, providers=providers, metrics=args.metrics, tracer=tracer)
    await app.start()
    if getattr(args, "serve_gc", False):
        freeze_startup_heap()  # as serve does once started (main() tuned the thresholds as serve does)
    try:
        gc.collect()
        started_rss_mib = current_rss_mib()  # the process with no token: what the registry's RSS adds to
        half = args.tokens // 2
        locales = [device for device, _ in LOCALES[: args.locales]] or [""]
        for lo in range(0, args.tokens, 5000):
            # Built batch by batch, as an import streams them: a million registrations built at once would
            # leave their freed memory in the allocator, and count in the RSS after loading.
            regs = [models.TokenRegistration(DEMO_APP_ID, f"{i:064x}", models.Platform.APNS, locale=locales[i % len(locales)])
                    if i < half
                    else models.TokenRegistration(DEMO_APP_ID, f"bench-{i - half}", models.Platform.FCM,
                                                  locale=locales[i % len(locales)])
                    for i in range(lo, min(args.tokens, lo + 5000))]
            await app.stores.tokens.insert_new(regs, app.clock.now())
        del regs
        gc.collect()
        loaded_rss_mib = current_rss_mib()
        sends = [("plain", MESSAGE)]
        if args.locales:
            localized = ("localized", localized_message(args.locales))
            sends = []
            for pair in range(args.pairs):
                # Alternating which goes first, so that neither always meets the fuller receipt log.
                sends += [("plain", MESSAGE), localized] if pair % 2 == 0 else [localized, ("plain", MESSAGE)]
        results = []
        for kind, message in sends:
            result = await _send_once(app, args, message, emulator_cpu_s)
            results.append({"kind": kind, **result, "started_rss_mib": started_rss_mib, "loaded_rss_mib": loaded_rss_mib,
                            "load_average_before": result.pop("load_average_before")})
        if results:
            # After the CPU figure: the scrape (and its imports) is not the fan-out's cost.
            counted = scrape_delivered(app.metrics_port) if args.metrics else None
            results[-1]["metrics_delivered"] = counted
            results[-1]["spans"] = _spans(exporter) if exporter is not None else None
        return results
    finally:
        await app.stop(0)


async def _send_once(app: Any, args: argparse.Namespace, message: models.Message, emulator_cpu_s: Any) -> dict[str, Any]:
    """One Send to every token, timed until the notification finishes."""
    load_before = os.getloadavg()[0]
    gc.collect()
    gc_clock = GcClock()
    gc.callbacks.append(gc_clock)
    server_cpu = _server_cpu(args.server_pid)
    started = time.perf_counter()
    cpu_started = time.process_time()
    loop_started = loop_thread_times()
    server_started = server_cpu()
    emulator_started = emulator_cpu_s() if emulator_cpu_s else 0.0
    sent = await app.service.send(models.SendCommand(DEMO_APP_ID, models.Target(kind="all", all=True), message))
    accepted_s = time.perf_counter() - started
    deadline = started + RUN_TIMEOUT_S
    while True:
        view = await app.service.get_notification(DEMO_APP_ID, sent.notification_id)
        if view.state.finished or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - started
    gateway_cpu_s = time.process_time() - cpu_started
    loop_cpu_s, loop_waited_s = (b - a for a, b in zip(loop_started, loop_thread_times(), strict=True))
    server_cpu_s = server_cpu() - server_started if args.server_pid else None
    emulator_s = emulator_cpu_s() - emulator_started if emulator_cpu_s else None
    gc.callbacks.remove(gc_clock)
    return {
        "spans": None,
        "metrics_delivered": None,
        "targeted": sent.targeted,
        "delivered": view.delivered,
        "state": view.state.value,
        "accept_ms": accepted_s * 1000,
        "seconds": elapsed,
        "rate": view.delivered / elapsed if elapsed else 0.0,
        "gateway_cpu_s": gateway_cpu_s,
        "cpu_us_per_delivery": 1e6 * gateway_cpu_s / max(1, view.delivered),
        "loop_cpu_s": loop_cpu_s,
        "loop_waited_for_cpu_s": loop_waited_s,
        "loop_idle_s": max(0.0, elapsed - loop_cpu_s - loop_waited_s),
        "store_server_cpu_s": server_cpu_s,
        "emulator_cpu_s": emulator_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gc_s": gc_clock.seconds,
        "gc_by_generation": gc_clock.by_generation,
        "end_rss_mib": current_rss_mib(),
        "load_average_before": load_before,
    }


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
    parser.add_argument("--workers", type=int, default=DispatchSettings().workers, help="partition workers (dispatch.workers)")
    parser.add_argument("--metrics", action="store_true", help="Prometheus metrics on (off by default, as with metrics_port = 0)")
    parser.add_argument("--tracing", action="store_true", help="spans on, into memory (off by default, as without tracing.otlp_endpoint)")
    parser.add_argument("--server-pid", type=int, default=0,
                        help="the store server's main process (PostgreSQL's postmaster): its CPU during the fan-out is reported too")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help=f"do not pin (by default the emulator runs on CPU {EMULATOR_CPU}, pushsvc and h2load on CPU {CLIENT_CPU})")
    parser.add_argument("--h2load-n", type=int, default=20_000,
                        help="requests for each emulator ceiling (APNs only, FCM only, 50/50), half of them per origin")
    parser.add_argument("--h2load-one-path", action="store_true",
                        help="h2load's APNs requests all to one device token (before: the emulator's HPACK caches serve "
                        "the :path), instead of one token per request as in the fan-out")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=Settings().event_loop,
                        help="the gateway's event loop (default: the one `pushsvc serve` runs on, its `event_loop` setting)")
    parser.add_argument("--locales", type=int, choices=range(len(LOCALES) + 1), default=0,
                        help="register the tokens in this many locales and compare an unlocalized Send with a "
                        "localized one (as many variants) in the same run")
    parser.add_argument("--pairs", type=int, default=2, help="with --locales: pairs of Sends, alternating the order")
    parser.add_argument("--python-gc", dest="serve_gc", action="store_false",
                        help="leave the garbage collector at Python's defaults (the bench's behaviour before 2026-12-07) "
                        "instead of tuning it as serve does (young collections every 20,000 allocations, the startup heap frozen)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pushsvc-bench-fanout.json")
    args = parser.parse_args()
    if args.serve_gc:
        tune_garbage_collector()
    run = functools.partial(eventloop.run, loop=args.loop)
    context = run_context(packages=("grpcio", "pycurl"), tools={"h2load": ["h2load", "--version"]})
    pinned = args.pin and {EMULATOR_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CPU})
    ceiling: h2load.Ceiling | None = None
    ceilings: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, EmulatorEndpoint(cpu=EMULATOR_CPU if pinned else None) as emulator:
        manifest = emulator.manifest
        if args.endpoint == "nginx" and not args.null_provider:
            from bench.nginx import NginxEndpoint

            with NginxEndpoint() as nginx:
                if pinned:
                    # The endpoint on its own core, as the emulator is: left free, the scheduler put the nginx
                    # worker beside pushsvc on CPU 0 for part of a run, and each waited for the other.
                    for pid in nginx.worker_pids():
                        os.sched_setaffinity(pid, {EMULATOR_CPU})
                runs = run(fan_out(manifest, args, nginx_app(manifest, nginx, Path(tmp))))
                ceiling = h2load.measure(
                    f"{nginx.base_url}/3/device/{'ab' * 32}", ["apns-topic: bench", "apns-push-type: alert"],
                    b'{"aps":{"alert":{"title":"bench","body":"fan-out"}}}', requests=max(args.tokens, 50_000),
                )
        else:
            runs = run(fan_out(manifest, args, emulator_cpu_s=emulator.cpu_s))
            if not args.null_provider:
                # Measured the same way in the same run: the emulator as the fan-out found it (inbox
                # full), one connection per origin, the fan-out's streams, 50/50 APNs/FCM.
                ceilings = emulator_ceilings(emulator, args.h2load_n, args.in_flight, CLIENT_CPU if pinned else None,
                                             one_path=args.h2load_one_path)
                mix = ceilings["mix"]
                ceiling = h2load.Ceiling(mix["req_per_s"], mix["requests"], mix["ok_2xx"], mix["failed"],
                                         mix["command"], mix["error"])
    result = runs[0]
    # /metrics and the spans count every Send of the run; the check below compares them with all deliveries.
    result["metrics_delivered"], result["spans"] = runs[-1]["metrics_delivered"], runs[-1]["spans"]
    delivered_total = sum(r["delivered"] for r in runs)
    cpu_ratio = None
    if ceilings and result.get("emulator_cpu_s") and result["delivered"]:
        cpu_ratio = ceilings["mix"]["emulator_cpu_us_per_req"] / (1e6 * result["emulator_cpu_s"] / result["delivered"])
    where = ("in-process null provider" if args.null_provider
             else "static nginx HTTP/2 endpoint" if args.endpoint == "nginx" else "emulator in a separate process")
    print(f"Fan-out: Send to {args.tokens:,} registered tokens (50% APNs, 50% FCM), {where}")
    print(context.header)
    print(f"store: {args.store}")
    print(f"pinned: emulator on CPU {EMULATOR_CPU}, pushsvc and h2load on CPU {CLIENT_CPU}" if pinned else "not pinned")
    print(f"garbage collector: {'as serve tunes it' if args.serve_gc else 'Python defaults'}")
    print(f"concurrency: {args.in_flight} requests in flight per provider, batches of {args.batch}, {args.workers} workers; "
          f"metrics {'on' if args.metrics else 'off'}; tracing {'on' if args.tracing else 'off'}; event loop {args.loop}")
    print(f"{'what':34} {'value':>12}")
    print(f"{'Send accepted in':34} {result['accept_ms']:>9,.1f} ms")
    print(f"{'all receipts written after':34} {result['seconds']:>10,.2f} s")
    print(f"{'delivered':34} {result['delivered']:>12,} ({result['state']})")
    if args.locales:
        print(f"first Send ({result['kind']}) below; --locales {args.locales}: {len(runs)} Sends, "
              f"{', '.join(device for device, _ in LOCALES[: args.locales])}")
    if result["spans"] is not None:
        print(f"{'spans made (one per batch)':34} {result['spans']:>12,}")
    if result["metrics_delivered"] is not None:
        print(f"{'delivered, as /metrics counts them':34} {result['metrics_delivered']:>12,.0f}")
    print(f"{'gateway throughput':34} {result['rate']:>8,.0f} /s")
    print(f"{'gateway CPU per delivery':34} {1e6 * result['gateway_cpu_s'] / max(1, result['delivered']):>9,.0f} us")
    if result["store_server_cpu_s"] is not None:
        print(f"{'store server CPU per delivery':34} {1e6 * result['store_server_cpu_s'] / max(1, result['delivered']):>9,.0f} us")
    if result.get("emulator_cpu_s") is not None:
        print(f"{'emulator CPU per delivery':34} {1e6 * result['emulator_cpu_s'] / max(1, result['delivered']):>9,.0f} us")
    # Which side bounds the run: a process near 1.0 of a core is saturated (with pinning each has one core).
    print(f"{'gateway CPU / wall (cores busy)':34} {result['gateway_cpu_s'] / result['seconds']:>12.2f}")
    if result.get("emulator_cpu_s") is not None:
        print(f"{'emulator CPU / wall (cores busy)':34} {result['emulator_cpu_s'] / result['seconds']:>12.2f}")
    print(f"{'event loop: on CPU / waiting for one':34} {result['loop_cpu_s']:>5,.1f} s / {result['loop_waited_for_cpu_s']:,.1f} s")
    print(f"{'event loop: idle (nothing to run)':34} {result['loop_idle_s']:>10,.2f} s")
    print(f"{'garbage collector, during fan-out':34} {result['gc_s']:>10,.2f} s")
    print(f"{'gateway peak RSS':34} {result['peak_rss_mib']:>8,.0f} MiB")
    print(f"{'RSS started, before loading':34} {result['started_rss_mib']:>8,.0f} MiB")
    print(f"{'RSS after loading the registry':34} {result['loaded_rss_mib']:>8,.0f} MiB")
    print(f"{'RSS growth during the fan-out':34} {result['peak_rss_mib'] - result['loaded_rss_mib']:>8,.0f} MiB")
    if ceiling is None:
        shown = "n/a (null provider)"
    elif ceiling.req_per_s is None:
        shown = f"n/a ({ceiling.error[:60]})"
    else:
        shown = f"{ceiling.shown} /s ({ceiling.ok_2xx}/{ceiling.requests} 2xx)"
    if ceilings:
        for name, row in ceilings.items():
            label = {"apns": "APNs only", "fcm": "FCM only", "mix": "50/50"}[name]
            print(f"{'emulator ceiling, h2load ' + label:34} {row['shown']:>8} /s "
                  f"({row['ok_2xx']}/{row['requests']} 2xx), emulator {row['emulator_cpu_us_per_req']:,.0f} us/req")
        if ceiling is not None and ceiling.req_per_s:
            print(f"{'fan-out / 50/50 ceiling':34} {result['rate'] / ceiling.req_per_s:>12.2f}")
        if cpu_ratio is not None:
            # The emulator's CPU per request under h2load's 50/50 over its CPU per delivery in the
            # fan-out: the rate ratio when the emulator is saturated in both; a busy machine skews
            # the rates, not this.
            print(f"{'emulator CPU/req: 50/50 / fan-out':34} {cpu_ratio:>12.2f}")
        commands = " | ".join(f"{name}: {row['command']}" for name, row in ceilings.items())
        print(f"ceilings: {commands}")
    else:
        print(f"{args.endpoint + ' ceiling (h2load, APNs)':34} {shown:>12}")
    locales: dict[str, Any] | None = None
    if args.locales:
        plain = [r["cpu_us_per_delivery"] for r in runs if r["kind"] == "plain"]
        local = [r["cpu_us_per_delivery"] for r in runs if r["kind"] == "localized"]
        locales = {"locales": args.locales, "plain_cpu_us": plain, "localized_cpu_us": local,
                   "plain_median_us": median(plain), "localized_median_us": median(local),
                   "ratio": median(local) / median(plain) if median(plain) else None}
        print(f"{'Send':10} {'order':>5} {'CPU us/delivery':>16} {'rate /s':>9} {'GC s':>6} {'load 1-min':>10}")
        for order, r in enumerate(runs, 1):
            print(f"{r['kind']:10} {order:>5} {r['cpu_us_per_delivery']:>16,.1f} {r['rate']:>9,.0f} {r['gc_s']:>6.2f} "
                  f"{r['load_average_before']:>10.2f}")
        ratio = locales["ratio"]
        print(f"localized / unlocalized CPU per delivery (medians {locales['localized_median_us']:,.1f} / "
              f"{locales['plain_median_us']:,.1f} us): {ratio:.3f} (goal <= 1.1)" if ratio else "ratio: n/a")
    args.out.write_text(json.dumps({"context": dataclasses.asdict(context), "args": {k: str(v) for k, v in vars(args).items()},
                                    "result": result, "runs": runs, "locales": locales,
                                    "emulator_ceiling": ceiling.req_per_s if ceiling else None,
                                    "ceiling": dataclasses.asdict(ceiling) if ceiling else None,
                                    "emulator_ceilings": ceilings, "pinned": pinned,
                                    "load_average_after": os.getloadavg(),
                                    "emulator_cpu_ratio": cpu_ratio,
                                    "gateway_busy": result["gateway_cpu_s"] / result["seconds"],
                                    "emulator_busy": (result["emulator_cpu_s"] / result["seconds"]
                                                      if result.get("emulator_cpu_s") is not None else None)}, indent=2))
    print(f"results: {args.out}")
    counted_ok = result["metrics_delivered"] is None or result["metrics_delivered"] == delivered_total
    return 0 if all(r["delivered"] == args.tokens for r in runs) and counted_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
