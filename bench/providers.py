"""Provider throughput: ApnsProvider.send and FcmProvider.send against the emulator.

Starts the emulator in a subprocess (so client and server don't share one
event loop), then, for each provider, transport (httpx's HTTP/2 stack and
H2Transport) and concurrency, drives N sends and reports sends/s. When h2load
is installed it also measures the emulator's own ceiling for the same requests.

Usage:
    python bench/providers.py [-n 20000] [-c 100 500] [--transports httpx fast]
                              [--providers apns fcm] [--out results.json]

Prints one table (machine, concurrency, req/s) and writes the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pushsvc import models
from pushsvc.providers.apns import ApnsProvider, render_apns
from pushsvc.providers.apns_jwt import ApnsTokenSigner
from pushsvc.providers.base import Delivery, Outcome, Provider
from pushsvc.providers.fcm import FcmProvider, render_fcm
from pushsvc.providers.fcm_auth import FcmAccessTokenSource
from pushsvc.providers.http_client import make_http_client

APNS_TOKEN = "ab" * 32
FCM_TOKEN = "bench-device"
STARTUP_TIMEOUT_S = 30.0
H2LOAD_TIMEOUT_S = 120.0


@dataclasses.dataclass
class Row:
    provider: str
    client: str
    concurrency: int
    sends: int
    seconds: float
    delivered: int
    client_cpu_s: float
    """CPU time of the client process: its cost, independent of other load on the machine."""

    @property
    def rate(self) -> float:
        return self.sends / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_send(self) -> float:
        return 1e6 * self.client_cpu_s / self.sends if self.sends else 0.0


# --- the emulator subprocess ----------------------------------------------------


async def _serve(info_file: Path) -> None:
    """Runs the emulator until SIGTERM; writes URLs and credentials to info_file."""
    from pushsvc.emulator import Emulator, EmulatorConfig, make_demo_credentials

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # A small inbox: the benchmark checks outcomes, not what was stored.
    async with Emulator(EmulatorConfig(inbox_limit=1000)) as emulator:
        credentials, apns_key, fcm_account = make_demo_credentials(
            info_file.parent / "credentials", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        emulator.add_apns_key(apns_key)
        emulator.add_fcm_account(fcm_account)
        info = {
            "apns_url": emulator.apns_url,
            "apns_sandbox_url": emulator.apns_sandbox_url,
            "fcm_url": emulator.fcm_url,
            "ca_file": str(credentials.ca_file),
            "apns_key_file": str(credentials.apns_key_file),
            "apns_key_id": credentials.apns_key_id,
            "apns_team_id": credentials.apns_team_id,
            "apns_bundle_id": credentials.apns_bundle_id,
            "fcm_service_account_file": str(credentials.fcm_service_account_file),
            "fcm_project_id": credentials.fcm_project_id,
        }
        partial = info_file.with_suffix(".partial")
        partial.write_text(json.dumps(info))
        partial.rename(info_file)
        await stop.wait()


def _start_emulator(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    info_file = workdir / "emulator.json"
    process = subprocess.Popen([sys.executable, __file__, "--serve-emulator", str(info_file)])
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not info_file.exists():
        if process.poll() is not None:
            raise RuntimeError(f"emulator exited with {process.returncode}")
        if time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError("emulator did not start in time")
        time.sleep(0.05)
    return process, json.loads(info_file.read_text())


def _stop_emulator(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# --- the client side ------------------------------------------------------------


def _providers(info: dict[str, Any], fast: bool) -> dict[str, tuple[Provider, Delivery, Any]]:
    ca_pem = Path(info["ca_file"]).read_bytes()
    signer = ApnsTokenSigner(Path(info["apns_key_file"]).read_bytes(), info["apns_key_id"], info["apns_team_id"])
    apns = ApnsProvider(
        client=make_http_client(ca_pem=ca_pem, fast=fast),
        production_url=info["apns_url"],
        sandbox_url=info["apns_sandbox_url"],
        signer=signer,
    )
    source = FcmAccessTokenSource.from_service_account_file(Path(info["fcm_service_account_file"]), ca_pem=ca_pem)
    fcm = FcmProvider(
        client=make_http_client(ca_pem=ca_pem, fast=fast),
        base_url=info["fcm_url"],
        project_id=info["fcm_project_id"],
        token_source=source,
    )
    message = models.Message(title="Benchmark", body="Hello from pushsvc", data={"n": "1"})
    return {
        "apns": (apns, Delivery(APNS_TOKEN, render_apns(message, bundle_id=info["apns_bundle_id"])), signer),
        "fcm": (fcm, Delivery(FCM_TOKEN, render_fcm(message)), source),
    }


async def _drive(provider: Provider, delivery: Delivery, sends: int, concurrency: int) -> tuple[float, float, int]:
    remaining = sends
    delivered = 0

    async def worker() -> None:
        nonlocal remaining, delivered
        while remaining > 0:
            remaining -= 1
            result = await provider.send(delivery)
            delivered += result.outcome is Outcome.DELIVERED

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu_started, delivered


async def _run_clients(info: dict[str, Any], args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    for client in args.transports:
        providers = _providers(info, fast=client == "fast")
        try:
            for name in args.providers:
                provider, delivery, _ = providers[name]
                # Warm up: connection, JWT / access token, the raised stream limit.
                await _drive(provider, delivery, min(500, args.sends), 50)
                for concurrency in args.concurrency:
                    seconds, cpu_s, delivered = await _drive(provider, delivery, args.sends, concurrency)
                    row = Row(name, client, concurrency, args.sends, seconds, delivered, cpu_s)
                    print(
                        f"  {name:5} {client:6} c={concurrency:<5} {row.rate:9,.0f} req/s "
                        f"{row.cpu_us_per_send:6,.0f} us CPU/send  ({delivered}/{args.sends} delivered)"
                    )
                    rows.append(row)
        finally:
            for provider, _, credential in providers.values():
                await provider.aclose()
                if isinstance(credential, FcmAccessTokenSource):
                    credential.close()
    return rows


async def _h2load_inputs(info: dict[str, Any]) -> dict[str, tuple[str, list[str], bytes]]:
    ca_pem = Path(info["ca_file"]).read_bytes()
    signer = ApnsTokenSigner(Path(info["apns_key_file"]).read_bytes(), info["apns_key_id"], info["apns_team_id"])
    source = FcmAccessTokenSource.from_service_account_file(Path(info["fcm_service_account_file"]), ca_pem=ca_pem)
    access_token = await source.access_token()
    source.close()
    message = models.Message(title="Benchmark", body="Hello from pushsvc", data={"n": "1"})
    apns_rendered = render_apns(message, bundle_id=info["apns_bundle_id"])
    apns_headers = [f"{k}: {v}" for k, v in apns_rendered.body["headers"].items()]
    apns_headers.append(f"authorization: {signer.authorization()}")
    fcm_body = json.dumps({"message": {**render_fcm(message).body, "token": FCM_TOKEN}}).encode()
    return {
        "apns": (f"{info['apns_url']}/3/device/{APNS_TOKEN}", apns_headers, apns_rendered.body["payload"].encode()),
        "fcm": (
            f"{info['fcm_url']}/v1/projects/{info['fcm_project_id']}/messages:send",
            [f"authorization: Bearer {access_token}", "content-type: application/json"],
            fcm_body,
        ),
    }


def _h2load(url: str, headers: list[str], body: bytes, sends: int, concurrency: int, workdir: Path) -> float | None:
    body_file = workdir / "h2load-body"
    body_file.write_bytes(body)
    command = ["h2load", "-n", str(sends), "-c", "1", "-m", str(min(concurrency, 1000)), "-d", str(body_file)]
    for header in headers:
        command += ["-H", header]
    command.append(url)
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=H2LOAD_TIMEOUT_S, check=False).stdout
    except subprocess.TimeoutExpired:
        return None
    for line in output.splitlines():
        if line.startswith("finished in"):
            # "finished in 1.23s, 16260.16 req/s, ..."
            return float(line.split(",")[1].split()[0])
    return None


def _machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def _free_ports_are_loopback() -> None:
    # The emulator binds 127.0.0.1 only; fail early if loopback is unusable.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--sends", type=int, default=20_000, help="sends per measurement")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--transports", nargs="+", default=["httpx", "fast"], choices=["httpx", "fast"])
    parser.add_argument("--providers", nargs="+", default=["apns", "fcm"], choices=["apns", "fcm"])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pushsvc-bench-providers.json")
    parser.add_argument("--serve-emulator", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        asyncio.run(_serve(args.serve_emulator))
        return 0

    _free_ports_are_loopback()
    machine = _machine()
    print(f"machine: {machine['nproc']} x {machine['cpu']}, Python {machine['python']}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        process, info = _start_emulator(workdir)
        try:
            rows = asyncio.run(_run_clients(info, args))
            ceilings: dict[str, float | None] = {}
            if shutil.which("h2load"):
                inputs = asyncio.run(_h2load_inputs(info))
                for name in args.providers:
                    url, headers, body = inputs[name]
                    ceilings[name] = _h2load(url, headers, body, args.sends, max(args.concurrency), workdir)
        finally:
            _stop_emulator(process)

    print()
    print(f"Provider send throughput ({args.sends} sends per row; emulator in a separate process)")
    print(f"machine: nproc={machine['nproc']}, CPU {machine['cpu']}")
    print(f"{'provider':8} {'client':7} {'concurrency':>11} {'req/s':>9} {'client CPU/send':>16} {'delivered':>10}")
    for row in rows:
        print(
            f"{row.provider:8} {row.client:7} {row.concurrency:>11} {row.rate:>9,.0f} "
            f"{row.cpu_us_per_send:>13,.0f} us {row.delivered:>10}"
        )
    for name, ceiling in ceilings.items():
        shown = f"{ceiling:,.0f}" if ceiling is not None else "n/a"
        print(f"{name:8} {'h2load':7} {max(args.concurrency):>11} {shown:>9}   (emulator ceiling, -c 1 -m {min(max(args.concurrency), 1000)})")
    if not ceilings:
        print("h2load not found: emulator ceiling not measured")

    args.out.write_text(
        json.dumps(
            {
                "machine": machine,
                "sends": args.sends,
                "rows": [
                    dataclasses.asdict(row) | {"req_per_s": row.rate, "client_cpu_us_per_send": row.cpu_us_per_send}
                    for row in rows
                ],
                "h2load_ceiling": ceilings,
                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
        )
    )
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
