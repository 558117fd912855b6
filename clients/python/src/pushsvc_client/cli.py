"""`pushsvc-client`: operator commands against a running pushsvc (send, cancel, receipts, prune, tokens import and
list, notifications list).

The server's `pushsvc` command runs the same commands through `main(prog="pushsvc")`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf import duration_pb2, json_format, message, timestamp_pb2

from pushsvc_client import importer, progress, tokenfile
from pushsvc_client.channel import connect
from pushsvc_client.receipts import ReceiptStream
from pushsvc_client.v1 import push_pb2, push_pb2_grpc

_PLATFORMS: dict[str, push_pb2.Platform.ValueType] = {
    name.removeprefix("PLATFORM_").lower(): value for name, value in push_pb2.Platform.items() if value
}
"""The platforms by their short names (`apns`), from the generated enum."""
_TABLE_COLUMNS = (("cursor", 12), ("status", 13), ("platform", 8), ("attempts", 8), ("provider_status", 15),
                  ("reason", 22), ("token", 0))
"""The table's columns and their widths; the token, of any length, comes last so it shifts nothing."""
_ENUM_PREFIXES = {"status": "DELIVERY_STATUS_", "platform": "PLATFORM_", "state": "NOTIFICATION_STATE_"}
_IF_PASSED = {"next-day": push_pb2.LOCAL_TIME_PASSED_NEXT_DAY, "send-now": push_pb2.LOCAL_TIME_PASSED_SEND_NOW}
_STATES = {
    name.removeprefix("NOTIFICATION_STATE_").lower(): number
    for name, number in push_pb2.NotificationState.items()
    if number != push_pb2.NOTIFICATION_STATE_UNSPECIFIED
}
_TOKEN_COLUMNS = (("platform", 8), ("user_id", 16), ("last_seen_at", 24), ("locale", 8), ("token", 0))
_NOTIFICATION_COLUMNS = (("notification_id", 32), ("state", 9), ("created_at", 24), ("targeted", 8),
                         ("delivered", 9), ("failed", 6), ("cancelled", 9), ("pending", 7))
DEFAULT_SERVER = "localhost:50051"


class UsageError(Exception):
    """A command line that cannot be run; exits 2."""


