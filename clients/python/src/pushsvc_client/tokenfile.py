"""Token files for `tokens import`: CSV with a header row, or JSON lines, read record by record.

A record is one row of the file, numbered by the line it starts on (a CSV
field in quotes may span lines). Blank lines are not rows. Reading and
parsing are separate steps, so rows before a resume point, or after an
interruption, are counted without being parsed.

CSV: the header names the columns, in any order; `token` and `platform` are
required, the others optional (an empty cell is an empty field):

    token, platform, app_id, user_id, topics, device_id, locale, timezone, app_version, apns_environment

`platform` is a Platform of the API by its short name, `apns`, `fcm`, ... (or
`PLATFORM_APNS`, ..., any case; a token that is JSON is quoted as CSV quotes it);
`topics` are separated by `;`; `apns_environment` is `production` (the
default) or `sandbox`; `app_id`, when given, overrides `--app` for its row.

JSON lines: one object per line with the same keys (RegisterToken's fields,
snake_case or protobuf JSON's camelCase), `topics` a list of strings.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pushsvc_client.v1 import push_pb2

COLUMNS = ("token", "platform", "app_id", "user_id", "topics", "device_id", "locale", "timezone", "app_version",
           "apns_environment")
"""The columns (and JSON keys) a token file may have."""
REQUIRED = ("token", "platform")
TOPIC_SEPARATOR = ";"
FORMATS = ("csv", "jsonl")

_SHORT_NAMES: dict[str, push_pb2.Platform.ValueType] = {
    name.removeprefix("PLATFORM_").lower(): value for name, value in push_pb2.Platform.items() if value
}
"""Every platform of the API by its short name (`apns`), from the generated enum."""
_PLATFORMS = {**_SHORT_NAMES, **{f"platform_{name}": value for name, value in _SHORT_NAMES.items()}}
_PLATFORM_CHOICES = ", ".join(list(_SHORT_NAMES)[:-1]) + " or " + list(_SHORT_NAMES)[-1]
_ENVIRONMENTS = {
    "": push_pb2.APNS_ENVIRONMENT_UNSPECIFIED,
    "production": push_pb2.APNS_ENVIRONMENT_PRODUCTION, "apns_environment_production": push_pb2.APNS_ENVIRONMENT_PRODUCTION,
    "sandbox": push_pb2.APNS_ENVIRONMENT_SANDBOX, "apns_environment_sandbox": push_pb2.APNS_ENVIRONMENT_SANDBOX,
}
_CAMEL = {"appId": "app_id", "userId": "user_id", "deviceId": "device_id", "appVersion": "app_version",
          "apnsEnvironment": "apns_environment"}
_STRING_FIELDS = ("token", "user_id", "device_id", "locale", "timezone", "app_version")


class FileError(Exception):
    """The file cannot be imported at all (unknown format, bad header); nothing was sent."""


class RowError(Exception):
    """One row cannot be parsed; the message says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One row as read: its line number and its raw content (parsed later), or why it could not be read."""

    line: int
    raw: Any
    error: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """A parsed row: the app it belongs to ("" when the file does not say) and its registration's fields."""

    app_id: str
    fields: dict[str, Any]
    """`push_pb2.TokenRegistration` keyword arguments (a batch adds the item in place, without a copy)."""
    size: int
    """About how many bytes the item takes in a request (for bounding a batch's size)."""


def detect_format(path: Path, given: str | None) -> str:
    """The file's format: `given`, or from its suffix (.csv; .jsonl, .ndjson, .json)."""
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise FileError(f"{path}: cannot tell the format from the suffix {suffix!r}; give --format csv or --format jsonl")


