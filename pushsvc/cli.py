"""The `pushsvc` command: parses arguments and delegates; no logic of its own."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pushsvc import __version__, config, errors, eventloop, logs

_DEV_HELP = """\
pushsvc dev is serving on {addr} (app "{app}", store: {store})
  emulator  APNs {apns}  FCM {fcm}
  web inbox {inbox}  (open it in a browser)
  inbox     curl -s {inbox}inbox
{hints}
Try it (grpcurl comes with `pip install -e '.[dev]'`):

  grpcurl -plaintext -d '{{"app_id":"{app}","token":"{tok}","platform":"PLATFORM_APNS","user_id":"alice"}}' \\
    {addr} pushsvc.v1.PushService/RegisterToken

  grpcurl -plaintext -d '{{"app_id":"{app}","target":{{"users":{{"user_ids":["alice"]}}}},"message":{{"title":"Hello","body":"from pushsvc"}}}}' \\
    {addr} pushsvc.v1.PushService/Send

  grpcurl -plaintext -d '{{"app_id":"{app}","notification_id":"<id from Send>"}}' \\
    {addr} pushsvc.v1.PushService/StreamReceipts
{connect}
Ctrl-C stops it.
"""

_DEV_CONNECT_PORT = 8080


def _dev_hints(inbox: str) -> str:
    """The channels' lines of the dev banner (Channel.dev_hint), each ending in a newline."""
    from pushsvc.channels import registry

    return "".join(f"  {c.dev_hint.format(inbox=inbox)}\n" for c in registry.CHANNELS if c.dev_hint)


def _dev_connect_port(host: str, asked: int | None) -> int | None:
    """The Connect port dev binds: the one asked for, None for off (or without the connect extra), else 8080 unless taken (then a free one)."""
    try:
        installed = all(importlib.util.find_spec(name) is not None for name in ("connectrpc", "uvicorn"))
    except ImportError:
        installed = False
    if not installed:
        return None  # the help text says how to install it
    if asked is not None:
        return None if asked < 0 else asked
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, _DEV_CONNECT_PORT))
        except OSError:
            return 0  # another dev (or anything) has it: the printed URL names the port taken instead
    return _DEV_CONNECT_PORT


_DEV_NO_CONNECT = """
Connect (JSON with curl) and gRPC-web need the connect extra: pip install 'pushsvc[connect]'
"""

_DEV_CONNECT = """
Or without a gRPC client: the same service over Connect (JSON POSTs) and gRPC-web at {base} (docs/connect.md):

  curl -s -H 'content-type: application/json' \\
    -d '{{"app_id":"{app}","target":{{"users":{{"user_ids":["alice"]}}}},"message":{{"title":"Hello","body":"from curl"}}}}' \\
    {base}/pushsvc.v1.PushService/Send
"""