class _DeprecatedServer(argparse.Action):
    """`--target`, the old name of `--server`: still accepted, with a warning on stderr."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog.split()[0]}: {option_string} is deprecated; use --server", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pushsvc-client")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _connection_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    # Given before or after the command: the subcommands' copies default to
    # SUPPRESS so they never overwrite what was given before the command.
    def d(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    conn = parser.add_argument_group("connection")
    conn.add_argument("--server", default=d(DEFAULT_SERVER), help=f"host:port of pushsvc (default {DEFAULT_SERVER})")
    conn.add_argument("--target", dest="server", action=_DeprecatedServer, default=argparse.SUPPRESS,
                      help="deprecated: the old name of --server")
    conn.add_argument("--tls", action="store_true", default=d(False), help="connect over TLS (system roots unless --ca)")
    conn.add_argument("--ca", type=Path, default=d(None), help="PEM file of the CA that signed the server's certificate (implies --tls)")
    creds = conn.add_mutually_exclusive_group()
    creds.add_argument("--api-key-file", type=Path, default=d(None), help="file holding the API key (sent as authorization: Bearer)")
    creds.add_argument("--jwt-file", type=Path, default=d(None), help="file holding a JWT (sent as a bearer token)")
    conn.add_argument("--deadline-s", type=float, default=d(10.0), help="deadline of each unary call, in seconds (default 10)")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Operator commands for a running pushsvc.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _connection_options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, defaults=False)
    sub = parser.add_subparsers(dest="command", required=True)

    send = sub.add_parser("send", help="send a notification; prints its id", parents=[common])
    send.add_argument("--app", required=True)
    send.add_argument("--file", type=Path, help="a SendRequest in protobuf JSON; flags given as well override it")
    who = send.add_mutually_exclusive_group()
    who.add_argument("--token", action="append", default=[], help=f"PLATFORM:TOKEN, PLATFORM one of {', '.join(_PLATFORMS)}, e.g. apns:ab12… (repeatable)")
    who.add_argument("--user", action="append", default=[], help="a user id (repeatable)")
    who.add_argument("--topic")
    who.add_argument("--all", action="store_true", help="every token of the app")
    send.add_argument("--title")
    send.add_argument("--body")
    send.add_argument("--data", action="append", default=[], help="KEY=VALUE (repeatable)")
    send.add_argument("--idempotency-key")
    send.add_argument("--validate-only", action="store_true", help="count the targets and check the payload; send nothing")
    send.add_argument("--max-per-second", type=_int32, metavar="N",
                      help="send to at most N targets per second, across every replica (default: the app's default rate)")
    send.add_argument("--local-time", metavar="HH:MM",
                      help="deliver to each token at this wall-clock time in its own time zone")
    send.add_argument("--fallback-timezone", metavar="ZONE",
                      help="with --local-time: the IANA zone of tokens without one (default UTC)")
    send.add_argument("--if-passed", choices=sorted(_IF_PASSED),
                      help="with --local-time: where the time has passed today, the next day (default) or at once")

    rec = sub.add_parser("receipts", help="print receipts as JSON lines or a table, resuming after UNAVAILABLE",
                         parents=[common])
    rec.add_argument("--app", required=True)
    rec.add_argument("--notification", default="", help="a notification id: its receipts, until it is finished")
    rec.add_argument("--follow", action="store_true", help="without --notification: the app's live feed until Ctrl-C")
    rec.add_argument("--after", default="", help="resume after this cursor")
    rec.add_argument("--format", choices=("jsonl", "table"), default="jsonl")

    cancel = sub.add_parser(
        "cancel", parents=[common],
        help="cancel a queued, scheduled or running notification; its unsent tokens get CANCELLED receipts",
    )
    cancel.add_argument("--app", required=True)
    cancel.add_argument("notification", metavar="NOTIFICATION_ID")

    notifications = sub.add_parser("notifications", help="the app's notifications")
    notifications_sub = notifications.add_subparsers(dest="notifications_command", required=True)
    nlist = notifications_sub.add_parser("list", parents=[common], help="list notifications, newest first")
    nlist.add_argument("--app", required=True)
    nlist.add_argument("--state", choices=sorted(_STATES))
    nlist.add_argument("--created-after", metavar="TIME", help="ISO 8601; UTC unless it has an offset")
    nlist.add_argument("--created-before", metavar="TIME", help="ISO 8601; UTC unless it has an offset")
    _listing_options(nlist)

    prune = sub.add_parser("prune", help="remove tokens not seen for a while", parents=[common])
    prune.add_argument("--app", required=True)
    prune.add_argument("--stale-after-days", type=float, help="default: the server's configured staleness")
    prune.add_argument("--platform", action="append", choices=sorted(_PLATFORMS), default=[])
    prune.add_argument("--dry-run", action="store_true", help="count what would be removed; remove nothing")

    tokens = sub.add_parser("tokens", help="the app's device tokens in bulk")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    imp = tokens_sub.add_parser(
        "import", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="register the tokens of a CSV or JSON-lines file through RegisterTokens",
        description=tokenfile.__doc__,
    )
    imp.add_argument("file", type=Path, metavar="FILE.csv|FILE.jsonl")
    imp.add_argument("--app", default="", help="the app of rows without an app_id")
    imp.add_argument("--format", choices=tokenfile.FORMATS, help="default: from the file's suffix")
    imp.add_argument("--resume-from", type=int, default=0, metavar="LINE",
                     help="skip the rows up to this line: the line an interrupted import said it stopped after")
    imp.add_argument("--batch-size", type=int, default=importer.MAX_BATCH_ITEMS, help="rows per call (at most 1000)")
    imp.add_argument("--in-flight", type=int, default=4, help="calls in flight at once (default 4)")
    imp.add_argument("--retry-budget-s", type=float, default=60.0,
                     help="how long to keep retrying a batch on UNAVAILABLE before stopping (default 60)")
    imp.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                     help="on stderr: a bar on a terminal, a line every few seconds otherwise (auto)")
    imp.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    tlist = tokens_sub.add_parser("list", parents=[common], help="list registered tokens, filtered")
    tlist.add_argument("--app", required=True)
    tlist.add_argument("--user", default="", help="only this user's tokens")
    tlist.add_argument("--topic", default="", help="only tokens following this topic")
    tlist.add_argument("--platform", choices=sorted(_PLATFORMS))
    tlist.add_argument("--last-seen-before", metavar="TIME", help="ISO 8601; UTC unless it has an offset")
    tlist.add_argument("--last-seen-after", metavar="TIME", help="ISO 8601; UTC unless it has an offset")
    _listing_options(tlist)
    return parser


def _listing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=0, help="stop after this many (default: all)")
    parser.add_argument("--page-size", type=int, default=100, help="items per call (at most 1000; default 100)")
    parser.add_argument("--format", choices=("jsonl", "table"), default="jsonl")


def _send_request(args: argparse.Namespace) -> push_pb2.SendRequest:
    request = push_pb2.SendRequest()
    if args.file:
        try:
            json_format.Parse(args.file.read_text(), request)
        except (OSError, json_format.ParseError) as exc:
            raise UsageError(f"{args.file}: {exc}") from exc
    request.app_id = args.app
    if args.token:
        devices = []
        for spec in args.token:
            platform, sep, token = spec.partition(":")
            if not sep or platform not in _PLATFORMS or not token:
                specs = [f"{name}:TOKEN" for name in _PLATFORMS]
                raise UsageError(f"--token {spec!r}: want {', '.join(specs[:-1])} or {specs[-1]}")
            devices.append(push_pb2.Device(token=token, platform=_PLATFORMS[platform]))
        request.target.devices.CopyFrom(push_pb2.DeviceList(devices=devices))
    elif args.user:
        request.target.users.CopyFrom(push_pb2.UserList(user_ids=args.user))
    elif args.topic:
        request.target.topic = args.topic
    elif args.all:
        request.target.all = True
    if not request.target.WhichOneof("kind"):
        raise UsageError("give a target: --token, --user, --topic, --all, or a --file with one")
    if args.title is not None:
        request.message.title = args.title
    if args.body is not None:
        request.message.body = args.body
    for item in args.data:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--data {item!r}: want KEY=VALUE")
        request.message.data[key] = value
    if args.idempotency_key:
        request.idempotency_key = args.idempotency_key
    if args.validate_only:
        request.validate_only = True
    if args.max_per_second is not None:
        # Passed on as given: the server names a bad rate (a negative one) among the request's violations.
        request.max_per_second = args.max_per_second
    if args.local_time is not None:
        request.local_time.CopyFrom(_local_time(args.local_time))
    elif args.fallback_timezone is not None or args.if_passed is not None:
        raise UsageError("--fallback-timezone and --if-passed go with --local-time")
    if args.fallback_timezone is not None:
        request.local_time.fallback_timezone = args.fallback_timezone
    if args.if_passed is not None:
        request.local_time.if_passed = _IF_PASSED[args.if_passed]
    return request


def _local_time(value: str) -> push_pb2.LocalTime:
    hour, sep, minute = value.partition(":")
    if not (sep and value.isascii() and hour.isdigit() and minute.isdigit() and len(minute) == 2 and int(hour) < 24 and int(minute) < 60):
        raise UsageError(f"--local-time {value!r}: want HH:MM, e.g. 09:30")
    return push_pb2.LocalTime(hour=int(hour), minute=int(minute))


def _int32(text: str) -> int:
    """An argparse type: an integer that fits SendRequest's int32 fields."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not -(2**31) <= value < 2**31:
        raise argparse.ArgumentTypeError(f"out of range: {text}")
    return value


