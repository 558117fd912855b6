"""``pushsvc emulator``: run the emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
from pathlib import Path

from . import recording
from .config import EmulatorConfig
from .credentials import MANIFEST, make_demo_credentials, write_manifest
from .emulator import Emulator
from .oauth import GOOGLE_TOKEN_URI
from .scenario import Scenario, ScenarioError, parse_scenario


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushsvc emulator",
        description="Local fake APNs, FCM and Google OAuth servers "
        "(TLS; HTTP/2, and HTTP/1.1 for FCM and OAuth).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--apns-port", type=int, default=2197, help="APNs production port")
    parser.add_argument("--apns-sandbox-port", type=int, default=2198, help="APNs sandbox port")
    parser.add_argument("--fcm-port", type=int, default=8443, help="FCM and OAuth port")
    parser.add_argument(
        "--apns-streams-before-auth",
        type=int,
        default=1,
        help="MAX_CONCURRENT_STREAMS of a new APNs connection before a valid JWT (APNs: 1); "
        "load generators that open streams before reading SETTINGS want 1000 here",
    )
    parser.add_argument(
        "--control-port",
        type=int,
        help="also serve the web inbox and the /_emulator/ control endpoints over plain HTTP "
        "on this port (e.g. 8442), for a browser that does not trust the CA",
    )
    parser.add_argument(
        "--proxy-port",
        type=int,
        help="also accept HTTP CONNECT here for api.push.apple.com, api.sandbox.push.apple.com, "
        "fcm.googleapis.com and oauth2.googleapis.com, and serve them as the emulator "
        "(clients set HTTPS_PROXY and trust ca.pem; service-account-proxy.json names "
        "Google's token_uri for them)",
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        help="TOML scenario file played over the built-in test tokens "
        "(format: pushsvc/emulator/scenario.py; replace it later with POST /_emulator/scenario)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".pushsvc/emulator"),
        help="where demo credentials and ca.pem are written (default ./.pushsvc/emulator)",
    )
    return parser


# Allocations between young collections (Python's default is 700). A request
# allocates a few hundred short-lived objects (h2 frames and events, header
# tuples, JSON) and the inbox keeps up to 100,000 entries of several objects
# each, so with the default, young collections ran every couple of requests
# and promoted enough survivors to walk the inbox in full collections: with
# the collector off, the emulator's CPU per request in pushsvc's fan-out fell
# by about a tenth. What a young collection frees is the same, found later.
_GC_GEN0_THRESHOLD = 20_000


async def _run(args: argparse.Namespace, scenario: Scenario | None) -> None:
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(_GC_GEN0_THRESHOLD, gen1, gen2)
    config = EmulatorConfig(
        host=args.host,
        apns_port=args.apns_port,
        apns_sandbox_port=args.apns_sandbox_port,
        fcm_port=args.fcm_port,
        apns_streams_before_auth=args.apns_streams_before_auth,
        scenario=scenario,
        proxy_port=args.proxy_port,
        control_port=args.control_port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Emulator(config) as emulator:
            credentials, apns_key, fcm_account = make_demo_credentials(
                args.state_dir, token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
            )
            emulator.add_apns_key(apns_key)
            emulator.add_fcm_account(fcm_account)
            emulator.accept_demo_credentials(credentials)
            write_manifest(args.state_dir, emulator, credentials)
            lines = [
                "pushsvc emulator is running (Ctrl-C to stop)",
                f"  APNs production   {emulator.apns_url}",
                f"  APNs sandbox      {emulator.apns_sandbox_url}",
                f"  FCM               {emulator.fcm_url}/v1/projects/"
                f"{credentials.fcm_project_id}/messages:send",
                f"  OAuth token_uri   {emulator.token_uri}",
                f"  CA certificate    {credentials.ca_file}",
                f"  APNs key          {credentials.apns_key_file} "
                f"(key id {credentials.apns_key_id}, team id {credentials.apns_team_id}, "
                f"bundle id {credentials.apns_bundle_id})",
                f"  FCM account       {credentials.fcm_service_account_file} "
                f"(project {credentials.fcm_project_id})",
                f"  inbox             curl --cacert {credentials.ca_file} "
                f"{emulator.fcm_url}/_emulator/inbox",
                f"  manifest          {args.state_dir / MANIFEST}  (used by `pushsvc deliver`)",
                f"  web inbox         {emulator.control_url}/_emulator/"
                if args.control_port is not None
                else f"  web inbox         {emulator.fcm_url}/_emulator/ (trust the CA certificate)",
            ]
            if args.proxy_port is not None:
                proxy_account = _write_proxy_service_account(credentials.fcm_service_account_file)
                lines.append(f"  FCM account       {proxy_account} (for apps behind the proxy)")
                lines.append(
                    f"  proxy             HTTPS_PROXY={emulator.proxy_url} "
                    f"SSL_CERT_FILE={credentials.ca_file} REQUESTS_CA_BUNDLE={credentials.ca_file} "
                    f"NODE_EXTRA_CA_CERTS={credentials.ca_file}"
                )
            print("\n".join(lines), flush=True)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _write_proxy_service_account(service_account_file: Path) -> Path:
    """Write a copy of the service account naming Google's token_uri, for apps behind the proxy.

    Behind the proxy an unmodified client reaches the token endpoint by
    Google's own name; the loopback URL in the original would be sent to the
    proxy too, which refuses it. `pushsvc deliver` keeps using the original.
    """
    document = json.loads(service_account_file.read_text())
    document["token_uri"] = GOOGLE_TOKEN_URI
    path = service_account_file.with_name("service-account-proxy.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(document, file, indent=2)
    return path


def _replay_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushsvc emulator replay",
        description="Check expectations against a recorded run "
        "(GET /_emulator/inbox?format=jsonl&rejected=1), offline. Exit status 1 if one fails.",
    )
    parser.add_argument("recording", type=Path, help="the JSON-lines recording")
    parser.add_argument(
        "--expect",
        type=Path,
        action="append",
        default=[],
        help="TOML file of [[expect]] tables (see pushsvc/emulator/recording.py); repeatable",
    )
    return parser


def _replay(argv: list[str]) -> int:
    parser = _replay_parser()
    args = parser.parse_args(argv)
    try:
        run = recording.load(args.recording)
        expectations = [e for path in args.expect for e in recording.load_expectations(path.read_text("utf-8"))]
        failures = recording.replay(run, expectations)
    except (OSError, UnicodeDecodeError, recording.RecordingError) as exc:
        print(f"pushsvc emulator replay: {exc}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"{len(run)} records, {len(expectations)} expectations, {len(failures)} failed")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Run ``pushsvc emulator`` (or ``pushsvc emulator replay``); returns the process exit status.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.
    """
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["replay"]:
        return _replay(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    scenario = None
    if args.scenario is not None:
        try:
            scenario = parse_scenario(args.scenario.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ScenarioError) as exc:
            parser.error(f"--scenario {args.scenario}: {exc}")
    try:
        asyncio.run(_run(args, scenario))
    except OSError as exc:
        print(f"pushsvc emulator: {exc}")
        return 1
    return 0
