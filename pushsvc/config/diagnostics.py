"""Diagnostics: config errors that name their key path and layer, `check-config`'s summary, and `serve`'s safety checks."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from pushsvc.config.schema import AppSettings, Settings
from pushsvc.sections import ConfigError


def key_path(loc: tuple[int | str, ...]) -> str:
    """`('auth', 'api_keys', 0, 'name')` as `auth.api_keys[0].name`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _source(loc: tuple[int | str, ...], layers: list[tuple[str, Mapping[str, Any]]]) -> str:
    """Which layer gave the value at loc (the highest that has it)."""
    for label, layer in layers:
        node: Any = layer
        for part in loc:
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list | tuple) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                break
        else:
            if not isinstance(node, Mapping):  # a value, not a table several layers may fill
                return label
    return ""


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the table at loc, for "did you mean"."""
    model: type[BaseModel] = Settings
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        origin = typing.get_origin(field.annotation)
        if parts and (origin is tuple or origin in (Mapping, dict)):
            parts.pop(0)  # an array index or an app id
        found = _model_type(field.annotation)
        if found is None:
            return []
        model = found
    return list(model.model_fields)


def _model_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in typing.get_args(annotation) if (m := _model_type(arg)) is not None), None)


def problems(exc: ValidationError, layers: list[tuple[str, Mapping[str, Any]]], where: str = "") -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(loc[-1]), _known_keys(loc[:-1]), n=1)
            message = "unknown key" + (f" (did you mean {near[0]!r}?)" if near else "")
        source = _source(loc, layers) if loc else ""
        origin = f" (from the {source})" if source in ("environment", "flags") or source.startswith("secrets_dir") else ""
        problems.append(f"{where}{key_path(loc) or 'config'}: {message}{origin}")
    return problems


SERVE_STORE_SCHEMES = ("mongodb://", "mongodb+srv://", "postgresql://", "postgres://")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def summary(settings: Settings) -> list[str]:
    """What a config amounts to, for `pushsvc check-config`: apps, store scheme, principals; never a secret."""
    def channels(app: AppSettings) -> str:
        # A channel is a table of its own (a settings model); webhooks are an array beside them.
        names = "+".join(p for p in type(app).model_fields if isinstance(getattr(app, p), BaseModel)) or "no providers"
        hooks = f"; {_count(len(app.webhooks), 'webhook', 'webhooks')}" if app.webhooks else ""
        return names + hooks

    apps = ", ".join(f"{app_id} ({channels(app)})" for app_id, app in sorted(settings.apps.items()))
    auth = settings.auth
    principals = (
        "off (--insecure-no-auth)"
        if auth.insecure_no_auth
        else ", ".join((
            _count(len(auth.api_keys), "API key", "API keys"),
            _count(len(auth.jwt), "JWT issuer", "JWT issuers"),
            _count(len(auth.identities), "mTLS identity", "mTLS identities"),
        ))
    )
    tls = "off" if settings.tls is None else ("mTLS" if settings.tls.require_client_cert else "on")
    secrets = []
    if settings.secrets_dir is not None:
        found = "" if settings.secrets_dir.is_dir() else " (not found here: its values are missing)"
        secrets = [f"secrets_dir: {settings.secrets_dir}{found}"]
    return [
        f"apps:  {apps or 'none'}",
        f"store: {settings.store_url.split('://', 1)[0]}://",
        f"auth:  {principals}",
        f"tls:   {tls}",
        f"grpc:  {settings.host}:{settings.port}, metrics: {settings.metrics_port or 'off'}, grace: {settings.grace_s:g} s",
        *secrets,
    ]


def check_serve(settings: Settings) -> None:
    """The safety checks of `pushsvc serve`: a real store, and auth unless explicitly switched off.

    Raises:
        ConfigError: a one-line reason.
    """
    if not settings.store_url.startswith(SERVE_STORE_SCHEMES):
        raise ConfigError(
            "serve needs store_url = 'postgresql://...', 'mongodb://...' or 'mongodb+srv://...' (or PUSHSVC_STORE_URL); "
            "the in-memory store is for `pushsvc dev` only"
        )
    if settings.auth.configured and settings.auth.insecure_no_auth:
        raise ConfigError("--insecure-no-auth conflicts with the configured [auth] principals; drop one")
    if not settings.auth.configured and not settings.auth.insecure_no_auth:
        raise ConfigError(
            "serve needs [auth] api_keys, jwt or identities; pass --insecure-no-auth to serve without auth"
        )
    tls = settings.tls
    if settings.auth.identities and (tls is None or tls.client_ca_file is None or not tls.require_client_cert):
        # Without require_client_cert grpc does not ask for a client certificate at all.
        raise ConfigError(
            "auth.identities need mTLS: set [tls] cert_file, key_file, client_ca_file and require_client_cert = true"
        )
