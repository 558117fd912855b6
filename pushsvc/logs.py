"""Log lines: JSON (one object per line) or readable text, with request context, and never a secret.

Context travels in contextvars: the RPC layer (`pushsvc.rpc.telemetry`) sets
the request id and the caller's W3C `traceparent` for each call; Send and the
dispatcher set the notification id while they work on one. A `ContextFilter`
on the handler copies them onto every record, and the formatters write them.

Redaction is the formatters' last step, over the message, the structured
fields and any traceback: bearer credentials, JWTs, pushsvc API keys and PEM
private keys are replaced, and anything shaped like a device token (64+ hex
digits, or 100+ characters of an FCM token's alphabet) is cut to a short
prefix. Code that names a token on purpose uses `redact_token`.

Structured fields go in `extra={FIELDS: {...}}` (see `fields()`): JSON lines
carry them as top-level keys, text lines as `key=value` after the message.

Lines stay short whatever a caller sends: every value a line carries (each
argument of the message, each field, each line of a traceback) is cut to
`MAX_VALUE_CHARS` with a marker saying how much was left out, so a 1 MB
app_id refused at the door does not become a 1 MB log line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("pushsvc_request_id", default="")
"""The current RPC's request id ("" outside an RPC)."""
notification_id: contextvars.ContextVar[str] = contextvars.ContextVar("pushsvc_notification_id", default="")
"""The notification being sent or worked on ("" when none)."""
traceparent: contextvars.ContextVar[str] = contextvars.ContextVar("pushsvc_traceparent", default="")
"""The caller's valid W3C traceparent ("" when it sent none or a malformed one)."""

FIELDS = "pushsvc_fields"
"""The `extra` key under which a record carries its structured fields."""
_CONTEXT = ("request_id", "notification_id", "traceparent")
_CORE = frozenset({"time", "level", "logger", "message", "exception", *_CONTEXT})

FORMATS = ("json", "text")
"""The values of the `log_format` setting."""

MAX_VALUE_CHARS = 256
"""The longest value a log line carries whole; a longer one is cut (see `clip`)."""
_MAX_MESSAGE_CHARS = 4096
"""The longest message: it guards the text a call site put in its format string itself."""

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[!-~]*)?")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


def fields(**values: Any) -> dict[str, Any]:
    """The `extra` argument of a log call with structured fields: `log.info("...", extra=fields(k=v))`."""
    return {FIELDS: values}


def valid_traceparent(value: str) -> str:
    """`value` if it is a well-formed W3C traceparent (trace-context level 1), else "".

    Version ff, an all-zero trace id or parent id, and a version-00 header with
    anything after its flags are invalid; a later version may carry more fields.
    """
    m = _TRACEPARENT.fullmatch(value)
    if m is None:
        return ""
    version, trace_id, parent_id, _flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16 or (version == "00" and rest):
        return ""
    return value


def valid_request_id(value: str) -> str:
    """`value` if it can serve as a request id (1-128 printable, unspaced ASCII characters), else ""."""
    return value if _REQUEST_ID.fullmatch(value) else ""


def redact_token(token: str) -> str:
    """A device token cut to a prefix that identifies it to a human but cannot be used: 8 characters and "…"."""
    return token[: min(8, len(token) // 2)] + "…"


def clip(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`value`, or its first `limit` characters and a marker such as "…[+999744 chars]"."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}…[+{len(value) - limit} chars]"


def _cut(match: re.Match[str]) -> str:
    return redact_token(match.group(0))


_SECRETS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
     "[private key redacted]"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+|%20)[^\s\"',;]+"), r"\1 [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[jwt redacted]"),
    (re.compile(r"\bpsk_[A-Za-z0-9_-]{8,}"), "psk_[redacted]"),
    # Longest shape first: an FCM token may hold a run of hex digits.
    (re.compile(r"(?<![A-Za-z0-9_:-])[A-Za-z0-9_:-]{100,}"), _cut),
    (re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64,}(?![0-9A-Fa-f])"), _cut),
)