_DEV_METRICS = """\
  metrics   curl -s http://{host}:{port}/metrics
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushsvc", description="Self-hosted push-notification gateway.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="in-memory store + built-in APNs/FCM emulator + demo app, no auth")
    dev.add_argument("--port", type=int, default=50051)
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--store", default="mongomock://localhost/pushsvc", help="mongomock:// (default), mongodb://HOST:PORT/DB or postgresql://USER@HOST:PORT/DB")
    dev.add_argument("--state-dir", type=Path, default=Path(".pushsvc/dev"), help="where demo credentials are written")
    dev.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics at /metrics on this port (0: off)")
    dev.add_argument("--connect-port", type=int, default=None,
                     help=f"serve PushService over Connect (JSON with curl) and gRPC-web on this port (0: a free port, -1: off; "
                          f"default {_DEV_CONNECT_PORT}, or a free port when that one is taken)")
    dev.add_argument("--control-port", type=int, default=0,
                     help="the emulator's web inbox and /_emulator/ endpoints over plain HTTP on 127.0.0.1 (0: a free port)")
    _log_flags(dev, default_format="text")
    serve = sub.add_parser("serve", help="production mode: PostgreSQL or MongoDB, real providers")
    serve.add_argument("--config", type=Path, required=True, help="TOML config file")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--insecure-no-auth", action="store_true", help="serve without caller auth: any caller can act as any app"
    )
    serve.add_argument("--metrics-port", type=int, default=None, help="Prometheus /metrics port (0: off; default: config)")
    _log_flags(serve, default_format=None)
    check = sub.add_parser(
        "check-config", help="validate a serve config file and the PUSHSVC_* environment; exit 0 when valid, 2 when not"
    )
    check.add_argument("file", type=Path, help="TOML config file")
    check.add_argument("--insecure-no-auth", action="store_true", help="as serve's flag: accept a config without auth")
    check.add_argument(
        "--no-secrets", action="store_true",
        help="check the settings without reading the files and variables holding secrets (a config for another machine)",
    )
    migrate = sub.add_parser(
        "migrate", help="bring a store's schema up to date (PostgreSQL migrations, MongoDB indexes) and exit; serve does it at start too"
    )
    where = migrate.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="TOML config file: its store_url (PUSHSVC_STORE_URL overrides)")
    where.add_argument("--store", help="a store URL, such as postgresql://user@host/db")
    keys = sub.add_parser("keys", help="API keys for callers")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key; prints it once, with the config snippet holding its hash")
    create.add_argument("--app", action="append", required=True, help="app id or prefix `team-*` (repeatable)")
    create.add_argument("--actions", required=True, help="comma separated: register,send,read,prune,admin")
    create.add_argument("--name", default="", help="shown in logs and audit lines (default: key-<random>)")
    sub.add_parser("emulator", help="the APNs/FCM emulator on its own (see `pushsvc emulator --help`)", add_help=False)
    for name, text in [
        ("send", "send a notification through a running server (needs pushsvc-client; see `pushsvc send -h`)"),
        ("receipts", "print a running server's receipts (needs pushsvc-client)"),
        ("prune", "prune stale tokens on a running server (needs pushsvc-client)"),
        ("tokens", "`tokens import FILE`, `tokens list`: bulk registration and lookup on a running server (needs pushsvc-client)"),
        ("cancel", "cancel a running or scheduled notification on a running server (needs pushsvc-client)"),
        ("notifications", "`notifications list`: a running server's notifications (needs pushsvc-client)"),
    ]:
        sub.add_parser(name, help=text, add_help=False)
    deliver = sub.add_parser(
        "deliver", help="send one notification straight through the provider adapters to a running `pushsvc emulator`"
    )
    deliver.add_argument("--manifest", type=Path, default=Path(".pushsvc/emulator/emulator.json"))
    # The channels' flags; imported here as the other commands' modules are, so `--help` stays quick.
    from pushsvc.channels import registry

    for channel in registry.CHANNELS:
        deliver.add_argument(f"--{channel.settings_key}-token", default="", help=channel.deliver_help)
    # A channel's own commands: `pushsvc <channel> <command>` (Channel.commands).
    for channel in registry.CHANNELS:
        if channel.commands:
            group = sub.add_parser(channel.settings_key, help=f"{channel.display_name} helpers")
            commands = group.add_subparsers(dest=f"{channel.settings_key}_command", required=True)
            for name, (text, run) in channel.commands.items():
                commands.add_parser(name, help=text).set_defaults(channel_command=run)
    deliver.add_argument("--title", default="Hello from pushsvc")
    deliver.add_argument("--body", default="delivered through the provider adapters")
    return parser


OPERATOR_COMMANDS = ("send", "receipts", "prune", "tokens", "cancel", "notifications")
"""Commands against a running server; they live in the client distribution (pushsvc_client.cli)."""


def _log_flags(parser: argparse.ArgumentParser, *, default_format: str | None) -> None:
    # serve's defaults come from its settings (file, then environment); dev has none.
    where = "default: config, else " if default_format is None else "default "
    parser.add_argument("--log-format", choices=logs.FORMATS, default=default_format,
                        help=f"log lines as json or text ({where}{default_format or 'json'})")
    parser.add_argument("--log-level", default=None, type=str.upper, choices=config.LOG_LEVELS,
                        help=f"pushsvc's own log level ({where}INFO)")


def main(argv: list[str] | None = None) -> int:
    """Runs the `pushsvc` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and (argv[0] in OPERATOR_COMMANDS or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"))):
        return _operator(argv)
    if argv[:1] == ["emulator"]:
        if _emulator_missing("emulator"):
            return 2
        from pushsvc.emulator import main as emulator_main

        return emulator_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command in ("dev", "deliver") and _emulator_missing(args.command, store_url=getattr(args, "store", None)):
        return 2
    if args.command == "dev":
        logs.configure(args.log_format, args.log_level or "INFO")
    elif args.command != "serve":  # serve configures logging once its settings are loaded
        logs.configure("text", "INFO")
    try:
        if args.command in ("dev", "serve"):
            from pushsvc.bootstrap import tune_garbage_collector

            tune_garbage_collector()
        if args.command == "dev":
            return asyncio.run(_until_signal(lambda stop: _dev(args, stop)))
        if args.command == "deliver":
            return asyncio.run(_deliver(args))
        if args.command == "keys":
            return _keys_create(args)
        if getattr(args, "channel_command", None) is not None:
            return int(args.channel_command())
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "migrate":
            return asyncio.run(_migrate(args))
        signalled = _Signalled()
        settings = _serve_settings(args)
        return _exit_now(
            eventloop.run(_until_signal(lambda stop: _serve(settings, stop), signalled), settings.event_loop), signalled
        )
    except config.ConfigError as exc:
        for problem in exc.problems or (str(exc),):
            print(f"pushsvc: config error: {problem}", file=sys.stderr)
        return 2
    except (OSError, errors.PushError) as exc:
        print(f"pushsvc: {exc}", file=sys.stderr)
        return 1


EMULATOR_EXTRA_MODULES = frozenset({"h2", "h11", "hpack", "hyperframe", "trustme", "mongomock"})
"""The top-level modules the `emulator` extra brings (with h2's own dependencies); `serve` needs none."""


def _emulator_missing(command: str, *, store_url: str | None = None) -> bool:
    """True, after saying how to install it, when the `emulator` extra is not installed.

    The server's own wheel leaves the emulator's dependencies out, so a bare
    `pip install pushsvc` gets a one-line hint here instead of a traceback.
    """
    try:
        import pushsvc.emulator  # noqa: F401  (imported to find out whether its dependencies are installed)

        if store_url is not None and store_url.startswith("mongomock:"):
            import mongomock  # noqa: F401  (the embedded store's engine, `pushsvc dev`'s default)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in EMULATOR_EXTRA_MODULES:
            raise
        print(f"pushsvc {command} needs the emulator: pip install 'pushsvc[emulator]'", file=sys.stderr)
        return True
    return False


def _operator(argv: list[str]) -> int:
    # The operator commands ship with pushsvc-client, so operators need not
    # install the server; `pushsvc` offers them too when the client is there
    # (scripts/install puts it in the dev venv).
    try:
        from pushsvc_client.cli import main as client_main
    except ImportError:
        print(
            f"pushsvc: `pushsvc {argv[0]}` comes with the client distribution: pip install ./clients/python "
            "(then `pushsvc-client` runs it too)",
            file=sys.stderr,
        )
        return 2
    return client_main(argv, prog="pushsvc")


_log = logging.getLogger("pushsvc")


class _Signalled:
    """When the first SIGTERM or SIGINT came (monotonic), for the exit line; one per run of a command."""

    def __init__(self) -> None:
        self.at: float | None = None


async def _until_signal(run: Callable[[asyncio.Event], Awaitable[None]], signalled: _Signalled | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signalled = signalled or _Signalled()

    def on_signal(signum: signal.Signals) -> None:
        if signalled.at is None:
            signalled.at = time.monotonic()
            _log.info("received %s: draining", signum.name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    await run(stop)
    return 0


def _exit_now(code: int, signalled: _Signalled) -> int:
    """Logs the exit; exits at once when a thread is still blocked in a call that never came back.

    The drain bounds every store and provider call it makes, but a thread
    blocked in one (a store that accepts and never answers) would otherwise
    hold the interpreter's exit until its socket timeout, past the grace.
    """
    since = f", {time.monotonic() - signalled.at:.1f} s after the signal" if signalled.at is not None else ""
    blocked = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not blocked:
        _log.info("exit %d%s", code, since)
        return code
    _log.warning("exit %d%s, leaving %d thread(s) blocked in a store or provider call", code, since, len(blocked))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def _dev(args: argparse.Namespace, stop: asyncio.Event) -> None:
    from pushsvc.bootstrap import freeze_startup_heap
    from pushsvc.devstack import DEMO_APP_ID, start_dev_stack
    from pushsvc.emulator import EmulatorConfig

    stack = await start_dev_stack(
        # 0 is off, as in serve's metrics_port.
        state_dir=args.state_dir, port=args.port, host=args.host, store_url=args.store, metrics_port=args.metrics_port or None,
        # Plain HTTP on loopback: a browser opens the inbox without trusting the emulator's CA.
        emulator_config=EmulatorConfig(control_port=args.control_port),
        connect_port=_dev_connect_port(args.host, args.connect_port),
    )
    freeze_startup_heap()
    try:
        connect = _DEV_NO_CONNECT if args.connect_port is None or args.connect_port >= 0 else ""
        if stack.app.connect is not None:
            connect = _DEV_CONNECT.format(base=f"http://{args.host}:{stack.app.connect_port}", app=DEMO_APP_ID)
        help_text = _DEV_HELP.format(
            addr=f"{args.host}:{stack.app.port}",
            app=DEMO_APP_ID,
            store=args.store,
            apns=stack.emulator.apns_url,
            fcm=stack.emulator.fcm_url,
            inbox=f"{stack.emulator.control_url}/_emulator/",
            hints=_dev_hints(f"{stack.emulator.control_url}/_emulator/"),
            tok="a1" * 32,
            connect=connect,
        )
        if stack.app.metrics_server is not None:
            metrics = _DEV_METRICS.format(host=args.host, port=stack.app.metrics_port)
            help_text = help_text.replace("\n\nTry it", "\n" + metrics.rstrip("\n") + "\n\nTry it", 1)
        print(help_text, flush=True)
        await stop.wait()
    finally:
        await stack.stop(grace_s=stack.app.settings.grace_s)


def _serve_settings(args: argparse.Namespace) -> config.Settings:
    """serve's settings, checked, with logging configured: read before the loop starts, which they choose."""
    settings = config.load_settings(
        args.config, port=args.port, metrics_port=args.metrics_port, log_format=args.log_format, log_level=args.log_level
    )
    logs.configure(settings.log_format, settings.log_level)
    if args.insecure_no_auth:
        settings = settings.model_copy(update={"auth": settings.auth.model_copy(update={"insecure_no_auth": True})})
    config.check_serve(settings)
    return settings


async def _serve(settings: config.Settings, stop: asyncio.Event) -> None:
    from pushsvc.bootstrap import build_application, check_credentials, freeze_startup_heap

    # Every secret first, each problem by its key path, as check-config reports them.
    check_credentials(settings)
    app = build_application(settings)
    port = await app.start()
    freeze_startup_heap()
    logging.getLogger("pushsvc").info("serving on %s:%d with %d app(s)", settings.host, port, len(settings.apps))
    if app.metrics_server is not None:
        logging.getLogger("pushsvc").info("metrics on http://%s:%d/metrics", settings.metrics_host, app.metrics_port)
    if app.connect is not None:
        logging.getLogger("pushsvc").info("Connect and gRPC-web on http://%s:%d", settings.host, app.connect_port)
    if settings.tracing.otlp_endpoint:
        logging.getLogger("pushsvc").info("traces exported to %s", settings.tracing.otlp_endpoint)
    try:
        await stop.wait()
    finally:
        await app.stop()


def _check_config(args: argparse.Namespace) -> int:
    settings: config.Settings | None = None
    try:
        settings = config.load_settings(args.file)
        if args.insecure_no_auth:
            settings = settings.model_copy(update={"auth": settings.auth.model_copy(update={"insecure_no_auth": True})})
        config.check_serve(settings)
        if not args.no_secrets:
            from pushsvc.bootstrap import check_credentials

            check_credentials(settings)
    except config.ConfigError as exc:
        count = len(exc.problems)
        print(f"{args.file}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        if settings is not None and settings.secrets_dir is not None and not settings.secrets_dir.is_dir():
            print(
                f"  (secrets_dir {settings.secrets_dir} is not here; --no-secrets checks the settings alone)",
                file=sys.stderr,
            )
        return 2
    print(f"{args.file}: ok")
    for line in config.summary(settings):
        print(f"  {line}")
    if args.no_secrets:
        print("  secrets: not read (--no-secrets)")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    import secrets

    from pushsvc.access import AppScope, hash_key, new_key, parse_actions
    from pushsvc.auth.apikeys import config_snippet

    try:
        AppScope.parse(args.app, "--app")
        actions = sorted(a.value for a in parse_actions(filter(None, args.actions.split(",")), "--actions"))
    except ValueError as exc:
        print(f"pushsvc keys create: {exc}", file=sys.stderr)
        return 2
    if not actions:
        print("pushsvc keys create: --actions: give at least one action", file=sys.stderr)
        return 2
    name = args.name or f"key-{secrets.token_hex(4)}"
    key = new_key()
    print(f"API key {name!r}, shown only this once; give it to the caller as 'authorization: Bearer <key>':\n")
    print(f"  {key}\n")
    print("Add this to the config's [auth] section or to the file auth.api_keys_file names:\n")
    print(config_snippet(name, hash_key(key), args.app, actions))
    return 0


async def _deliver(args: argparse.Namespace) -> int:
    from pushsvc import models
    from pushsvc.channels import registry
    from pushsvc.devstack import deliver_once

    tokens = {
        c.platform: getattr(args, f"{c.settings_key}_token")
        for c in registry.CHANNELS
        if getattr(args, f"{c.settings_key}_token")
    }
    if not tokens:
        flags = " and/or ".join(f"--{c.settings_key}-token" for c in registry.CHANNELS)
        print(f"pushsvc deliver: give {flags}", file=sys.stderr)
        return 2
    message = models.Message(title=args.title, body=args.body)
    results = await deliver_once(args.manifest, message, tokens)
    for platform, result in results.items():
        print(
            f"{platform.name}: {result.outcome.value} status={result.provider_status} "
            f"reason={result.reason or '-'} id={result.provider_message_id or '-'}"
        )
    return 0 if all(r.outcome.value == "delivered" for r in results.values()) else 1


async def _migrate(args: argparse.Namespace) -> int:
    from pushsvc.storage import open_stores

    url = args.store or config.load_settings(args.config).store_url
    try:
        stores = open_stores(url)
    except ValueError as exc:
        raise config.ConfigError(str(exc)) from None
    try:
        await stores.prepare()
    finally:
        stores.close()
    print(f"pushsvc: the {url.split('://', 1)[0]}:// store's schema is up to date")
    return 0
