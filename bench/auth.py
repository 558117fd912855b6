"""Auth overhead: RegisterToken latency and rate with and without caller auth.

The gateway runs in a subprocess (one per mode, so each gets a fresh
process): `none` has no interceptor, `open` has the interceptor with every
caller anonymous (`--insecure-no-auth`: its plumbing and the audit, no
credential check), `api_key` checks an API key and
`jwt` an RS256 bearer token on every call (the same token for the whole run,
as a caller reuses its token until it expires). The client is a grpc.aio loop
in this process with C calls in flight. RegisterToken cycles over a fixed set
of tokens, so the registry, and with it the store's cost, stays the same
size through the run. Modes alternate over `--repeat` rounds; the table shows
each mode's median round by rate, and the overhead against `none`.

    .venv/bin/python -m bench.auth [-n 5000] [-c 50] [--repeat 3] [--store mongodb://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from bench.machine import run_context

MODES = ("none", "open", "api_key", "jwt")
ISSUER = "https://issuer.bench.pushsvc"
AUDIENCE = "pushsvc"


def _credentials(workdir: Path) -> dict[str, str]:
    """An API key, and an RS256 key pair whose public half the server trusts; returns the bearer per mode."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pushsvc.access import hash_key, new_key

    key = new_key()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (workdir / "jwt.pem").write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (workdir / "key.hash").write_text(hash_key(key))
    now = int(time.time())

    def mint(sub: str) -> str:
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": "register", "apps": ["bench"], "iat": now, "exp": now + 3600}
        return str(jwt.encode(claims, private, algorithm="RS256"))

    fresh = [mint(f"bench-{i}") for i in range(500)]
    return {"none": "", "open": "", "api_key": key, "jwt": mint("bench"), "jwt_fresh": "\n".join(fresh)}


