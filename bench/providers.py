"""Provider clients against their peers: pushsvc vs aioapns (APNs) and firebase-admin (FCM), in one run.

For each endpoint (the pushsvc emulator, and a static nginx HTTP/2 endpoint the
bench configures and starts on loopback), each client and each concurrency, a
fresh subprocess (bench/clients.py) sets the client up, warms it up, then
sends N requests and verifies every answer. The table shows req/s, the
client's CPU per request (its own process_time() over the send window only),
the endpoint's CPU per request, the ratio of each pushsvc client to its peer,
and the endpoint's h2load ceiling for the same APNs request, measured in the
same run.

Usage (from the repository root):
    python -m bench.providers [-n 5000] [-c 100 500] [--endpoints emulator nginx]
                              [--clients pushsvc-apns pushsvc-fcm aioapns firebase-admin]
                              [--repeat 1] [--out bench/results/providers-<UTC>.json]

Needs the bench extra (`pip install -e '.[bench]'`) and Debian's nginx-light
and nghttp2-client (h2load).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt

if not __package__:
    # Run as a file, bench/ would be on sys.path instead of the repository root.
    sys.exit("run it from the repository root as: python -m bench.providers")

from bench import h2load
from bench.clients import APNS_TOKEN, CLIENTS, FCM_TOKEN, MESSAGE, PEER, PLATFORM, Spec, Target, effective_concurrency
from bench.machine import REPO, run_context
from bench.nginx import NginxEndpoint
from bench.oauth import fetch_access_token

ENDPOINTS = ("emulator", "nginx")
RESULTS_DIR = REPO / "bench" / "results"
CHILD_GRACE_S = 60.0
"""Allowed for a client process's start-up and warm-up beyond its send timeout."""

CLIENT_CPU, ENDPOINT_CPU = 0, 1
"""With --pin: the client (and h2load) on CPU 0, the endpoint on CPU 1."""

GOAL_CPU_US = 40.0
GOAL_NGINX_RATIO = 5.0
GOAL_EMULATOR_APNS_RATIO = 1.0