def redact(text: str) -> str:
    """`text` with credentials, private keys and device-token-shaped strings redacted."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Copies the request id, notification id and traceparent of the current context onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Adds the context attributes (never drops a record)."""
        record.request_id = request_id.get()
        record.notification_id = notification_id.get()
        record.traceparent = traceparent.get()
        return True


def _context(record: logging.LogRecord) -> dict[str, str]:
    out = {}
    for name in _CONTEXT:
        value = getattr(record, name, None)
        if value is None:  # a handler without ContextFilter: read the context here
            value = {"request_id": request_id, "notification_id": notification_id, "traceparent": traceparent}[name].get()
        if value:
            out[name] = value
    return out


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    extra = getattr(record, FIELDS, None)
    return extra if isinstance(extra, Mapping) else {}


def _scrub(value: Any) -> Any:
    # Redacted before it is cut: a cut could leave a credential too short to be recognised.
    if isinstance(value, str):
        return clip(redact(value))
    if isinstance(value, bool | int | float) or value is None:
        return value
    return clip(redact(json.dumps(value, default=str)))


def _bounded_arg(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = str(value)
    # A short value keeps its type, so %r and %d format it as the call site meant.
    return value if len(text) <= MAX_VALUE_CHARS else clip(redact(text))


def _message(record: logging.LogRecord) -> str:
    """`record.getMessage()` with each argument cut to `MAX_VALUE_CHARS`, and the whole to `_MAX_MESSAGE_CHARS`."""
    args = record.args
    if args:
        if isinstance(args, Mapping):
            bounded: Any = {k: _bounded_arg(v) for k, v in args.items()}
        else:
            bounded = tuple(_bounded_arg(a) for a in args)
        try:
            text = str(record.msg) % bounded
        except (TypeError, ValueError):
            text = record.getMessage()  # raises as logging itself would
    else:
        text = str(record.msg)
    return clip(text, _MAX_MESSAGE_CHARS)


def _bounded_lines(text: str) -> str:
    """A traceback with each line cut: an exception's message may quote what the caller sent."""
    return "\n".join(clip(line, 2 * MAX_VALUE_CHARS) for line in text.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, context, fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """See `logging.Formatter.format`."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(_message(record)),
        }
        out.update(_context(record))
        for key, value in _fields(record).items():
            if key not in _CORE:
                out[key] = _scrub(value)
        if record.exc_info:
            out["exception"] = redact(_bounded_lines(self.formatException(record.exc_info)))
        if record.stack_info:
            out["stack"] = redact(_bounded_lines(self.formatStack(record.stack_info)))
        # ensure_ascii: a log pipeline never sees a byte sequence it cannot decode.
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger message key=value ...`, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """See `logging.Formatter.format`."""
        record.message = _message(record)
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        extras = {**_context(record), **{k: v for k, v in _fields(record).items() if k not in _CORE}}
        if extras:
            line += " " + " ".join(
                f"{k}={clip(v) if isinstance(v, str) else clip(json.dumps(v, default=str))}" for k, v in extras.items()
            )
        if record.exc_info:
            line += "\n" + _bounded_lines(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + _bounded_lines(self.formatStack(record.stack_info))
        return redact(line)


def configure(log_format: str = "json", level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Sends every log record to `stream` (stderr by default) in `log_format`; returns the handler.

    `level` applies to pushsvc's own loggers; other libraries log at INFO and
    above whatever it is, so DEBUG never turns on a library's wire logging
    (which may print headers, credentials included). Replaces the handler an
    earlier call installed.
    """
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.set_name("pushsvc")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "pushsvc"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.INFO))
    logging.getLogger("pushsvc").setLevel(numeric)
    return handler


@contextlib.contextmanager
def bound_notification(value: str) -> Iterator[None]:
    """Sets the notification id of the lines logged inside the block."""
    reset = notification_id.set(value)
    try:
        yield
    finally:
        notification_id.reset(reset)