def _receipt_row(receipt: push_pb2.Receipt) -> dict[str, object]:
    return json_format.MessageToDict(receipt, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _table_cell(row: dict[str, object], column: str) -> str:
    value = str(row.get(column, ""))
    return value.removeprefix(_ENUM_PREFIXES.get(column, ""))


def _table_line(cells: Sequence[str]) -> str:
    return "  ".join(f"{cell:<{width}}" if width else cell for cell, (_, width) in zip(cells, _TABLE_COLUMNS, strict=True)).rstrip()


def _print_receipts(stream: Iterable[push_pb2.Receipt], fmt: str, out: TextIO) -> None:
    # Fixed widths: the rows stream in, so the table cannot be measured first.
    if fmt == "table":
        out.write(_table_line([c.upper() for c, _ in _TABLE_COLUMNS]) + "\n")
    for receipt in stream:
        row = _receipt_row(receipt)
        if fmt == "jsonl":
            out.write(json.dumps(row, sort_keys=True) + "\n")
        else:
            out.write(_table_line([_table_cell(row, c) for c, _ in _TABLE_COLUMNS]) + "\n")
        out.flush()


def _receipts(stub: push_pb2_grpc.PushServiceStub, args: argparse.Namespace, out: TextIO, prog: str) -> int:
    if not args.notification and not args.follow:
        raise UsageError("give --notification ID, or --follow for the app's live feed")
    stream = ReceiptStream(
        stub, args.app, args.notification, args.after,
        on_resume=lambda exc: print(f"{prog}: stream lost ({exc.code().name}); resuming", file=sys.stderr),
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: stream.cancel())
    try:
        _print_receipts(stream, args.format, out)
    finally:
        if stream.cursor:
            print(f"{prog}: last cursor {stream.cursor} (resume with --after {stream.cursor})", file=sys.stderr)
    return 0


def _timestamp(value: str | None, flag: str) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r}: want an ISO 8601 time, e.g. 2026-12-06T09:00:00Z") from None
    ts = timestamp_pb2.Timestamp()
    # timezone.utc, not datetime.UTC imported by name: that constant would count as a public name (tests/test_exports.py).
    ts.FromDatetime(at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc))  # noqa: UP017 - see above
    return ts


