"""Receipt webhooks: a receiver down for a while, then back; and what a webhook costs the fan-out.

pushsvc runs in this process (memory store, an in-process provider that
answers DELIVERED at once, as `bench/fanout.py --null-provider`), so the
fan-out rate measures the gateway alone. The receiver is a plain-HTTP server
on loopback in a child process (`--receiver`), which checks every signature
and records every POST. Three cases, each a fresh Application and a Send to N
tokens:

- `none` (the peer): no webhook configured;
- `up`: one webhook, the receiver answering 200;
- `down`: the receiver answers 503 from before the Send until `--down-s`
  seconds after it, then 200.

For each: the fan-out's rate and CPU per delivery; for the webhook cases,
whether the receiver got every receipt (0 lost), the duplicates (receipts
accepted twice, and the most in one repeated batch), the POSTs refused while
down (no hot loop), and for `down` how long after the receiver came back the
last receipt arrived (for `up`, how long after the Send). Each case runs in a
fresh child process, so none inherits another's heap. The endpoint's retry settings are the defaults
(initial_backoff_s 1, max_backoff_s 300) unless given.

Usage:
    python -m bench.webhooks [-n 20000] [--down-s 60] [--max-batch 100] [--repeat 1] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.fanout import NullProvider
from bench.machine import run_context
from pushsvc import models
from pushsvc.bootstrap import build_application
from pushsvc.config import AppSettings, DispatchSettings, FcmAppSettings, Settings, WebhookSettings

APP = "bench"
CASES = ("none", "up", "down")
SECRET_ENV = "PUSHSVC_BENCH_WEBHOOK_SECRET"
SECRET = b"bench-webhook-secret-0123456789abcdef"
RUN_TIMEOUT_S = 900.0


# ------------------------------------------------------------------ the receiver (child process)


def receiver_main(port_file: Path, down_file: Path, record: Path) -> None:
    """Serves until killed: 503 while `down_file` exists, else 200; one JSON line per POST in `record`."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would

        def do_POST(self) -> None:  # noqa: N802  # the name http.server dispatches to
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            mid, ts = self.headers.get("webhook-id", ""), self.headers.get("webhook-timestamp", "")
            expected = "v1," + base64.b64encode(
                hmac.new(SECRET, f"{mid}.{ts}.".encode() + raw, hashlib.sha256).digest()
            ).decode()
            status = 503 if down_file.exists() else 200
            cursors = [r["cursor"] for r in json.loads(raw)["data"]["receipts"]]
            line = json.dumps({"id": mid, "status": status, "sig_ok": self.headers.get("webhook-signature") == expected,
                               "cursors": cursors, "at": time.time()})
            with lock, record.open("a") as out:  # opened per POST: the bench truncates it between cases
                out.write(line + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # http.server's signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


class Receiver:
    """The receiver child process, and its record read back."""

    def __init__(self, workdir: Path, *, start: bool = True) -> None:
        self.port_file = workdir / "port"
        self.down_file = workdir / "down"
        self.record = workdir / "posts.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None
        if not start:
            self.url = f"http://127.0.0.1:{self.port_file.read_text()}/receipts"
            return
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.webhooks", "--receiver", str(workdir)], cwd=Path(__file__).resolve().parent.parent
        )
        deadline = time.monotonic() + 30
        while not self.port_file.exists() or not self.port_file.read_text():
            assert time.monotonic() < deadline and self.proc.poll() is None, "the receiver did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port_file.read_text()}/receipts"

    @classmethod
    def attach(cls, workdir: Path) -> Receiver:
        """The receiver another process started (a case's child process)."""
        return cls(workdir, start=False)

    def down(self, down: bool) -> None:
        if down:
            self.down_file.touch()
        else:
            self.down_file.unlink(missing_ok=True)

    def posts(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.endswith("}")]

    def reset(self) -> None:
        self.record.unlink(missing_ok=True)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)


# ------------------------------------------------------------------ one case


def settings(args: argparse.Namespace, receiver: Receiver | None) -> Settings:
    hooks = ()
    if receiver is not None:
        hooks = (WebhookSettings(
            url=receiver.url, name="bench", secret_env=SECRET_ENV, max_batch=args.max_batch,
            max_delay_ms=args.max_delay_ms, initial_backoff_s=args.initial_backoff_s, max_backoff_s=args.max_backoff_s,
        ),)
    # FCM settings only so the app exists; the in-process provider answers every delivery.
    app = AppSettings(app_id=APP, fcm=FcmAppSettings(service_account_env="UNUSED"), webhooks=hooks)
    return Settings(store_url="memory://", host="127.0.0.1", port=0, apps={APP: app},
                    dispatch=DispatchSettings(batch_size=500, lease_s=60, replica_id="bench"))


