"""pushsvc on PostgreSQL: the goals of the PostgreSQL adapter, each against its peer measured in the same run.

Every run starts its own throw-away cluster with PostgreSQL's durable
defaults (bench/pgserver.py) and the static nginx HTTP/2 endpoint of
bench/nginx.py. Subcommands:

  fanout    bench.fanout on memory:// and on postgresql://, alternating, N tokens (50/50 APNs/FCM):
            rate, gateway CPU and PostgreSQL CPU per delivery; goal: postgres >= 0.5x memory
  register  bench.register (ghz, 50 concurrent, --preload tokens registered) on memory:// and postgresql://:
            goal: postgres >= 0.5x memory, p99 <= 50 ms
  scaleout  one, then two `pushsvc serve` replicas on one PostgreSQL, N tokens: rate and CPU per
            delivery of every process; goal: two >= 1.3x one
  replay    two replicas deliver N tokens, then StreamReceipts replays the completed notification
            from the start: goal <= 5 s for 20k
  crash     tests/pipeline/test_crash.py on PostgreSQL, --runs times: lost, duplicates against the
            exact bound, leases lost to racing claims, restart to resumed delivery

Usage:
    python -m bench.postgres fanout [-n 100000] [--rounds 2]
    python -m bench.postgres register [-n 20000] [--preload 100000]
    python -m bench.postgres scaleout [-n 200000]
    python -m bench.postgres replay [-n 20000]
    python -m bench.postgres crash [--runs 10] [--tokens 20000]
Each prints its table and writes bench/results/pg-<subcommand>-<time>.json (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.machine import run_context
from bench.nginx import NginxEndpoint
from bench.pgserver import PostgresServer, tree_cpu_s
from pushsvc import models
from pushsvc.emulator import make_demo_credentials
from pushsvc.storage import open_stores
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
APP = "bench"
RESULTS = ROOT / "bench/results"


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%MZ", time.gmtime())


def _write(args: argparse.Namespace, name: str, record: dict[str, Any]) -> None:
    out = Path(args.out) if args.out else RESULTS / f"pg-{name}-{_stamp()}.json"
    out.write_text(json.dumps(record, indent=2, default=str))
    print(f"results: {out}")


# ------------------------------------------------------------------ fanout, register: the existing benches twice


def _run_json(command: list[str], out: Path, timeout_s: float) -> dict[str, Any]:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(command[:4])}... failed ({proc.returncode})")
    return dict(json.loads(out.read_text()))


def fanout(args: argparse.Namespace) -> int:
    rows: dict[str, list[dict[str, Any]]] = {"memory": [], "postgres": []}
    with PostgresServer() as pg, tempfile.TemporaryDirectory() as tmp:
        ctx = run_context(packages=("asyncpg", "grpcio"))
        for r in range(args.rounds):
            for store in ("memory", "postgres"):
                out = Path(tmp) / f"{store}-{r}.json"
                url = "memory://bench" if store == "memory" else pg.store_url()
                command = [sys.executable, "-m", "bench.fanout", "--endpoint", "nginx", "-n", str(args.n),
                           "--store", url, "--out", str(out)]
                if store == "postgres":
                    command += ["--server-pid", str(pg.pid)]
                rows[store].append(_run_json(command, out, 3600)["result"])
    print(ctx.header)
    print(f"fan-out to {args.n:,} tokens (50/50), static nginx endpoint, {args.rounds} alternating rounds (min–max)")
    summary = {}
    for store, results in rows.items():
        rates = [x["rate"] for x in results]
        gw = [1e6 * x["gateway_cpu_s"] / max(1, x["delivered"]) for x in results]
        db = [1e6 * (x["store_server_cpu_s"] or 0) / max(1, x["delivered"]) for x in results]
        summary[store] = {"rate": rates, "gateway_cpu_us": gw, "postgres_cpu_us": db}
        print(f"{store:9} {min(rates):8,.0f}–{max(rates):<8,.0f}/s  gateway CPU {min(gw):4.0f}–{max(gw):<4.0f} µs/delivery"
              f"  PostgreSQL CPU {min(db):4.0f}–{max(db):<4.0f} µs/delivery")
    ratios = [p / m for p, m in zip(summary["postgres"]["rate"], summary["memory"]["rate"], strict=True)]
    print(f"postgres / memory, per round: {', '.join(f'{x:.2f}x' for x in ratios)}  (goal >= 0.5x)")
    _write(args, "fanout", {"context": ctx.__dict__, "n": args.n, "rows": rows, "ratios": ratios})
    return 0 if all(x["delivered"] == args.n for v in rows.values() for x in v) else 1


def register(args: argparse.Namespace) -> int:
    rows: dict[str, dict[str, Any]] = {}
    with PostgresServer() as pg, tempfile.TemporaryDirectory() as tmp:
        ctx = run_context(packages=("asyncpg", "grpcio"))
        for store in ("memory", "postgres"):
            out = Path(tmp) / f"{store}.json"
            url = "memory://bench" if store == "memory" else pg.store_url()
            rows[store] = _run_json([sys.executable, "bench/register.py", "-n", str(args.n), "-c", "50",
                                     "--preload", str(args.preload), "--store", url, "--out", str(out)], out, 3600)
    print(ctx.header)
    m, p = rows["memory"]["full"], rows["postgres"]["full"]
    print(f"RegisterToken, ghz 50 concurrent, {args.n:,} calls, {args.preload:,} registered first")
    for name, r in (("memory", m), ("postgres", p)):
        print(f"{name:9} {r['rps']:8,.0f}/s  p50 {r['p50_ms']:5.1f} ms  p99 {r['p99_ms']:5.1f} ms  {r['status']}")
    print(f"postgres / memory: {p['rps'] / m['rps']:.2f}x (goal >= 0.5x); postgres p99 {p['p99_ms']:.1f} ms (goal <= 50 ms)")
    _write(args, "register", {"context": ctx.__dict__, "rows": rows})
    return 0


# ------------------------------------------------------------------ replicas: scaleout and replay


def _toml(value: object) -> str:
    return json.dumps(str(value))


class Replica:
    """One `pushsvc serve` process on the shared store."""

    def __init__(
        self, name: str, store_url: str, creds: Any, nginx: NginxEndpoint, workdir: Path, partition_size: int = 5000
    ) -> None:
        self.name = name
        self.port = _free_port()
        self.config = workdir / f"{name}.toml"
        self.log = workdir / f"{name}.log"
        base, ca = nginx.base_url, nginx.ca_file
        self.config.write_text(
            f"store_url = {_toml(store_url)}\nhost = \"127.0.0.1\"\nport = {self.port}\nmetrics_port = 0\n"
            f"log_level = \"WARNING\"\n"
            f"[dispatch]\nreplica_id = {_toml(name)}\nworkers = 2\nbatch_size = 500\npartition_size = {partition_size}\n"
            f"[apps.{APP}.apns]\nbundle_id = {_toml(creds.apns_bundle_id)}\nkey_file = {_toml(creds.apns_key_file)}\n"
            f"key_id = {_toml(creds.apns_key_id)}\nteam_id = {_toml(creds.apns_team_id)}\n"
            f"production_url = {_toml(base)}\nsandbox_url = {_toml(base)}\nca_file = {_toml(ca)}\n"
            f"[apps.{APP}.fcm]\nservice_account_file = {_toml(creds.fcm_service_account_file)}\n"
            f"project_id = {_toml(creds.fcm_project_id)}\nbase_url = {_toml(base)}\nca_file = {_toml(ca)}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "pushsvc"), "serve", "--config", str(self.config), "--insecure-no-auth"],
                stdout=out, stderr=subprocess.STDOUT,
            )

    def cpu_s(self) -> float:
        assert self.proc is not None
        return tree_cpu_s(self.proc.pid)

    async def serving(self) -> None:
        deadline = time.monotonic() + 60
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
                try:
                    if (await health.Check(health_pb2.HealthCheckRequest(), timeout=1)).status == 1:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} never became SERVING")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(store_url: str, n: int) -> None:
    stores = open_stores(store_url, timeout_ms=60_000)
    await stores.prepare()
    try:
        half = n // 2
        regs = [models.TokenRegistration(APP, f"{i:064x}", models.Platform.APNS) for i in range(half)]
        regs += [models.TokenRegistration(APP, f"bench-{i}", models.Platform.FCM) for i in range(n - half)]
        for i in range(0, n, 10_000):
            await stores.tokens.insert_new(regs[i : i + 10_000], datetime.now(UTC))
    finally:
        stores.close()


async def _fan_out(replicas: list[Replica], pg: PostgresServer, nginx: NginxEndpoint, n: int) -> dict[str, Any]:
    """Send to all from the first replica; waits for completion; rate and every process's CPU."""
    workers = nginx.worker_pids()
    cpu0 = {r.name: r.cpu_s() for r in replicas}
    pg0, nginx0 = pg.cpu_s(), sum(tree_cpu_s(p) for p in workers)
    started = time.perf_counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{replicas[0].port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        sent = await stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=pb.Message(title="bench")), timeout=120)
        while True:
            reply = await stub.GetNotification(pb.GetNotificationRequest(app_id=APP, notification_id=sent.notification_id))
            n_ = reply.notification
            if n_.state in (pb.NOTIFICATION_STATE_COMPLETED, pb.NOTIFICATION_STATE_FAILED):
                break
            if time.perf_counter() - started > 3600:
                raise RuntimeError("the fan-out did not finish within an hour")
            await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    delivered = n_.delivered
    cpu = {r.name: r.cpu_s() - cpu0[r.name] for r in replicas}
    return {
        "notification_id": sent.notification_id,
        "targeted": sent.targeted,
        "delivered": delivered,
        "seconds": elapsed,
        "rate": delivered / elapsed,
        "replica_cpu_us": {k: 1e6 * v / max(1, delivered) for k, v in cpu.items()},
        "gateway_cpu_us": 1e6 * sum(cpu.values()) / max(1, delivered),
        "postgres_cpu_us": 1e6 * (pg.cpu_s() - pg0) / max(1, delivered),
        "nginx_cpu_us": 1e6 * (sum(tree_cpu_s(p) for p in workers) - nginx0) / max(1, delivered),
    }