def _pages(call: Callable[[Any], Any], request: Any, field: str, limit: int) -> Iterator[message.Message]:
    """The items of every page of a List call (`request` is its List*Request), up to `limit` (0: all)."""
    if limit < 0 or not 1 <= request.page_size <= 1000:
        raise UsageError("--page-size must be 1 to 1000, and --limit at least 0")
    shown = 0
    while True:
        reply = call(request)
        for item in getattr(reply, field):
            yield item
            shown += 1
            if shown == limit:
                return
        if not reply.next_page_token:
            return
        request.page_token = reply.next_page_token


def _print_items(items: Iterable[message.Message], columns: Sequence[tuple[str, int]], fmt: str, out: TextIO) -> int:
    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{c:<{w}}" if w else c for c, (_, w) in zip(cells, columns, strict=True)).rstrip()

    if fmt == "table":
        out.write(line([c.upper() for c, _ in columns]) + "\n")
    for item in items:
        row = json_format.MessageToDict(item, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        if fmt == "jsonl":
            out.write(json.dumps(row, sort_keys=True) + "\n")
        else:
            out.write(line([_table_cell(row, c) for c, _ in columns]) + "\n")
    return 0


def _list_tokens(stub: push_pb2_grpc.PushServiceStub, args: argparse.Namespace, out: TextIO) -> int:
    request = push_pb2.ListTokensRequest(
        app_id=args.app, user_id=args.user, topic=args.topic, page_size=args.page_size,
        platform=_PLATFORMS[args.platform] if args.platform else push_pb2.PLATFORM_UNSPECIFIED,
        last_seen_before=_timestamp(args.last_seen_before, "--last-seen-before"),
        last_seen_after=_timestamp(args.last_seen_after, "--last-seen-after"),
    )
    return _print_items(_pages(stub.ListTokens, request, "tokens", args.limit), _TOKEN_COLUMNS, args.format, out)


def _list_notifications(stub: push_pb2_grpc.PushServiceStub, args: argparse.Namespace, out: TextIO) -> int:
    request = push_pb2.ListNotificationsRequest(
        app_id=args.app, page_size=args.page_size,
        state=_STATES[args.state] if args.state else push_pb2.NOTIFICATION_STATE_UNSPECIFIED,
        created_after=_timestamp(args.created_after, "--created-after"),
        created_before=_timestamp(args.created_before, "--created-before"),
    )
    items = _pages(stub.ListNotifications, request, "notifications", args.limit)
    return _print_items(items, _NOTIFICATION_COLUMNS, args.format, out)


def _cancel(stub: push_pb2_grpc.PushServiceStub, args: argparse.Namespace, out: TextIO) -> int:
    n = stub.CancelNotification(push_pb2.CancelNotificationRequest(app_id=args.app, notification_id=args.notification)).notification
    state = push_pb2.NotificationState.Name(n.state).removeprefix("NOTIFICATION_STATE_").lower()
    if n.state == push_pb2.NOTIFICATION_STATE_CANCELLED:
        out.write(f"{n.notification_id}: cancelled ({n.delivered} delivered, {n.cancelled} not sent)\n")
    else:
        out.write(f"{n.notification_id}: cancelling ({state}; {n.pending} token(s) still to get a receipt)\n")
    return 0


def _prune(stub: push_pb2_grpc.PushServiceStub, args: argparse.Namespace, out: TextIO) -> int:
    request = push_pb2.PruneRequest(
        app_id=args.app, platforms=[_PLATFORMS[p] for p in args.platform], dry_run=args.dry_run
    )
    if args.stale_after_days is not None:
        request.stale_after.CopyFrom(duration_pb2.Duration(seconds=round(args.stale_after_days * 86400)))
    reply = stub.Prune(request)
    if args.dry_run:
        out.write(f"would remove {reply.would_remove} token(s)\n")
    else:
        out.write(f"removed {reply.removed} token(s)\n")
    return 0


def _import(stub: push_pb2_grpc.PushServiceStub, args: argparse.Namespace, out: TextIO, prog: str) -> int:
    if not 1 <= args.batch_size <= importer.MAX_BATCH_ITEMS or args.in_flight < 1 or args.resume_from < 0:
        raise UsageError("--batch-size must be 1 to 1000, --in-flight at least 1, --resume-from at least 0")
    try:
        tokens = tokenfile.TokenFile(args.file, tokenfile.detect_format(args.file, args.format))
    except tokenfile.FileError as exc:
        raise UsageError(str(exc)) from exc
    with tokens:
        lines = progress.count_lines(str(args.file))
        expected = max(lines - max(args.resume_from, tokens.header_lines), 0)
        mode = args.progress
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        shown: progress.LineProgress | progress.BarProgress | progress.NoProgress
        if mode == "bar":
            shown = progress.BarProgress(expected, sys.stderr)
        elif mode == "lines":
            shown = progress.LineProgress(expected, sys.stderr, prog=prog)
        else:
            shown = progress.NoProgress(sys.stderr)

        def bad(line: int, reason: str) -> None:
            # Through the bar: a plain print would land in the middle of the bar's line.
            shown.write(f"{args.file}:{line}: {reason}")

        run = importer.TokenImporter(
            stub, default_app=args.app, batch_size=args.batch_size, in_flight=args.in_flight,
            deadline_s=args.deadline_s, retry_budget_s=args.retry_budget_s, on_bad=bad, on_progress=shown.update,
            on_status=shown.status,
        )
        # Ctrl-C asks the importer to stop (it answers within 0.1 s) rather than
        # raising wherever the main thread is, so no row is half counted.
        stop = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
        try:
            summary = run.run(tokens, resume_after=args.resume_from, stop=stop)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            shown.close()
    if args.json:
        out.write(json.dumps(summary.as_dict(), sort_keys=True) + "\n")
    else:
        out.write(
            f"{summary.rows:,} rows in {args.file}: {summary.created:,} created, {summary.updated:,} updated, "
            f"{summary.bad:,} bad, {summary.not_attempted:,} not attempted"
            + (f", {summary.skipped:,} skipped (up to line {args.resume_from})" if summary.skipped else "") + "\n"
        )
    if not summary.complete:
        print(f"{prog}: stopped ({summary.stopped_because}) after line {summary.resume_after}; "
              f"resume with --resume-from {summary.resume_after}", file=sys.stderr)
        return 130 if summary.stopped_because == "interrupted" else 1
    return 0 if summary.ok else 1


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, prog: str = "pushsvc-client") -> int:
    """Runs the operator commands (as `prog`); returns the exit status."""
    args = _parser(prog).parse_args(argv)
    try:
        api_key = args.api_key_file.read_text().strip() if args.api_key_file else None
        jwt = args.jwt_file.read_text().strip() if args.jwt_file else None
        root = args.ca.read_bytes() if args.ca else None
        with connect(
            args.server, tls=args.tls or args.ca is not None, root_certificates=root,
            api_key=api_key, jwt=jwt, deadline_s=args.deadline_s,
        ) as channel:
            stub = push_pb2_grpc.PushServiceStub(channel)
            if args.command == "send":
                reply = stub.Send(_send_request(args))
                if args.validate_only:
                    out.write(f"valid: would send to {reply.targeted} token(s)\n")
                    return 0
                out.write(reply.notification_id + "\n")
                if reply.duplicate:
                    print(f"{prog}: a repeat of an earlier send (same idempotency key)", file=sys.stderr)
                return 0
            if args.command == "receipts":
                return _receipts(stub, args, out, prog)
            if args.command == "tokens":
                if args.tokens_command == "list":
                    return _list_tokens(stub, args, out)
                return _import(stub, args, out, prog)
            if args.command == "notifications":
                return _list_notifications(stub, args, out)
            if args.command == "cancel":
                return _cancel(stub, args, out)
            return _prune(stub, args, out)
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        print(f"{prog}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