async def run_case(case: str, args: argparse.Namespace, receiver: Receiver | None) -> dict[str, Any]:
    if receiver is not None:
        receiver.reset()
        receiver.down(case == "down")
    providers = {(APP, p): NullProvider(p) for p in models.PLATFORMS}
    app = build_application(settings(args, receiver), providers=providers, metrics=False)
    await app.start()
    try:
        regs = [models.TokenRegistration(APP, f"bench-{i}", models.Platform.FCM) for i in range(args.tokens)]
        for i in range(0, len(regs), 5000):
            await app.stores.tokens.insert_new(regs[i : i + 5000], app.clock.now())
        await asyncio.sleep(0.5)  # the webhook has taken its lease and starts at the log's end
        started = time.perf_counter()
        cpu_started = time.process_time()
        sent = await app.service.send(models.SendCommand(APP, models.Target(kind="all", all=True), models.Message(title="b")))
        while True:
            view = await app.service.get_notification(APP, sent.notification_id)
            if view.state.finished or time.perf_counter() - started > RUN_TIMEOUT_S:
                break
            await asyncio.sleep(0.01)
        fan_out_s = time.perf_counter() - started
        fan_out_cpu_s = time.process_time() - cpu_started
        row: dict[str, Any] = {
            "case": case, "tokens": args.tokens, "delivered": view.delivered, "fan_out_s": fan_out_s,
            "rate": view.delivered / fan_out_s, "cpu_us_per_delivery": fan_out_cpu_s / max(1, view.delivered) * 1e6,
        }
        if receiver is None:
            return row
        sent_at = time.time() - (time.perf_counter() - started)
        back_at = None
        if case == "down":
            await asyncio.sleep(max(0.0, args.down_s - (time.perf_counter() - started)))
            receiver.down(False)
            back_at = time.time()
        deadline = time.perf_counter() + RUN_TIMEOUT_S
        while True:
            accepted = [p for p in receiver.posts() if p["status"] == 200]
            unique = {c for p in accepted for c in p["cursors"]}
            if len(unique) >= args.tokens or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # a late duplicate would show now
        posts = receiver.posts()
        accepted = [p for p in posts if p["status"] == 200]
        total = sum(len(p["cursors"]) for p in accepted)
        by_id: dict[str, int] = {}
        for p in accepted:
            by_id[p["id"]] = by_id.get(p["id"], 0) + 1
        repeated = [p for p in accepted if by_id[p["id"]] > 1]
        row.update({
            "received": len(unique),
            "lost": args.tokens - len(unique),
            "duplicates": total - len(unique),
            "largest_repeated_batch": max((len(p["cursors"]) for p in repeated), default=0),
            "posts_accepted": len(accepted),
            "posts_refused": sum(1 for p in posts if p["status"] != 200),
            "signatures_ok": all(p["sig_ok"] for p in posts),
            "last_receipt_after_s": (max(p["at"] for p in accepted) - (back_at or sent_at)) if accepted else None,
            "down_s": args.down_s if case == "down" else 0,
        })
        return row
    finally:
        await app.stop(5)


def run_child(case: str, args: argparse.Namespace, receiver_dir: Path) -> dict[str, Any]:
    """One case in a fresh process, so that no case inherits another's heap."""
    argv = [sys.executable, "-m", "bench.webhooks", "--child", case, "--receiver-dir", str(receiver_dir),
            "-n", str(args.tokens), "--down-s", str(args.down_s), "--max-batch", str(args.max_batch),
            "--max-delay-ms", str(args.max_delay_ms), "--initial-backoff-s", str(args.initial_backoff_s),
            "--max-backoff-s", str(args.max_backoff_s)]
    proc = subprocess.run(argv, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S * 2, check=True)
    return dict(json.loads(proc.stdout.splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tokens", type=int, default=20_000)
    parser.add_argument("--down-s", type=float, default=60.0, help="how long the receiver answers 503, from the Send")
    parser.add_argument("--max-batch", type=int, default=100)
    parser.add_argument("--max-delay-ms", type=int, default=1000)
    parser.add_argument("--initial-backoff-s", type=float, default=1.0)
    parser.add_argument("--max-backoff-s", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pushsvc-bench-webhooks.json")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case, alternating (none, up, down, none, ...)")
    parser.add_argument("--receiver", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--receiver-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver is not None:
        receiver_main(args.receiver / "port", args.receiver / "down", args.receiver / "posts.jsonl")
        return 0
    os.environ[SECRET_ENV] = SECRET.decode()
    if args.child is not None:
        receiver = Receiver.attach(args.receiver_dir) if args.child != "none" else None
        print(json.dumps(asyncio.run(run_case(args.child, args, receiver))))
        return 0
    context = run_context(packages=("httpx",))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        receiver = Receiver(Path(tmp))
        try:
            for _ in range(args.repeat):
                for case in CASES:
                    rows.append(run_child(case, args, Path(tmp)))
        finally:
            receiver.close()
    print(f"Receipt webhooks: Send to {args.tokens:,} tokens, in-process provider, memory store; "
          f"receiver on loopback (HTTP), down {args.down_s:.0f} s in case `down`")
    print(context.header)
    print(f"webhook: max_batch {args.max_batch}, max_delay_ms {args.max_delay_ms}, "
          f"backoff {args.initial_backoff_s} s doubling to {args.max_backoff_s} s")
    print(f"{'case':6} {'fan-out/s':>10} {'CPU µs/dlv':>11} {'lost':>6} {'dups':>6} {'max rep':>8} {'refused':>8} "
          f"{'sig ok':>7} {'last receipt':>13}")
    base = statistics.median(r["rate"] for r in rows if r["case"] == "none")
    for r in rows:
        last = r.get("last_receipt_after_s")
        print(f"{r['case']:6} {r['rate']:>10,.0f} {r['cpu_us_per_delivery']:>11.1f} {r.get('lost', '-')!s:>6} "
              f"{r.get('duplicates', '-')!s:>6} {r.get('largest_repeated_batch', '-')!s:>8} {r.get('posts_refused', '-')!s:>8} "
              f"{r.get('signatures_ok', '-')!s:>7} {f'{last:.1f} s' if last is not None else '-':>13}")
    for case in CASES[1:]:
        rate = statistics.median(r["rate"] for r in rows if r["case"] == case)
        cpu = statistics.median(r["cpu_us_per_delivery"] for r in rows if r["case"] == case)
        base_cpu = statistics.median(r["cpu_us_per_delivery"] for r in rows if r["case"] == "none")
        print(f"medians, {case} / none: fan-out rate {rate / base:.2f}, CPU per delivery {cpu / base_cpu:.2f}")
    record = {"context": context.__dict__, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "rows": rows}
    args.out.write_text(json.dumps(record, indent=2, default=str))
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