async def _with_replicas(count: int, n: int, pg: PostgresServer, nginx: NginxEndpoint, workdir: Path,
                         then: Any = None) -> dict[str, Any]:
    store_url = pg.store_url() + "&pool_size=10"
    await _seed(store_url, n)
    creds, _, _ = make_demo_credentials(workdir / f"creds-{count}", token_uri=nginx.token_uri, ca_pem=nginx.ca_pem)
    replicas = [Replica(f"r{count}-{i}", store_url, creds, nginx, workdir) for i in range(count)]
    try:
        for r in replicas:
            r.start()
        for r in replicas:
            await r.serving()
        result = await _fan_out(replicas, pg, nginx, n)
        if then is not None:
            result.update(await then(replicas, result))
        return result
    finally:
        for r in replicas:
            r.stop()


def scaleout(args: argparse.Namespace) -> int:
    with PostgresServer() as pg, NginxEndpoint() as nginx, tempfile.TemporaryDirectory() as tmp:
        ctx = run_context(packages=("asyncpg", "grpcio"))
        one = asyncio.run(_with_replicas(1, args.n, pg, nginx, Path(tmp)))
        two = asyncio.run(_with_replicas(2, args.n, pg, nginx, Path(tmp)))
    print(ctx.header)
    print(f"scale-out: {args.n:,} tokens (50/50), `pushsvc serve` replicas on one PostgreSQL, static nginx endpoint, "
          "all on this machine")
    for name, r in (("1 replica", one), ("2 replicas", two)):
        per = ", ".join(f"{k} {v:.0f}" for k, v in r["replica_cpu_us"].items())
        print(f"{name:10} {r['rate']:8,.0f}/s  CPU µs/delivery: gateway {r['gateway_cpu_us']:.0f} ({per}), "
              f"PostgreSQL {r['postgres_cpu_us']:.0f}, nginx {r['nginx_cpu_us']:.0f}")
    ratio = two["rate"] / one["rate"]
    print(f"two / one: {ratio:.2f}x (goal >= 1.3x)")
    _write(args, "scaleout", {"context": ctx.__dict__, "n": args.n, "one": one, "two": two, "ratio": ratio})
    return 0 if one["delivered"] == two["delivered"] == args.n else 1


