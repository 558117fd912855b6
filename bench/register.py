"""RegisterToken rate and latency under ghz, beside a bare grpc.aio echo server on the same machine.

Each server runs in its own process; ghz (a separate Go process) drives it
with `--concurrency` callers. pushsvc runs with `--store` (memory:// by
default) and `--preload` tokens already registered; every request registers
a new FCM token with a device_id. The echo server answers the same bytes
with no work at all, which is the ceiling of a Python grpc.aio server here.
Then pushsvc is driven again at half the rate it reached, for the latency
goal (p99 at half load).

Usage:
    python bench/register.py [-n 20000] [-c 50] [--preload 100000] [--store memory://]
                             [--pushsvc-loop uvloop|asyncio] [--ghz PATH] [--out results.json]

pushsvc's server runs on the loop `pushsvc serve` runs on (the `event_loop`
setting's default, uvloop) unless --pushsvc-loop says otherwise; the echo
always runs on asyncio's, the bare grpc.aio baseline.

ghz: `go install github.com/bojand/ghz/cmd/ghz@v0.120.0` (put it on PATH or pass --ghz).
Prints one table and writes the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a file (python bench/register.py), bench/ is on sys.path instead of the repository root.
sys.path.insert(0, str(ROOT))

from bench.machine import run_context  # noqa: E402

PROTO = ROOT / "protos/pushsvc/v1/push.proto"
ECHO_PROTO = ROOT / "bench/echo.proto"
APP = "bench"
STARTUP_TIMEOUT_S = 120.0


# ------------------------------------------------------------------ servers (run as subprocesses)


async def serve_pushsvc(store: str, preload: int, port_file: Path) -> None:
    """pushsvc with no provider credentials (RegisterToken needs none), `preload` tokens registered."""
    from pushsvc import models
    from pushsvc.bootstrap import build_application, tune_garbage_collector
    from pushsvc.config import Settings

    tune_garbage_collector()  # as `pushsvc serve` and `pushsvc dev` do

    app = build_application(Settings(store_url=store, host="127.0.0.1", port=0), providers={})
    port = await app.start()
    regs = [models.TokenRegistration(APP, f"preload-{i}", models.Platform.FCM, device_id=f"pre-{i}") for i in range(preload)]
    for i in range(0, len(regs), 5000):
        await app.stores.tokens.insert_new(regs[i : i + 5000], app.clock.now())
    del regs
    port_file.write_text(str(port))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await app.stop(1)


async def serve_echo(port_file: Path) -> None:
    """A bare grpc.aio server whose one method returns the request's bytes."""
    import grpc

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "pushsvc.bench.v1.Echo",
        {"Echo": grpc.unary_unary_rpc_method_handler(echo, request_deserializer=None, response_serializer=None)},
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(str(port))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


async def handler_chain_us(store: str, calls: int) -> float:
    """pushsvc's own CPU per RegisterToken, without gRPC: µs per call, best of three rounds.

    The method's handler as the server runs it (its deserializer, the
    telemetry and live-call wrappers, the servicer, the service, the store,
    the serializer), awaited in a loop with a stand-in for grpc's context: the
    part of a call that is pushsvc's, measured by process time, so a busy
    machine barely moves it (the ghz rates above move a lot).
    """
    import logging

    from pushsvc.bootstrap import build_application
    from pushsvc.config import Settings
    from pushsvc.metrics import NULL_METRICS
    from pushsvc.rpc import methods
    from pushsvc.rpc.servicers import PushServicer
    from pushsvc.rpc.telemetry import TelemetryInterceptor
    from pushsvc.throttle import LogThrottle
    from pushsvc.v1 import push_pb2

    class Capture:
        handlers: Any = None

        def add_generic_rpc_handlers(self, handlers: Any) -> None:
            self.handlers = handlers[0]

        def add_registered_method_handlers(self, *_: Any) -> None:
            pass

    class Context:
        done: Any = None

        def invocation_metadata(self) -> tuple[()]:
            return ()

        def code(self) -> None:
            return None

        def add_done_callback(self, callback: Any) -> None:
            self.done = callback

    class Details:
        method = "/pushsvc.v1.PushService/RegisterToken"

    app = build_application(Settings(store_url=store, host="127.0.0.1", port=0), providers={})
    await app.start()
    try:
        capture = Capture()
        methods.add_to_server(PushServicer(app.service, asyncio.Event()), capture,
                              LogThrottle(logging.getLogger("bench"), app.clock, interval_s=1.0))
        handler = capture.handlers.service(Details())
        # As GrpcServer chains them: telemetry outermost, then the live-call gate.
        handler = app.server.calls.wrap(Details.method, handler)
        handler = TelemetryInterceptor(NULL_METRICS, app.clock).wrap(Details.method, handler)
        call, parse, serialize = handler.unary_unary, handler.request_deserializer, handler.response_serializer
        requests = [push_pb2.RegisterTokenRequest(app_id=APP, token=f"chain-{i}", platform=push_pb2.PLATFORM_FCM,
                                                  device_id=f"chain-device-{i}").SerializeToString()
                    for i in range(4 * calls)]
        best = float("inf")
        for round_ in range(4):  # the first round warms up
            started = time.process_time()
            for data in requests[round_ * calls : (round_ + 1) * calls]:
                context = Context()
                serialize(await call(parse(data), context))
                context.done(context)
            if round_:
                best = min(best, 1e6 * (time.process_time() - started) / calls)
        return best
    finally:
        await app.stop(1)


