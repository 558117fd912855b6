"""The config reference (docs/config.md), made from the settings models.

Every key, its type, default, environment variable and description come from
pushsvc.config, so the reference cannot drift from the code:
`scripts/gen-config-reference` writes it, and a test fails when the committed
file differs (a field added without being documented). A development tool,
so it lives here and not in the wheel; `python scripts/config_reference.py`
prints the reference.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pushsvc import config

_HEADER = """\
# Configuration reference

<!-- Made by scripts/gen-config-reference from pushsvc/config/schema.py; do not edit by hand. -->

`pushsvc serve --config FILE` reads a TOML file; `pushsvc check-config FILE` validates one. Each value
can be overridden, in this order of precedence (highest first):

1. command-line flags (`--port`);
2. `PUSHSVC_*` environment variables: the names below; every nested key also as
   `PUSHSVC_<TABLE>__<KEY>` with `__` between levels (`PUSHSVC_DISPATCH__LEASE_S`,
   `PUSHSVC_APPS__DEMO__FCM__PROJECT_ID`); arrays of tables take JSON;
3. files in `secrets_dir`, named like the environment variables, each holding one value;
4. the TOML file;
5. the defaults below.

Names are case-insensitive; an app id from the environment matches the file's app of that name in any case.
Relative paths are relative to the config file. Unknown keys are errors, and so are `PUSHSVC_*__*` names
that name no key; other `PUSHSVC_*` variables are ignored.
"""


@dataclasses.dataclass(frozen=True)
class Row:
    """One key of the reference."""

    key: str
    type: str
    default: str
    env: str
    description: str


def rows() -> list[Row]:
    """Every documented key, in the order of the models."""
    return list(_rows(config.Settings, "", "PUSHSVC_", flat=True))


def render() -> str:
    """docs/config.md's text."""
    lines = [_HEADER]
    section = None
    for row in rows():
        top = row.key.split(".", 1)[0] if "." in row.key else ""
        if top != section:
            section = top
            title = f"`[{top}]`" if top and top != "apps" else ("`[apps.<app_id>]`" if top else "Top level")
            lines += ["", f"## {title}", "", "| key | type | default | environment | description |", "|---|---|---|---|---|"]
        env = f"`{row.env}`" if row.env else "—"
        cells = (f"`{row.key}`", row.type, row.default, env, row.description)
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _rows(model: type[BaseModel], prefix: str, env_prefix: str, *, flat: bool) -> Iterator[Row]:
    for name, field in model.model_fields.items():
        if model is config.AppSettings and name == "app_id":
            continue  # the table name
        key = f"{prefix}{name}"
        env = f"{env_prefix}{name.upper()}" if env_prefix else ""
        description = " ".join((field.description or "").split())
        nested = _model(field.annotation)
        origin = typing.get_origin(field.annotation)
        if origin in (Mapping, dict) and nested is not None:
            yield from _rows(nested, f"{key}.<app_id>.", f"{env}__<APP>__", flat=False)
        elif origin is tuple and nested is not None:
            yield Row(key, "array of tables (JSON in the environment)", "`[]`", env, description)
            yield from _rows(nested, f"{key}[].", "", flat=False)
        elif nested is not None:
            sep = "_" if flat else "__"
            yield from _rows(nested, f"{key}.", f"{env}{sep}" if env else "", flat=False)
        else:
            yield Row(key, _type(field), _default(field), env, description)


def _model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in typing.get_args(annotation) if (m := _model(arg)) is not None), None)


_NAMES = {str: "string", int: "integer", float: "float", bool: "boolean", Path: "path"}


def _type(field: FieldInfo) -> str:
    annotation: Any = field.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = len(args) < len(typing.get_args(annotation))
    if optional and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is typing.Literal:
        text = " or ".join(json.dumps(a) for a in typing.get_args(annotation))
    elif typing.get_origin(annotation) is tuple:
        text = f"array of {_NAMES[typing.get_args(annotation)[0]]}s"
    else:
        text = _NAMES[annotation]
    bounds = []
    for meta in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"), ("min_length", "length ≥")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value}")
    return text + (f", {', '.join(bounds)}" if bounds else "") + (", optional" if optional else "")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True) if field.default is PydanticUndefined else field.default
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