async def _replay(replicas: list[Replica], result: dict[str, Any]) -> dict[str, Any]:
    got = 0
    started = time.perf_counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{replicas[-1].port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        request = pb.StreamReceiptsRequest(app_id=APP, notification_id=result["notification_id"])
        async for _ in stub.StreamReceipts(request, timeout=600):
            got += 1
    return {"replayed": got, "replay_s": time.perf_counter() - started}


def replay(args: argparse.Namespace) -> int:
    with PostgresServer() as pg, NginxEndpoint() as nginx, tempfile.TemporaryDirectory() as tmp:
        ctx = run_context(packages=("asyncpg", "grpcio"))
        r = asyncio.run(_with_replicas(2, args.n, pg, nginx, Path(tmp), then=_replay))
    print(ctx.header)
    print(f"replay: two replicas delivered {r['delivered']:,} tokens at {r['rate']:,.0f}/s; StreamReceipts of the "
          f"completed notification from the start: {r['replayed']:,} receipts in {r['replay_s']:.2f} s (goal <= 5 s)")
    _write(args, "replay", {"context": ctx.__dict__, "n": args.n, "result": r})
    return 0 if r["replayed"] == args.n else 1


# ------------------------------------------------------------------ crash


def crash(args: argparse.Namespace) -> int:
    runs: list[dict[str, Any]] = []
    ctx = run_context(packages=("asyncpg",))
    with PostgresServer() as pg:
        env = dict(os.environ, PUSHSVC_TEST_POSTGRES_URL=pg.url, PUSHSVC_CRASH_TOKENS=str(args.tokens),
                   PUSHSVC_REQUIRE_POSTGRES="1")
        for i in range(args.runs):
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "tests/pipeline/test_crash.py", "-k", "postgres", "-s", "-q",
                 "-p", "no:cacheprovider"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600, check=False,
            )
            figures = [dict(re.findall(r"(\w+)=(\S+)", line)) | {"test": line.split(":", 1)[0]}
                       for line in proc.stdout.splitlines() if line.startswith(("crash-restart:", "crash-one-of-two:"))]
            runs.append({"run": i + 1, "passed": proc.returncode == 0, "figures": figures})
            print(f"run {i + 1}: {'passed' if proc.returncode == 0 else 'FAILED'} "
                  + "; ".join(f"{f['test']} duplicates={f.get('duplicates')} leases_lost={f.get('leases_lost')} "
                              f"resumed_s={f.get('restart_to_resumed_s', '-')}" for f in figures), flush=True)
            if proc.returncode != 0:
                sys.stdout.write(proc.stdout[-4000:])
    print(ctx.header)
    passed = sum(r["passed"] for r in runs)
    lost = sum(int(f.get("leases_lost", 0)) for r in runs for f in r["figures"])
    resumed = [float(f["restart_to_resumed_s"]) for r in runs for f in r["figures"] if "restart_to_resumed_s" in f]
    dups = [int(f["duplicates"]) for r in runs for f in r["figures"]]
    print(f"crash tests on PostgreSQL, {args.tokens:,} tokens: {passed}/{args.runs} runs passed (0 lost, exactly one "
          f"receipt per token, duplicates within workers x batch); leases lost to racing claims: {lost}; duplicates "
          f"{min(dups, default=0)}–{max(dups, default=0)}; restart to resumed delivery "
          f"{min(resumed, default=0):.2f}–{max(resumed, default=0):.2f} s (goal <= 5 s)")
    _write(args, "crash", {"context": ctx.__dict__, "tokens": args.tokens, "runs": runs})
    return 0 if passed == args.runs and lost == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, n in (("fanout", 100_000), ("register", 20_000), ("scaleout", 200_000), ("replay", 20_000)):
        p = sub.add_parser(name)
        p.add_argument("-n", type=int, default=n)
        p.add_argument("--out", default="")
        if name == "fanout":
            p.add_argument("--rounds", type=int, default=2)
        if name == "register":
            p.add_argument("--preload", type=int, default=100_000)
    p = sub.add_parser("crash")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--tokens", type=int, default=20_000)
    p.add_argument("--out", default="")
    args = parser.parse_args()
    return {"fanout": fanout, "register": register, "scaleout": scaleout, "replay": replay, "crash": crash}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