@dataclasses.dataclass
class Row:
    """One client's measurement at one endpoint and concurrency."""

    endpoint: str
    client: str
    provider: str
    concurrency: int
    """Requests in flight (firebase-admin: whole batches of 500)."""
    sends: int
    ok: int
    errors: dict[str, int]
    seconds: float
    client_cpu_s: float
    endpoint_cpu_s: float | None
    child_total_cpu_s: float
    """The client process's whole CPU, start-up and warm-up included (rusage of the child)."""
    warmup_errors: dict[str, int]
    notes: list[str]
    repeat: int = 0

    @property
    def clean(self) -> bool:
        """Every request was sent and verified OK."""
        return self.ok == self.sends and not self.errors and self.seconds > 0

    @property
    def error_count(self) -> int:
        """Requests not verified OK."""
        return sum(self.errors.values())

    @property
    def req_per_s(self) -> float:
        """Verified OK answers per second of the send window."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_req(self) -> float:
        """Client CPU per request sent, µs."""
        return 1e6 * self.client_cpu_s / self.sends if self.sends else 0.0

    @property
    def endpoint_cpu_us_per_req(self) -> float | None:
        """Endpoint CPU per request sent, µs."""
        return 1e6 * self.endpoint_cpu_s / self.sends if self.endpoint_cpu_s is not None and self.sends else None


# --- endpoints ------------------------------------------------------------------


@contextlib.contextmanager
def _emulator() -> Iterator[tuple[Target, str]]:
    from bench.emulator import EmulatorEndpoint

    with EmulatorEndpoint() as emulator:
        creds = emulator.credentials
        assert creds is not None
        yield (
            Target(
                endpoint="emulator",
                apns_url=emulator.urls["apns_url"],
                fcm_url=emulator.urls["fcm_url"],
                token_uri=emulator.urls["token_uri"],
                ca_file=str(creds.ca_file),
                apns_key_file=str(creds.apns_key_file),
                apns_key_id=creds.apns_key_id,
                apns_team_id=creds.apns_team_id,
                apns_bundle_id=creds.apns_bundle_id,
                fcm_service_account_file=str(creds.fcm_service_account_file),
                fcm_project_id=creds.fcm_project_id,
                endpoint_pids=(emulator.pid,),
            ),
            "pushsvc emulator (one process)",
        )


@contextlib.contextmanager
def _nginx() -> Iterator[tuple[Target, str]]:
    from pushsvc.emulator.credentials import make_demo_credentials

    with NginxEndpoint() as nginx:
        # Credentials of the right shape; nginx checks none of them.
        creds, _, _ = make_demo_credentials(nginx.directory / "credentials", token_uri=nginx.token_uri,
                                            ca_pem=nginx.ca_pem)
        yield (
            Target(
                endpoint="nginx",
                apns_url=nginx.base_url,
                fcm_url=nginx.base_url,
                token_uri=nginx.token_uri,
                ca_file=str(nginx.ca_file),
                apns_key_file=str(creds.apns_key_file),
                apns_key_id=creds.apns_key_id,
                apns_team_id=creds.apns_team_id,
                apns_bundle_id=creds.apns_bundle_id,
                fcm_service_account_file=str(creds.fcm_service_account_file),
                fcm_project_id=creds.fcm_project_id,
                endpoint_pids=tuple(nginx.worker_pids()),
            ),
            "nginx-light, 1 worker, static answers",
        )


def _apns_h2load_request(target: Target) -> tuple[str, list[str], bytes]:
    """The APNs request the clients send, with a JWT the emulator accepts."""
    from pushsvc.providers.apns import render_apns

    rendered = render_apns(MESSAGE, bundle_id=target.apns_bundle_id).body
    token = jwt.encode(
        {"iss": target.apns_team_id, "iat": int(time.time())},
        Path(target.apns_key_file).read_bytes(),
        algorithm="ES256",
        headers={"kid": target.apns_key_id},
    )
    headers = [f"{name}: {value}" for name, value in rendered["headers"].items()]
    headers.append(f"authorization: bearer {token}")
    return f"{target.apns_url}/3/device/{APNS_TOKEN}", headers, rendered["payload"].encode()


def _fcm_h2load_request(target: Target) -> tuple[str, list[str], bytes]:
    """The FCM request the clients send, with an access token from the endpoint's OAuth route."""
    from pushsvc.providers.fcm import render_fcm

    token = fetch_access_token(Path(target.fcm_service_account_file), Path(target.ca_file))
    body = json.dumps({"message": {**render_fcm(MESSAGE).body, "token": FCM_TOKEN}}).encode()
    headers = [f"authorization: Bearer {token}", "content-type: application/json"]
    return f"{target.fcm_url}/v1/projects/{target.fcm_project_id}/messages:send", headers, body


# --- running one client ---------------------------------------------------------


def _child_env(client: str, target: Target) -> dict[str, str]:
    env = dict(os.environ)
    if client == "firebase-admin":
        # TLS trust for firebase-admin's httpx client and google-auth's requests.
        env["SSL_CERT_FILE"] = target.ca_file
        env["REQUESTS_CA_BUNDLE"] = target.ca_file
    return env


def _run_client(client: str, target: Target, args: argparse.Namespace, concurrency: int) -> Row:
    timeout_s = args.timeout_s
    spec = Spec(client=client, target=target, sends=args.sends, concurrency=concurrency, timeout_s=timeout_s,
                loop=args.loop, cpu=CLIENT_CPU if args.pin else None)
    sends = args.sends
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.clients", spec.to_json()],
            cwd=REPO,
            env=_child_env(client, target),
            capture_output=True,
            text=True,
            timeout=timeout_s + CHILD_GRACE_S,
            check=False,
        )
        output, failure, detail = done.stdout, "", done.stderr[-1500:]
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            failure = f"exit {done.returncode}: {last[:200]}"
    except subprocess.TimeoutExpired:
        output, failure, detail = "", f"the client process did not finish within {timeout_s + CHILD_GRACE_S:.0f} s", ""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    effective = effective_concurrency(client, concurrency)
    lines = output.strip().splitlines()
    if failure or not lines:
        # A client that could not run is a row with every request an error, never a missing row.
        reason = failure or "no result printed"
        print(f"    {client} failed: {reason}\n{detail}", file=sys.stderr)
        return Row(target.endpoint, client, PLATFORM[client], effective, sends, 0, {reason: sends},
                   0.0, 0.0, None, child_cpu, {}, [f"{client} on {target.endpoint} failed: {reason}"])
    result: dict[str, Any] = json.loads(lines[-1])
    return Row(
        endpoint=target.endpoint,
        client=client,
        provider=PLATFORM[client],
        concurrency=effective,
        sends=result["sends"],
        ok=result["ok"],
        errors=result["errors"],
        seconds=result["seconds"],
        client_cpu_s=result["client_cpu_s"],
        endpoint_cpu_s=result["endpoint_cpu_s"],
        child_total_cpu_s=child_cpu,
        warmup_errors=result["warmup_errors"],
        notes=result["notes"],
    )


