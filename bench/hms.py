"""HMS fan-out against the emulator: Send to N Huawei Push Kit tokens through the dispatcher, beside its ceiling.

End to end, as `bench/fanout.py` does it: the gateway runs in this process on
`memory://` with the emulator's demo HMS client, N tokens are registered, one
Send targets all of them, and the run ends when every receipt is written.
`HmsProvider` sends one v2 request per dispatcher batch (up to 1,000 tokens
per request) to the emulator in a subprocess (pinned to CPU 1, the gateway and
h2load on CPU 0; `--no-pin` to leave them free).

Ceiling, measured the same way in the same run on the same emulator: h2load
posting pushsvc's own v2 request (the same rendered message with `--batch`
tokens, an access token from the emulator's OAuth route) to the send
endpoint, one connection with `--h2load-m` streams. Its deliveries per second
are requests per second times the tokens per request; the fan-out's rate over
that is the figure the goal ("at the emulator's ceiling") is read from.

With `--gateway-alone` the same fan-out runs once more with every delivery
answered in-process (`bench.fanout.NullProvider`, no HTTP), for what the
gateway's own pipeline reaches at this N and batch size on this machine now.

Usage:
    python -m bench.hms [-n 100000] [--batch 500] [--h2load-n 400] [--gateway-alone] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import ssl
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

# Run as a file (python bench/hms.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import h2load  # noqa: E402
from bench.channel_fanout import APP_ID, fan_out  # noqa: E402
from bench.emulator import EmulatorEndpoint  # noqa: E402
from bench.fanout import CLIENT_CPU, EMULATOR_CPU, MESSAGE, NullProvider  # noqa: E402
from bench.machine import run_context  # noqa: E402
from pushsvc import models  # noqa: E402
from pushsvc.channels.hms.channel import demo_settings  # noqa: E402
from pushsvc.channels.hms.provider import render_hms  # noqa: E402
from pushsvc.config import AppSettings  # noqa: E402
from pushsvc.config.schema import HmsAppSettings  # noqa: E402


def access_token(hms: HmsAppSettings) -> str:
    """A token from the emulator's OAuth client-credentials route (HTTP/1.1, the endpoint's CA)."""
    assert hms.client_secret_file is not None and hms.ca_file is not None
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": hms.client_id,
                                   "client_secret": hms.client_secret_file.read_text().strip()}).encode()
    context = ssl.create_default_context(cafile=str(hms.ca_file))
    with urllib.request.urlopen(urllib.request.Request(hms.token_url, data=form), context=context, timeout=30) as reply:
        return str(json.loads(reply.read())["access_token"])


def ceiling(hms: HmsAppSettings, tokens_per_request: int, requests: int, streams: int, cpu: int | None) -> h2load.Ceiling:
    """h2load posting pushsvc's v2 request with `tokens_per_request` tokens to the emulator's send endpoint."""
    message = dict(render_hms(MESSAGE).body)
    message["token"] = [f"hms-ceiling-{i}" for i in range(tokens_per_request)]
    body = json.dumps({"validate_only": False, "message": message}, separators=(",", ":")).encode()
    headers = ["content-type: application/json;charset=utf-8", f"authorization: Bearer {access_token(hms)}"]
    url = f"{hms.base_url.rstrip('/')}/v2/{hms.project_id}/messages:send"
    return h2load.measure(url, headers, body, requests=requests, connections=1, streams=streams, cpu=cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tokens", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="dispatcher batch: the tokens of one HMS request")
    parser.add_argument("--in-flight", type=int, default=500, help="max concurrent deliveries per provider")
    parser.add_argument("--h2load-n", type=int, default=400, help="requests of the ceiling run (each of --batch tokens)")
    parser.add_argument("--h2load-m", type=int, default=4, help="streams of the ceiling run's one connection")
    parser.add_argument("--gateway-alone", action="store_true",
                        help="run the fan-out again with an in-process provider (no HTTP): the gateway's own rate")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime())
    out = args.out or Path(__file__).parent / "results" / f"hms-{stamp}-emulator-{args.tokens}.json"
    context = run_context(packages=("pycurl",), tools={"h2load": ["h2load", "--version"]})
    pinned = args.pin and {EMULATOR_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CPU})
    with EmulatorEndpoint(cpu=EMULATOR_CPU if pinned else None) as emulator:
        hms = demo_settings(emulator.urls, emulator.credentials)
        if hms is None:
            raise SystemExit("this emulator serves no HMS endpoint")
        registrations = [models.TokenRegistration(APP_ID, f"hms-bench-{i:08d}", models.Platform.HMS)
                         for i in range(args.tokens)]
        load_before = os.getloadavg()
        result = asyncio.run(fan_out(AppSettings(hms=hms), registrations, batch=args.batch, in_flight=args.in_flight,
                                     endpoint_cpu_s=emulator.cpu_s))
        alone = None
        if args.gateway_alone:
            null = {(APP_ID, models.Platform.HMS): NullProvider(models.Platform.HMS)}
            alone = asyncio.run(fan_out(AppSettings(hms=hms), registrations, batch=args.batch, in_flight=args.in_flight,
                                        providers=null))
        del registrations
        cpu_started = emulator.cpu_s()
        top = ceiling(hms, args.batch, args.h2load_n, args.h2load_m, CLIENT_CPU if pinned else None)
        ceiling_cpu_s = emulator.cpu_s() - cpu_started
    ceiling_rate = top.req_per_s * args.batch if top.req_per_s else None
    ratio = result["rate"] / ceiling_rate if ceiling_rate else None
    print(f"HMS fan-out: Send to {args.tokens:,} Push Kit tokens through the dispatcher, emulator in a separate process")
    print(context.header)
    print(f"load average before the fan-out: {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"pinned: emulator on CPU {EMULATOR_CPU}, pushsvc and h2load on CPU {CLIENT_CPU}" if pinned else "not pinned")
    print(f"batches of {args.batch} tokens (one v2 request each), {args.in_flight} in flight")
    print(f"{'what':40} {'value':>14}")
    print(f"{'delivered':40} {result['delivered']:>14,} ({result['state']})")
    print(f"{'all receipts written after':40} {result['seconds']:>12,.2f} s")
    print(f"{'pushsvc throughput':40} {result['rate']:>10,.0f} /s")
    print(f"{'gateway CPU per delivery':40} {result['gateway_cpu_us_per_delivery']:>11,.1f} us")
    if result["endpoint_cpu_s"] is not None:
        print(f"{'emulator CPU per delivery':40} {1e6 * result['endpoint_cpu_s'] / max(1, result['delivered']):>11,.1f} us")
    if alone is not None:
        print(f"{'gateway alone (in-process provider)':40} {alone['rate']:>10,.0f} /s, "
              f"{alone['gateway_cpu_us_per_delivery']:,.1f} us per delivery ({alone['delivered']:,} delivered)")
    if ceiling_rate is not None:
        print(f"{'emulator ceiling (h2load)':40} {ceiling_rate:>10,.0f} /s ({top.shown} req/s x {args.batch} tokens, "
              f"{top.ok_2xx}/{top.requests} 2xx), emulator "
              f"{1e6 * ceiling_cpu_s / max(1, top.requests * args.batch):,.1f} us/delivery   [{top.command}]")
        print(f"{'pushsvc / emulator ceiling':40} {ratio:>13.2f}")
    else:
        print(f"{'emulator ceiling (h2load)':40} n/a ({top.error[:60]})")
    out.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "context": dataclasses.asdict(context), "args": {k: str(v) for k, v in vars(args).items()},
        "path": "end to end: Send through the dispatcher, HmsProvider, emulator's v2 send endpoint",
        "result": result, "gateway_alone": alone, "ceiling": dataclasses.asdict(top), "ceiling_deliveries_per_s": ceiling_rate,
        "ceiling_emulator_cpu_s": ceiling_cpu_s, "ratio": ratio, "pinned": pinned,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"results: {out}")
    ok = result["delivered"] == args.tokens and (alone is None or alone["delivered"] == args.tokens)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