# ------------------------------------------------------------------ the driver


def _default_loop() -> str:
    from pushsvc.config import Settings

    return Settings().event_loop


def start(kind: str, args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port_file = tmp / f"{kind}.port"
    command = [sys.executable, __file__, "--serve", kind, "--port-file", str(port_file),
               "--store", args.store, "--preload", str(args.preload), "--pushsvc-loop", args.pushsvc_loop]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"the {kind} server did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def process_cpu_s(pid: int) -> float:
    """A process's CPU seconds so far (user + system, all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command: state(0) ... utime(11) stime(12), in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ghz(args: argparse.Namespace, port: int, *, proto: Path, call: str, data: str, rps: int = 0,
        server_pid: int = 0) -> dict[str, Any]:
    """One ghz run; returns rate, latencies (ms), status counts and the server's CPU per call.

    The server's CPU per call does not depend on how much of the machine the
    run got, so it compares two servers on a busy machine, where the rates do not.
    """
    command = [args.ghz, "--insecure", "--proto", str(proto), "--call", call, "-d", data,
               "-c", str(args.concurrency), "-n", str(args.requests), "--connections", "1",
               "-O", "json", "--timeout", "10s"]
    if rps:
        command += ["--rps", str(rps)]
    command.append(f"127.0.0.1:{port}")
    cpu_started = process_cpu_s(server_pid) if server_pid else 0.0
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True).stdout
    cpu_s = process_cpu_s(server_pid) - cpu_started if server_pid else 0.0
    report = json.loads(out)
    latency = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    return {
        "rps": report["rps"],
        "count": report["count"],
        "p50_ms": latency.get(50, 0.0),
        "p99_ms": latency.get(99, 0.0),
        "status": report.get("statusCodeDistribution", {}),
        "errors": report.get("errorDistribution", {}),
        "server_cpu_us_per_call": 1e6 * cpu_s / max(1, report["count"]) if server_pid else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--requests", type=int, default=20_000)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--preload", type=int, default=100_000, help="tokens registered before the run")
    parser.add_argument("--store", default="memory://")
    parser.add_argument("--chain-calls", type=int, default=10_000,
                        help="calls per round of the in-process handler-chain measurement")
    parser.add_argument("--ghz", default=shutil.which("ghz") or str(Path.home() / "go/bin/ghz"))
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pushsvc-bench-register.json")
    parser.add_argument("--pushsvc-loop", choices=["uvloop", "asyncio"], default=_default_loop(),
                        help="the event loop pushsvc's server runs on (default: serve's, the `event_loop` setting's default)")
    parser.add_argument("--serve", choices=["pushsvc", "echo"], help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "pushsvc":
        # On the loop `pushsvc serve` runs on (its `event_loop` setting), unless --pushsvc-loop says otherwise.
        from pushsvc import eventloop

        eventloop.run(serve_pushsvc(args.store, args.preload, args.port_file), args.pushsvc_loop)
        return 0
    if args.serve == "echo":
        asyncio.run(serve_echo(args.port_file))
        return 0
    if not Path(args.ghz).exists():
        print(f"ghz not found ({args.ghz}): go install github.com/bojand/ghz/cmd/ghz@v0.120.0", file=sys.stderr)
        return 2
    context = run_context(packages=("grpcio", "protobuf"), tools={"ghz": [args.ghz, "--version"]})
    register = json.dumps({"app_id": APP, "token": "bench-{{.RequestNumber}}-{{.UUID}}", "platform": "PLATFORM_FCM",
                           "device_id": "device-{{.RequestNumber}}"})
    echo_data = json.dumps({"app_id": APP, "token": "bench-{{.RequestNumber}}-{{.UUID}}", "platform": 2,
                            "device_id": "device-{{.RequestNumber}}"})
    with tempfile.TemporaryDirectory() as tmp:
        # The echo runs before and after pushsvc, so a machine whose load
        # changes during the run shows up as two different echo rates.
        proc, port = start("echo", args, Path(tmp))
        try:
            echo_before = ghz(args, port, proto=ECHO_PROTO, call="pushsvc.bench.v1.Echo/Echo", data=echo_data,
                              server_pid=proc.pid)
            proc2, port2 = start("pushsvc", args, Path(tmp))
            try:
                full = ghz(args, port2, proto=PROTO, call="pushsvc.v1.PushService/RegisterToken", data=register,
                           server_pid=proc2.pid)
                half_rps = max(1, int(full["rps"] / 2))
                half = ghz(args, port2, proto=PROTO, call="pushsvc.v1.PushService/RegisterToken", data=register, rps=half_rps)
            finally:
                stop(proc2)
            echo_after = ghz(args, port, proto=ECHO_PROTO, call="pushsvc.bench.v1.Echo/Echo", data=echo_data,
                             server_pid=proc.pid)
        finally:
            stop(proc)
    echo = dict(echo_before, rps=(echo_before["rps"] + echo_after["rps"]) / 2)
    chain_us = asyncio.run(handler_chain_us(args.store, args.chain_calls))
    print(f"RegisterToken under ghz: {args.requests:,} requests, {args.concurrency} concurrent, one connection; "
          f"{args.preload:,} tokens registered first; store {args.store}; pushsvc on {args.pushsvc_loop}, "
          f"the echo on asyncio")
    print(context.header)
    print(f"{'run':38} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server CPU/call':>16}  status")
    for name, r in [("bare grpc.aio echo, before", echo_before), ("bare grpc.aio echo, after", echo_after),
                    ("RegisterToken, full load", full),
                    (f"RegisterToken at half load ({half_rps}/s)", half)]:
        cpu = f"{r['server_cpu_us_per_call']:,.0f} us" if r["server_cpu_us_per_call"] is not None else "-"
        print(f"{name:38} {r['rps']:>9,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {cpu:>16}  {r['status']}")
    print(f"{'RegisterToken / mean echo':38} {full['rps'] / echo['rps']:>9.2f}x")
    echo_cpu = (echo_before["server_cpu_us_per_call"] + echo_after["server_cpu_us_per_call"]) / 2
    print(f"{'pushsvc handler chain, no gRPC':38} {chain_us:>9.1f} us per call (in-process, best of 3)")
    print(f"{'echo CPU / RegisterToken CPU per call':38} {echo_cpu / full['server_cpu_us_per_call']:>9.2f}x"
          f"  (the rate ratio the servers' CPU alone allows; it holds on a busy machine)")
    args.out.write_text(json.dumps({"context": dataclasses.asdict(context), "args": {k: str(v) for k, v in vars(args).items()},
                                    "echo_before": echo_before, "echo_after": echo_after, "full": full, "half": half,
                                    "ratio": full["rps"] / echo["rps"],
                                    "handler_chain_us": chain_us,
                                    "cpu_ratio": echo_cpu / full["server_cpu_us_per_call"],
                                    "load_average_after": os.getloadavg()},
                                   indent=2))
    print(f"results: {args.out}")
    ok = all(set(r["status"]) == {"OK"} for r in (echo_before, echo_after, full, half))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