async def _serve(mode: str, store: str, workdir: Path) -> None:
    from pushsvc.bootstrap import build_application
    from pushsvc.config import ApiKeySettings, AuthSettings, JwtIssuerSettings, Settings

    auth = AuthSettings()
    if mode == "open":
        auth = AuthSettings(insecure_no_auth=True)
    elif mode == "api_key":
        auth = AuthSettings(
            api_keys=(ApiKeySettings(name="bench", hash_file=workdir / "key.hash", apps=("bench",), actions=("register",)),)
        )
    elif mode == "jwt":
        auth = AuthSettings(jwt=(JwtIssuerSettings(issuer=ISSUER, audience=AUDIENCE, public_key_file=workdir / "jwt.pem"),))
    settings = Settings(store_url=store, host="127.0.0.1", port=0, auth=auth)
    app = build_application(settings, providers={})
    port = await app.start()
    print(port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await app.stop(1)


async def _drive(port: int, bearer: str, n: int, concurrency: int, distinct: int) -> dict[str, Any]:
    from pushsvc.v1 import push_pb2 as pb
    from pushsvc.v1 import push_pb2_grpc

    metadata = (("authorization", f"Bearer {bearer}"),) if bearer else ()
    requests = [
        pb.RegisterTokenRequest(app_id="bench", token=f"bench-{i:06d}", platform=pb.PLATFORM_FCM, user_id=f"u{i % 97}")
        for i in range(distinct)
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        await channel.channel_ready()

        async def run(total: int, latencies: list[float] | None) -> None:
            counter = iter(range(total))

            async def worker() -> None:
                for i in counter:
                    start = time.perf_counter()
                    await stub.RegisterToken(requests[i % distinct], metadata=metadata, timeout=30)
                    if latencies is not None:
                        latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await run(min(n, 1000), None)  # warm-up: connections, caches, the registry filled
        latencies: list[float] = []
        start = time.perf_counter()
        await run(n, latencies)
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": n,
        # Calls that came back OK (a failed call raises): the JSON accounts for every request.
        "answered": len(latencies),
        "seconds": elapsed,
        "rate": n / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def _round(mode: str, bearer: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.auth", "--serve", mode, "--store", f"{args.store}{mode}{os.getpid()}", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=(workdir / f"server-{mode}.log").open("a"),
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        cpu_before = _cpu_s(server.pid)
        result = asyncio.run(_drive(port, bearer, args.n, args.concurrency, args.distinct))
        result["server_cpu_us_per_call"] = 1e6 * (_cpu_s(server.pid) - cpu_before) / (args.n + min(args.n, 1000))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    return result


class _Call:
    """A call as the authenticator sees it: metadata and an empty TLS peer."""

    def __init__(self, bearer: str) -> None:
        self._metadata = (("user-agent", "grpc-python-asyncio/1.85.1"), ("authorization", f"Bearer {bearer}"))

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


def _decision_cost(workdir: Path, bearers: dict[str, str], iterations: int) -> dict[str, float]:
    """Microseconds per auth decision (authenticate + authorize), in-process, per mode."""
    from pushsvc.access import Action
    from pushsvc.auth.build import build_authenticator
    from pushsvc.clock import SystemClock
    from pushsvc.config import ApiKeySettings, AuthSettings, JwtIssuerSettings

    auth = AuthSettings(
        api_keys=(ApiKeySettings(name="bench", hash_file=workdir / "key.hash", apps=("bench",), actions=("register",)),),
        jwt=(JwtIssuerSettings(issuer=ISSUER, audience=AUDIENCE, public_key_file=workdir / "jwt.pem"),),
    )
    authenticator = build_authenticator(auth, SystemClock())
    assert authenticator is not None
    out = {}
    for mode in ("api_key", "jwt"):
        call = _Call(bearers[mode])
        start = time.process_time()
        for _ in range(iterations):
            assert authenticator.authenticate(call).may(Action.REGISTER, "bench")
        out[mode] = 1e6 * (time.process_time() - start) / iterations
    # A token's first use: the signature is checked (later uses hit the verified-token cache).
    calls = [_Call(token) for token in bearers["jwt_fresh"].split("\n")]
    start = time.process_time()
    for call in calls:
        assert authenticator.authenticate(call).may(Action.REGISTER, "bench")
    out["jwt first use"] = 1e6 * (time.process_time() - start) / len(calls)
    return out


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5000, help="measured calls per round")
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--distinct", type=int, default=1000, help="distinct tokens cycled over")
    parser.add_argument("--store", default="mongomock://localhost/", help="URL prefix; the mode is appended as the db")
    parser.add_argument("--decisions", type=int, default=5000, help="in-process auth decisions timed per mode")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pushsvc-bench-auth.json")
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.store, args.workdir))
        return 0
    context = run_context(packages=("grpcio", "pyjwt", "cryptography"))
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.modes}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bearers = _credentials(workdir)
        decision_us = _decision_cost(workdir, bearers, args.decisions)
        for r in range(args.repeat):
            order = args.modes if r % 2 == 0 else list(reversed(args.modes))
            for mode in order:
                runs[mode].append(_round(mode, bearers[mode], args, workdir))
    median = {m: sorted(rs, key=lambda x: x["rate"])[len(rs) // 2] for m, rs in runs.items()}
    base = median.get("none")
    print("Auth overhead: RegisterToken with and without caller auth (gateway in a subprocess, grpc.aio client)")
    print(context.header)
    print(f"store: {args.store}   N={args.n} per round, concurrency {args.concurrency}, {args.repeat} round(s), median shown")
    print(f"{'mode':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server CPU/call':>16} {'p50 vs none':>12} {'rate vs none':>13}")
    for mode, row in median.items():
        p50 = f"{100 * (row['p50_ms'] / base['p50_ms'] - 1):+.1f}%" if base else "n/a"
        rate = f"{100 * (row['rate'] / base['rate'] - 1):+.1f}%" if base else "n/a"
        print(
            f"{mode:10} {row['rate']:>9,.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['server_cpu_us_per_call']:>13,.0f} us {p50:>12} {rate:>13}"
        )
    if base:
        for mode, cost in decision_us.items():
            share = 100 * cost / base["server_cpu_us_per_call"]
            print(
                f"auth decision alone ({mode}): {cost:,.1f} us CPU per call in-process, "
                f"{share:.1f}% of the gateway's CPU per RegisterToken without auth"
            )
    args.out.write_text(
        json.dumps(
            {
                "context": context.__dict__,
                "args": {k: str(v) for k, v in vars(args).items()},
                "runs": runs,
                "median": median,
                "decision_us": decision_us,
            },
            indent=2,
        )
    )
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
