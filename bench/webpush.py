"""Web Push fan-out: Send to N subscriptions through the dispatcher, RFC 8291 encryption included, against nginx.

End to end, as `bench/fanout.py` does it: the gateway runs in this process on
`memory://`, N Web Push subscriptions are registered (each with its own P-256
key pair and auth secret, generated up front and not timed), one Send targets
all of them, and the run ends when every receipt is written. Every delivery
goes through `WebPushProvider`: encrypted for its subscription (aes128gcm),
VAPID-signed (cached per origin) and POSTed to the static nginx HTTP/2
endpoint's `POST /wp/<id>` route (bench/nginx.py), which answers 201.

Peer, in the same run: pywebpush (`webpush()`, its documented one-call API,
one message at a time with one `requests.Session`) sends a bounded sample of
the same subscriptions to the same endpoint. Its rate is the sample over its
wall time, and its CPU per message is this process's CPU over that window.

Ceiling: h2load posting one encrypted Web Push request to the same route.

Usage:
    python -m bench.webpush [-n 100000] [--peer-n 2000] [--h2load-n 50000] [--resend] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a file (python bench/webpush.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from bench import h2load  # noqa: E402
from bench.channel_fanout import APP_ID, fan_out  # noqa: E402
from bench.fanout import MESSAGE  # noqa: E402
from bench.machine import run_context  # noqa: E402
from bench.nginx import NginxEndpoint  # noqa: E402
from pushsvc import models  # noqa: E402
from pushsvc.channels.webpush import crypto  # noqa: E402
from pushsvc.channels.webpush.provider import render_webpush  # noqa: E402
from pushsvc.config import AppSettings  # noqa: E402
from pushsvc.config.schema import WebPushAppSettings  # noqa: E402

GOAL_RATIO = 5.0
"""Issue 19: pushsvc's Web Push fan-out at least 5x pywebpush's rate in the same run."""
SUBJECT = "mailto:bench@pushsvc.invalid"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_subscriptions(base_url: str, n: int) -> list[dict[str, Any]]:
    """N subscriptions as a browser serializes them: own endpoint, own P-256 key pair and auth secret."""
    subscriptions = []
    for i in range(n):
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        p256dh = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        subscriptions.append({"endpoint": f"{base_url}/wp/bench-{i}", "expirationTime": None,
                              "keys": {"p256dh": _b64(p256dh), "auth": _b64(os.urandom(16))}})
    return subscriptions


def write_vapid_key(directory: Path) -> Path:
    """A fresh VAPID key (EC P-256, PKCS#8 PEM), read by pushsvc and pywebpush alike."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / "vapid.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def worker_cpu_s(nginx: NginxEndpoint) -> float:
    """nginx's workers' CPU seconds (user + system, from /proc/<pid>/stat)."""
    total = 0.0
    for pid in nginx.worker_pids():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_pywebpush(subscriptions: list[dict[str, Any]], vapid_key: Path, ca_file: Path) -> dict[str, Any]:
    """pywebpush's `webpush()` once per subscription, in order, on one Session; every answer checked."""
    import requests
    from py_vapid import Vapid
    from pywebpush import WebPushException, webpush

    payload = render_webpush(MESSAGE).body["payload"]
    vapid = Vapid.from_file(private_key_file=str(vapid_key))
    session = requests.Session()
    session.verify = str(ca_file)
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment would override verify
    errors: dict[str, int] = {}
    # Warm-up: the connection and the first signature, not measured.
    webpush(subscriptions[0], payload, vapid_private_key=vapid, vapid_claims={"sub": SUBJECT}, ttl=60,
            requests_session=session)
    started = time.perf_counter()
    cpu_started = time.process_time()
    for sub in subscriptions:
        try:
            response = webpush(sub, payload, vapid_private_key=vapid, vapid_claims={"sub": SUBJECT}, ttl=60,
                               requests_session=session)
            if response.status_code != 201:
                errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
        except (WebPushException, requests.RequestException) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    session.close()
    sent = len(subscriptions)
    return {"sent": sent, "ok": sent - sum(errors.values()), "errors": errors, "seconds": seconds,
            "rate": sent / seconds if seconds else 0.0, "cpu_us_per_send": 1e6 * cpu_s / max(1, sent)}


def ceiling(nginx: NginxEndpoint, subscription: dict[str, Any], requests: int) -> h2load.Ceiling:
    """h2load posting one encrypted push message, with pushsvc's headers, to the nginx route."""
    rendered = render_webpush(MESSAGE)
    keys = subscription["keys"]
    body = crypto.encrypt(str(rendered.body["payload"]).encode(),
                          base64.urlsafe_b64decode(keys["p256dh"] + "=="), base64.urlsafe_b64decode(keys["auth"] + "=="))
    headers = ["content-type: application/octet-stream", "content-encoding: aes128gcm", "ttl: 2419200",
               *(f"{k}: {v}" for k, v in rendered.body["headers"].items())]
    return h2load.measure(subscription["endpoint"], headers, body, requests=requests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--subscriptions", type=int, default=100_000)
    parser.add_argument("--peer-n", type=int, default=2000, help="messages pywebpush sends (one at a time)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=500, help="max concurrent requests per provider")
    parser.add_argument("--h2load-n", type=int, default=50_000)
    parser.add_argument("--resend", action="store_true",
                        help="send again to the same subscriptions once the first Send has finished, measured the same way")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime())
    out = args.out or Path(__file__).parent / "results" / f"webpush-{stamp}-nginx-{args.subscriptions}.json"
    context = run_context(packages=("pycurl", "cryptography", "pywebpush", "py-vapid", "http-ece"),
                          tools={"h2load": ["h2load", "--version"]})
    with tempfile.TemporaryDirectory() as tmp, NginxEndpoint() as nginx:
        vapid_key = write_vapid_key(Path(tmp))
        made = time.perf_counter()
        subscriptions = make_subscriptions(nginx.base_url, args.subscriptions)
        made_s = time.perf_counter() - made
        registrations = [models.TokenRegistration(APP_ID, json.dumps(s, separators=(",", ":")), models.Platform.WEBPUSH)
                         for s in subscriptions]
        app = AppSettings(webpush=WebPushAppSettings(
            vapid_private_key_file=vapid_key, subject=SUBJECT, allowed_hosts=("127.0.0.1",), ca_file=nginx.ca_file,
        ))
        load_before = os.getloadavg()
        result = asyncio.run(fan_out(app, registrations, batch=args.batch, in_flight=args.in_flight,
                                     endpoint_cpu_s=lambda: worker_cpu_s(nginx), resend=args.resend))
        del registrations
        peer = run_pywebpush(subscriptions[: args.peer_n], vapid_key, nginx.ca_file)
        top = ceiling(nginx, subscriptions[0], args.h2load_n)
    ratio = result["rate"] / peer["rate"] if peer["rate"] else None
    print(f"Web Push fan-out: Send to {args.subscriptions:,} subscriptions through the dispatcher, "
          "encryption included, static nginx HTTP/2 endpoint")
    print(context.header)
    print(f"load average before the fan-out: {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"concurrency: {args.in_flight} requests in flight, batches of {args.batch}; "
          f"{args.subscriptions:,} key pairs made up front in {made_s:.1f} s (not timed)")
    print(f"{'what':40} {'value':>14}")
    print(f"{'delivered':40} {result['delivered']:>14,} ({result['state']})")
    print(f"{'all receipts written after':40} {result['seconds']:>12,.2f} s")
    print(f"{'pushsvc throughput':40} {result['rate']:>10,.0f} /s")
    print(f"{'gateway CPU per delivery':40} {result['gateway_cpu_us_per_delivery']:>11,.0f} us")
    if result["endpoint_cpu_s"] is not None:
        print(f"{'nginx worker CPU per delivery':40} {1e6 * result['endpoint_cpu_s'] / max(1, result['delivered']):>11,.1f} us")
    print(f"{'garbage collector, during fan-out':40} {result['gc_s']:>12,.2f} s")
    if "resend" in result:
        again = result["resend"]
        print(f"{'resend to the same subscriptions':40} {again['rate']:>10,.0f} /s, "
              f"{again['gateway_cpu_us_per_delivery']:,.0f} us CPU per delivery, {again['delivered']:,} delivered")
    print(f"{'pywebpush (one at a time), sent/ok':40} {peer['sent']:>8,}/{peer['ok']:,}")
    print(f"{'pywebpush throughput':40} {peer['rate']:>10,.0f} /s")
    print(f"{'pywebpush CPU per message':40} {peer['cpu_us_per_send']:>11,.0f} us")
    shown = f"{top.shown} /s ({top.ok_2xx}/{top.requests} 2xx)" if top.req_per_s else f"n/a ({top.error[:60]})"
    print(f"{'nginx ceiling (h2load, Web Push POST)':40} {shown:>14}   [{top.command}]")
    if ratio is not None:
        met = "met" if ratio >= GOAL_RATIO and not peer["errors"] else "missed"
        print(f"{'pushsvc / pywebpush':40} {ratio:>13.1f}x   goal >= {GOAL_RATIO:.0f}x: {met}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": dataclasses.asdict(context), "args": {k: str(v) for k, v in vars(args).items()},
                               "path": "end to end: Send through the dispatcher, WebPushProvider, nginx /wp/",
                               "result": result, "peer": peer, "ratio": ratio, "goal_ratio": GOAL_RATIO,
                               "ceiling": dataclasses.asdict(top), "load_average_before": load_before,
                               "load_average_after": os.getloadavg()}, indent=2))
    print(f"results: {out}")
    ok = result["delivered"] == args.subscriptions and peer["ok"] == peer["sent"]
    ok = ok and result.get("resend", {}).get("delivered", args.subscriptions) == args.subscriptions
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
