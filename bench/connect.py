"""CPU per RegisterToken: Connect JSON over HTTP/1.1 (h2load) against gRPC (ghz), on one pushsvc.

One pushsvc process serves both ports (memory:// store, no providers). The
two load tools take turns, `--rounds` times each (gRPC, Connect, gRPC,
Connect, ...), so a change in the machine's load shows up as rounds that
differ. For each run the server's own CPU time (user + system, from
/proc/PID/stat) is divided by the requests answered: the clients' CPU is not
counted. Every request registers the same token, on both paths (h2load sends
one body), so both do the same store work: an upsert of an existing token.

The goal (issue 24): the Connect JSON path costs at most 20% more server CPU
per RegisterToken than the gRPC path.

Usage:
    python bench/connect.py [-n 20000] [-c 50] [--rounds 2] [--ghz PATH] [--out results.json]

ghz: `go install github.com/bojand/ghz/cmd/ghz@v0.120.0`; h2load: Debian's nghttp2-client.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a file (python bench/connect.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(ROOT))

from bench.machine import run_context  # noqa: E402

PROTO = ROOT / "protos/pushsvc/v1/push.proto"
APP = "bench"
STARTUP_TIMEOUT_S = 120.0
REQUEST = {"app_id": APP, "token": "bench-token-1", "platform": "PLATFORM_FCM", "device_id": "bench-device-1"}
GOAL = 1.20


async def serve(port_file: Path) -> None:
    """pushsvc with both ports and no provider credentials (RegisterToken needs none)."""
    from pushsvc.bootstrap import build_application
    from pushsvc.config import Settings

    app = build_application(Settings(store_url="memory://", host="127.0.0.1", port=0), providers={}, connect=True)
    await app.start()
    port_file.write_text(f"{app.port} {app.connect_port}")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await app.stop(1)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ghz(exe: str, port: int, n: int, c: int) -> dict[str, Any]:
    command = [exe, "--insecure", "--proto", str(PROTO), "--call", "pushsvc.v1.PushService/RegisterToken",
               "-d", json.dumps(REQUEST), "-c", str(min(c, n)), "-n", str(n), "--connections", "1", "-O", "json",
               "--timeout", "10s", f"127.0.0.1:{port}"]
    report = json.loads(subprocess.run(command, capture_output=True, text=True, timeout=900, check=True).stdout)
    status = report.get("statusCodeDistribution", {})
    return {"tool": "ghz", "requests": report["count"], "ok": status.get("OK", 0), "rps": report["rps"], "status": status}


def h2load(port: int, n: int, c: int, body: Path) -> dict[str, Any]:
    # h2load writes an HTTP/1.1 request's headers and body apart, and the body then waits for the
    # server's delayed ACK (about 40 ms on Linux): each connection makes ~20 requests/s whatever
    # the server does, hence many connections. The server's CPU per request is what is compared.
    command = ["h2load", "--h1", "-n", str(n), "-c", str(min(c, n)), "-d", str(body), "-H", "content-type: application/json",
               f"http://127.0.0.1:{port}/pushsvc.v1.PushService/RegisterToken"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True).stdout
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    if not (done and codes and rate):
        raise RuntimeError(f"unexpected h2load output:\n{out}")
    return {"tool": "h2load --h1", "requests": int(done.group(3)), "ok": int(codes.group(1)), "rps": float(rate.group(1)),
            "status": {"2xx": int(codes.group(1)), "4xx": int(codes.group(3)), "5xx": int(codes.group(4))}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--requests", type=int, default=20_000)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--h1-connections", type=int, default=200, help="h2load's HTTP/1.1 connections (one request in flight each)")
    parser.add_argument("--ghz", default=shutil.which("ghz") or str(Path.home() / "go/bin/ghz"))
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pushsvc-bench-connect.json")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.port_file))
        return 0
    if not Path(args.ghz).exists() or shutil.which("h2load") is None:
        print("needs ghz (go install github.com/bojand/ghz/cmd/ghz@v0.120.0) and h2load (apt-get install nghttp2-client)",
              file=sys.stderr)
        return 2
    context = run_context(packages=("grpcio", "connectrpc", "uvicorn", "httptools"),
                          tools={"ghz": [args.ghz, "--version"], "h2load": ["h2load", "--version"]})
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "ports"
        body = Path(tmp) / "body.json"
        body.write_text(json.dumps(REQUEST))
        proc = subprocess.Popen([sys.executable, __file__, "--serve", "--port-file", str(port_file)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("pushsvc did not start")
                time.sleep(0.05)
            grpc_port, connect_port = map(int, port_file.read_text().split())
            # A short warm-up on each path, not counted: imports, first connections, caches.
            warm = max(1, min(500, args.requests // 10))
            ghz(args.ghz, grpc_port, warm, args.concurrency)
            h2load(connect_port, warm, args.h1_connections, body)
            for round_no in range(args.rounds):
                for path in ("grpc", "connect"):
                    before = cpu_s(proc.pid)
                    if path == "grpc":
                        run = ghz(args.ghz, grpc_port, args.requests, args.concurrency)
                    else:
                        run = h2load(connect_port, args.requests, args.h1_connections, body)
                    cpu = cpu_s(proc.pid) - before
                    run.update(path=path, round=round_no + 1, server_cpu_s=cpu,
                               server_cpu_us_per_req=cpu / max(run["ok"], 1) * 1e6)
                    runs.append(run)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    per = {p: sum(r["server_cpu_s"] for r in runs if r["path"] == p) / max(sum(r["ok"] for r in runs if r["path"] == p), 1) * 1e6
           for p in ("grpc", "connect")}
    ratio = per["connect"] / per["grpc"] if per["grpc"] else float("nan")
    print(f"RegisterToken, server CPU per request: gRPC (ghz, {args.concurrency} concurrent on one connection) against "
          f"Connect JSON (h2load --h1, {args.h1_connections} connections); {args.requests:,} requests a run; store memory://")
    print(context.header)
    print(f"{'run':22} {'calls/s':>9} {'server CPU s':>13} {'us/call':>9}  status")
    for r in runs:
        print(f"{r['path'] + ' #' + str(r['round']):22} {r['rps']:>9,.0f} {r['server_cpu_s']:>13.2f} "
              f"{r['server_cpu_us_per_req']:>9.0f}  {r['status']}")
    print(f"Connect / gRPC CPU per RegisterToken: {ratio:.2f}x (goal <= {GOAL:.2f}x: {'met' if ratio <= GOAL else 'missed'})")
    args.out.write_text(json.dumps({"context": dataclasses.asdict(context), "args": {k: str(v) for k, v in vars(args).items()},
                                    "runs": runs, "cpu_us_per_req": per, "ratio": ratio, "goal": GOAL}, indent=2))
    print(f"results: {args.out}")
    ok = all(r["ok"] == r["requests"] == args.requests for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
