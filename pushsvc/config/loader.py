"""The layered loader: a TOML file, then secret files, then `PUSHSVC_*` variables, then CLI flags."""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from pushsvc.config.diagnostics import problems
from pushsvc.config.schema import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    ApiKeySettings,
    ApiKeysFile,
    AuthSettings,
    DispatchSettings,
    Settings,
    TlsSettings,
    TracingSettings,
)
from pushsvc.sections import ConfigError

log = logging.getLogger("pushsvc.config")


class _SettingsSchema(BaseSettings, Settings):
    """Settings as pydantic-settings sees them: how PUSHSVC_* names map onto the fields.

    Only its schema is used (by _EnvironmentSource); values are validated by
    Settings itself, which keeps construction free of hidden environment reads
    and passes the config file's directory to the path fields.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, case_sensitive=False
    )


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment parsing over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}


_FLAT_SECTIONS: dict[str, type[BaseModel]] = {
    "dispatch": DispatchSettings, "auth": AuthSettings, "tls": TlsSettings, "tracing": TracingSettings,
}


def _nest_flat_names(environ: Mapping[str, str]) -> dict[str, str]:
    """`PUSHSVC_DISPATCH_LEASE_S` as `PUSHSVC_DISPATCH__LEASE_S`, for the sections' known fields.

    Only known fields: other `PUSHSVC_*` variables (a client's, a test's) are
    not settings and are left alone. The `__` spelling wins when both are set.
    """
    out: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for name, value in environ.items():
        upper = name.upper()
        for section, model in _FLAT_SECTIONS.items():
            head = f"{ENV_PREFIX}{section.upper()}_"
            field = upper[len(head):].lower()
            if upper.startswith(head) and not field.startswith("_") and field in model.model_fields:
                aliases[f"{ENV_PREFIX}{section.upper()}{ENV_NESTED_DELIMITER}{field.upper()}"] = value
                break
        else:
            out[upper] = value
    for name, value in aliases.items():
        out.setdefault(name, value)
    return out


def _read_secrets_dir(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        # As pydantic-settings does: a warning, so a deployment's config can be
        # checked where its Secret is not mounted (check-config on a laptop).
        log.warning("secrets_dir %s is not a directory; no settings are read from it", directory)
        return {}
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise ConfigError(f"secrets_dir: cannot read {directory}: {exc.strerror}") from None
    values = {}
    for entry in entries:
        # Kubernetes mounts a Secret with hidden ..data links beside the keys.
        if entry.name.upper().startswith(ENV_PREFIX) and entry.is_file():
            values[entry.name] = entry.read_text().rstrip("\r\n")
    return values


def _merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """`high` over `low`, table by table."""
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _match_app_ids(values: dict[str, Any], known: Mapping[str, Any]) -> dict[str, Any]:
    # Environment names are case-insensitive (PUSHSVC_APPS__SHOP__...): they
    # address the file's app of that name whatever its case.
    apps = values.get("apps")
    if not isinstance(apps, Mapping):
        return values
    by_lower = {app_id.lower(): app_id for app_id in known}
    return {**values, "apps": {by_lower.get(app_id, app_id): _app_arrays(body) for app_id, body in apps.items()}}


def _app_arrays(body: Any) -> Any:
    # An app's arrays of tables (PUSHSVC_APPS__SHOP__WEBHOOKS) come as JSON, as the
    # top-level ones do; pydantic-settings decodes JSON only for fields it knows by name.
    hooks = body.get("webhooks") if isinstance(body, Mapping) else None
    if not isinstance(hooks, str):
        return body
    try:
        return {**body, "webhooks": json.loads(hooks)}
    except ValueError:
        return body  # left as the string: validation names the key and the layer


def _environment_layer(environ: Mapping[str, str], file_apps: Mapping[str, Any]) -> dict[str, Any]:
    try:
        values = _EnvironmentSource(_SettingsSchema, _nest_flat_names(environ))()
    except SettingsError as exc:
        raise ConfigError(f"environment: {exc}") from None
    return _match_app_ids(values, file_apps)


def load_settings(
    path: Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Reads a TOML file, then `secrets_dir`'s files, then `PUSHSVC_*` variables, then explicit overrides (CLI flags).

    Args:
        path: The TOML file; None means defaults and the environment only.
        env: The environment (os.environ when None).
        overrides: Top-level fields (None values are ignored: a flag not given).

    Raises:
        ConfigError: every problem, each with its key path (`dispatch.lease_s: ...`).
    """
    environ = os.environ if env is None else env
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        base_dir = path.parent
    flags = {k: v for k, v in overrides.items() if v is not None}
    apps = raw.get("apps")
    file_apps: Mapping[str, Any] = apps if isinstance(apps, Mapping) else {}
    from_env = _environment_layer(environ, file_apps)
    layers: list[tuple[str, Mapping[str, Any]]] = [("flags", flags), ("environment", from_env)]
    secrets_dir = flags.get("secrets_dir") or from_env.get("secrets_dir") or raw.get("secrets_dir")
    if secrets_dir:
        directory = Path(str(secrets_dir)).expanduser()
        directory = directory if directory.is_absolute() else base_dir / directory
        from_secrets = _environment_layer(_read_secrets_dir(directory), file_apps)
        layers.append((f"secrets_dir {directory}", from_secrets))
    layers.append((str(path) if path else "defaults", raw))
    merged: dict[str, Any] = {}
    for _, layer in reversed(layers):
        merged = _merge(merged, layer)
    try:
        settings = Settings.model_validate(merged, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(*problems(exc, layers)) from None
    if settings.auth.api_keys_file is not None:
        settings = settings.model_copy(
            update={"auth": settings.auth.model_copy(update={"api_keys": (*settings.auth.api_keys, *_api_keys_file(settings.auth.api_keys_file))})}
        )
    return settings


def _api_keys_file(path: Path) -> tuple[ApiKeySettings, ...]:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"auth.api_keys_file: {exc}") from exc
    try:
        return ApiKeysFile.model_validate(raw, context={"base_dir": path.parent}).api_keys
    except ValidationError as exc:
        raise ConfigError(*problems(exc, [(str(path), raw)], where=f"{path}: ")) from None