class TokenFile:
    """An open token file: `records()` once, then `parse()` each record you import."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.format = fmt
        self._fh: IO[str] = path.open(newline="", encoding="utf-8", errors="strict")
        self._columns: tuple[str, ...] = ()
        self.header_lines = 0
        """1 for CSV (its header row), 0 for JSON lines."""
        if fmt == "csv":
            self._reader = csv.reader(self._fh, strict=True)
            try:
                header = next(self._reader)
            except StopIteration:
                raise FileError(f"{path}: empty file; a CSV token file starts with a header row") from None
            except (csv.Error, UnicodeDecodeError) as exc:
                raise FileError(f"{path}: line 1: the header row cannot be read: {exc}") from None
            self._columns = tuple(c.strip().lower() for c in header)
            unknown = [c for c in self._columns if c not in COLUMNS]
            if unknown:
                raise FileError(f"{path}: unknown column(s) {', '.join(unknown)}; the columns are {', '.join(COLUMNS)}")
            missing = [c for c in REQUIRED if c not in self._columns]
            if missing:
                raise FileError(f"{path}: the header row lacks {', '.join(missing)} (it has {', '.join(self._columns)})")
            if len(set(self._columns)) != len(self._columns):
                raise FileError(f"{path}: a column is named twice in the header row")
            self.header_lines = 1

    def close(self) -> None:
        """Closes the file."""
        self._fh.close()

    def __enter__(self) -> TokenFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def records(self) -> Iterator[Record]:
        """Every row, in file order, unparsed (rows that cannot even be read carry their error)."""
        return self._csv_records() if self.format == "csv" else self._jsonl_records()

    def _csv_records(self) -> Iterator[Record]:
        reader = self._reader
        ended = reader.line_num
        while True:
            start = ended + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                ended = reader.line_num
                where = f" (through line {ended})" if ended > start else ""
                yield Record(start, None, f"malformed CSV: {exc}{where}")
                continue
            except UnicodeDecodeError:
                # The decoder fails on a chunk, not a line: nothing after it can be placed.
                yield Record(start, None, "not UTF-8; the rest of the file cannot be read")
                return
            ended = reader.line_num
            if fields:  # a blank line is no row
                yield Record(start, fields)

    def _jsonl_records(self) -> Iterator[Record]:
        line = 0
        while True:
            try:
                text = self._fh.readline()
            except UnicodeDecodeError:
                yield Record(line + 1, None, "not UTF-8; the rest of the file cannot be read")
                return
            if not text:
                return
            line += 1
            if text.strip():
                yield Record(line, text)

    def parse(self, record: Record) -> Row:
        """The registration a record holds; raises RowError saying what is wrong with it."""
        if record.error:
            raise RowError(record.error)
        if self.format == "csv":
            fields: list[str] = record.raw
            if len(fields) != len(self._columns):
                raise RowError(f"has {len(fields)} fields; the header has {len(self._columns)}")
            # Every CSV cell is a string: the row's dict is the keyword arguments, less the special columns.
            values: dict[str, Any] = dict(zip(self._columns, fields, strict=True))
            topics = values.pop("topics", "")
            values["topics"] = topics.split(TOPIC_SEPARATOR) if topics else ()
            return _row(values, sum(map(len, fields)) + 16)
        try:
            values = json.loads(record.raw)
        except ValueError as exc:
            raise RowError(f"malformed JSON: {exc}") from None
        if not isinstance(values, dict):
            raise RowError(f"a JSON line must hold an object, not {type(values).__name__}")
        values = {_CAMEL.get(k, k): v for k, v in values.items()}
        unknown = sorted(set(values) - set(COLUMNS))
        if unknown:
            raise RowError(f"unknown key(s) {', '.join(unknown)}")
        for name in _STRING_FIELDS + ("app_id",):
            value = values.get(name)
            if value is None:
                values.pop(name, None)
            elif not isinstance(value, str):
                raise RowError(f"{name}: must be a string")
        topics = values.get("topics")
        if topics is None:
            values["topics"] = ()
        elif not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise RowError("topics: must be a list of strings")
        return _row(values, len(record.raw) + 16)


def _row(values: dict[str, Any], size: int) -> Row:
    # `values` becomes the keyword arguments: the platform and environment as enum numbers, no app_id.
    platform_value = values.get("platform", "")
    platform = _PLATFORMS.get(platform_value.lower()) if isinstance(platform_value, str) else None
    if platform is None:
        raise RowError(f"platform: must be {_PLATFORM_CHOICES} (got {str(platform_value)[:40]!r})")
    values["platform"] = platform
    env_value = values.get("apns_environment") or ""
    env = _ENVIRONMENTS.get(env_value.lower()) if isinstance(env_value, str) else None
    if env is None:
        raise RowError(f"apns_environment: must be production or sandbox (got {str(env_value)[:40]!r})")
    values["apns_environment"] = env
    return Row(values.pop("app_id", ""), values, size)