# --- the run ----------------------------------------------------------------------


def _median_rows(rows: list[Row]) -> list[Row]:
    """Per (endpoint, client, concurrency): the run with the median req/s."""
    groups: dict[tuple[str, str, int], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.endpoint, row.client, row.concurrency), []).append(row)
    chosen = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: r.req_per_s)
        chosen.append(ordered[(len(ordered) - 1) // 2])
    return chosen


def _peer_row(rows: list[Row], row: Row) -> Row | None:
    peer = PEER.get(row.client)
    if peer is None:
        return None
    wanted = effective_concurrency(peer, row.concurrency)
    for other in rows:
        if other.endpoint == row.endpoint and other.client == peer and other.concurrency == wanted:
            return other
    return None


def _ratio(rows: list[Row], row: Row) -> float | None:
    peer = _peer_row(rows, row)
    if peer is None or not peer.req_per_s:
        return None
    return row.req_per_s / peer.req_per_s


def _goals(rows: list[Row]) -> list[dict[str, Any]]:
    """DESIGN.md "Performance" 2, checked against this run's rows.

    A row with errors (or its peer's, for a ratio) meets no goal: its figures
    are not those of a client that did the job.
    """
    goals: list[dict[str, Any]] = []

    def add(goal: str, where: str, value: float | None, unit: str, met: bool) -> None:
        goals.append({"goal": goal, "where": where, "value": value, "unit": unit, "met": value is not None and met})

    for row in rows:
        if not row.client.startswith("pushsvc-"):
            continue
        where = f"{row.endpoint} c={row.concurrency} {row.client}"
        cpu = row.cpu_us_per_req if row.clean else None
        add(f"client CPU per request <= {GOAL_CPU_US:.0f} us", where, cpu, "us", cpu is not None and cpu <= GOAL_CPU_US)
        peer = _peer_row(rows, row)
        if peer is None:
            continue
        if row.endpoint == "nginx":
            target = GOAL_NGINX_RATIO
        elif row.endpoint == "emulator" and row.provider == "apns":
            target = GOAL_EMULATOR_APNS_RATIO
        else:
            continue
        ratio = _ratio(rows, row) if row.clean and peer.clean else None
        add(f"req/s >= {target:g}x {peer.client} ({row.endpoint})", where, ratio, "x",
            ratio is not None and ratio >= target)
    return goals


def _fmt(value: float | None, spec: str = ",.0f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _table(rows: list[Row], ceilings: dict[tuple[str, str], h2load.Ceiling]) -> str:
    columns = ["endpoint", "client", "provider", "conc", "sends", "ok", "errors", "req/s", "CPU us/req",
               "endpoint us/req", "vs peer", "ceiling req/s"]
    body = []
    for row in rows:
        ratio = _ratio(rows, row)
        body.append([
            row.endpoint, row.client, row.provider.upper(), str(row.concurrency), str(row.sends), str(row.ok),
            str(row.error_count),
            _fmt(row.req_per_s if row.seconds else None),
            _fmt(row.cpu_us_per_req if row.seconds else None),
            _fmt(row.endpoint_cpu_us_per_req),
            "-" if ratio is None else f"{ratio:.2f}x",
            ceilings[(row.endpoint, row.provider)].shown if (row.endpoint, row.provider) in ceilings else "n/a",
        ])
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(columns)]
    left = {0, 1, 2}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    out = [line(columns), line(["-" * w for w in widths])]
    previous = None
    for row, cells in zip(rows, body, strict=True):
        if previous is not None and row.endpoint != previous:
            out.append("")
        previous = row.endpoint
        out.append(line(cells))
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--sends", type=int, default=5_000, help="measured sends per row (default 5000)")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[100],
                        help="requests in flight; several values make several rows (default 100)")
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=list(CLIENTS))
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per row, alternating clients; the table shows the median run (default 1)")
    parser.add_argument("--h2load-n", type=int, default=20_000,
                        help="requests for each h2load ceiling (default 20000)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="send-phase limit of one client run")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="event loop of every client process (uvloop must be installed)")
    parser.add_argument("--pin", action="store_true",
                        help=f"pin clients and h2load to CPU {CLIENT_CPU}, the endpoint to CPU {ENDPOINT_CPU}")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/providers-<UTC>.json)")
    args = parser.parse_args()
    if args.sends < 1 or args.repeat < 1 or min(args.concurrency) < 1:
        parser.error("-n, -c and --repeat must be positive")
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        parser.error("--loop uvloop: uvloop is not installed (pip install uvloop)")
    if args.pin and not {CLIENT_CPU, ENDPOINT_CPU} <= os.sched_getaffinity(0):
        parser.error(f"--pin needs CPUs {CLIENT_CPU} and {ENDPOINT_CPU}")
    run_started = time.monotonic()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out or RESULTS_DIR / f"providers-{stamp}.json"

    context = run_context(
        ("pushsvc", "aioapns", "firebase-admin", "httpx", "h2", "google-auth"),
        {"nginx": ["/usr/sbin/nginx", "-v"], "h2load": ["h2load", "--version"]},
    )
    print(context.header)
    print(f"N={args.sends} per row, concurrency {' '.join(map(str, args.concurrency))}, repeat {args.repeat}; "
          f"endpoints {' '.join(args.endpoints)}; loop {args.loop}; "
          + (f"pinned: clients CPU {CLIENT_CPU}, endpoint CPU {ENDPOINT_CPU}" if args.pin else "not pinned"))

    rows: list[Row] = []
    ceilings: dict[tuple[str, str], h2load.Ceiling] = {}
    descriptions: dict[str, str] = {}
    for endpoint in args.endpoints:
        with (_emulator() if endpoint == "emulator" else _nginx()) as (target, description):
            descriptions[endpoint] = description
            if args.pin:
                for pid in target.endpoint_pids:
                    os.sched_setaffinity(pid, {ENDPOINT_CPU})
            print(f"\n{endpoint}: {target.apns_url} ({description})")
            for repeat in range(args.repeat):
                measured: set[tuple[str, int]] = set()
                for concurrency in args.concurrency:
                    # Alternate clients within each repeat so drift in machine load hits all of them alike.
                    order = args.clients if repeat % 2 == 0 else list(reversed(args.clients))
                    for client in order:
                        # firebase-admin at c=100 and c=500 is the same run: one batch of 500 in flight.
                        if (client, effective_concurrency(client, concurrency)) in measured:
                            continue
                        measured.add((client, effective_concurrency(client, concurrency)))
                        row = _run_client(client, target, args, concurrency)
                        row.repeat = repeat
                        rows.append(row)
                        print(f"  {client:15} c={row.concurrency:<5} {row.req_per_s:>9,.0f} req/s "
                              f"{row.cpu_us_per_req:>7,.0f} us CPU/req  {row.ok}/{row.sends} ok"
                              + (f"  errors: {row.errors}" if row.errors else ""))
            for provider in sorted({PLATFORM[client] for client in args.clients}):
                request = _apns_h2load_request if provider == "apns" else _fcm_h2load_request
                url, headers, body = request(target)
                ceiling = h2load.measure(url, headers, body, requests=args.h2load_n,
                                         cpu=CLIENT_CPU if args.pin else None)
                ceilings[(endpoint, provider)] = ceiling
                print(f"  h2load ceiling, {provider.upper()}: {ceiling.shown} req/s ({ceiling.command}; "
                      f"{ceiling.ok_2xx}/{ceiling.requests} 2xx)" + (f" {ceiling.error}" if ceiling.error else ""))

    shown = _median_rows(rows)
    order = {name: i for i, name in enumerate(CLIENTS)}
    shown.sort(key=lambda r: (args.endpoints.index(r.endpoint), r.provider, r.concurrency, order[r.client]))
    goals = _goals(shown)

    print()
    print(f"Provider clients vs peers, one run (median of {args.repeat} per row)")
    print(context.header)
    print(f"N={args.sends} sends per row; concurrency {' '.join(map(str, args.concurrency))} "
          "(firebase-admin: batches of 500 via send_each_async, whole batches in flight); "
          f"loop {args.loop}; " + (f"clients and h2load on CPU {CLIENT_CPU}, endpoint on CPU {ENDPOINT_CPU}"
                                   if args.pin else "not pinned"))
    print()
    print(_table(shown, ceilings))
    print()
    print("CPU us/req: the client process's own CPU (all threads) over the send window, per request sent.")
    print("endpoint us/req: the endpoint's CPU over the same window (emulator process; nginx worker).")
    print("vs peer: pushsvc req/s / the peer's req/s at the same endpoint and concurrency "
          "(aioapns for APNs, firebase-admin for FCM).")
    for (endpoint, provider), ceiling in ceilings.items():
        note = f"; {ceiling.error}" if ceiling.error else ""
        partial = "" if ceiling.ok_2xx == ceiling.requests else f"; only {ceiling.ok_2xx} of {ceiling.requests} got 2xx (!)"
        credential = "a bearer JWT" if provider == "apns" else "an OAuth access token"
        print(f"ceiling ({endpoint}, {provider.upper()}): {ceiling.command}, the clients' {provider.upper()} request "
              f"with {credential}{partial}{note}")
    for row in shown:
        if row.errors:
            print(f"errors ({row.endpoint} {row.client} c={row.concurrency}): "
                  + ", ".join(f"{n} x {reason}" for reason, n in row.errors.items()))
        if row.warmup_errors:
            print(f"warm-up errors ({row.endpoint} {row.client}): "
                  + ", ".join(f"{n} x {reason}" for reason, n in row.warmup_errors.items()))
    for note in sorted({note for row in rows for note in row.notes}):
        print(f"note: {note}")
    print()
    print("Goals (DESIGN.md, Performance 2):")
    for goal in goals:
        if goal["value"] is None:
            value = "not measured: errors in the row (or its peer's)"
        else:
            value = f"{goal['value']:,.0f} us" if goal["unit"] == "us" else f"{goal['value']:.2f}x"
        print(f"  {'met    ' if goal['met'] else 'NOT met'}  {goal['goal']:<40} {goal['where']}: {value}")

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "providers",
        "context": dataclasses.asdict(context),
        "sends": args.sends,
        "concurrency": args.concurrency,
        "repeat": args.repeat,
        "loop": args.loop,
        "pinned": {"clients_cpu": CLIENT_CPU, "endpoint_cpu": ENDPOINT_CPU} if args.pin else None,
        "endpoints": {
            name: {
                "description": descriptions[name],
                "ceilings": {p: dataclasses.asdict(c) for (e, p), c in ceilings.items() if e == name},
            }
            for name in descriptions
        },
        "rows": [_row_json(row, shown) for row in shown],
        "all_runs": [_row_json(row, [r for r in rows if r.repeat == row.repeat]) for row in rows],
        "goals": goals,
    }, indent=2) + "\n")
    print(f"\nresults written to {out} (the run took {time.monotonic() - run_started:.0f} s)")
    # A client that failed is a row of errors, not a crash; the exit status says so, as the other benches' do.
    failed = [f"{r.endpoint} {r.client} c={r.concurrency}" for r in rows if not r.clean]
    if failed:
        print(f"rows with errors: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _row_json(row: Row, rows: list[Row]) -> dict[str, Any]:
    return dataclasses.asdict(row) | {
        "errors_total": row.error_count,
        "req_per_s": row.req_per_s,
        "client_cpu_us_per_req": row.cpu_us_per_req,
        "endpoint_cpu_us_per_req": row.endpoint_cpu_us_per_req,
        "ratio_vs_peer": _ratio(rows, row) if row.client.startswith("pushsvc-") else None,
    }


if __name__ == "__main__":
    sys.exit(main())
