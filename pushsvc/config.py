"""Settings: a TOML file, then secret files, then `PUSHSVC_*` environment variables, then CLI flags.

The models are pydantic-settings models: frozen, with unknown keys rejected
(a typo must not pass silently) and ranges checked. Every field's docstring is
its description in the config reference (docs/config.md, made from these
models by `scripts/gen-config-reference`).

Environment overrides, for every field:

- top-level fields: `PUSHSVC_<FIELD>` (`PUSHSVC_STORE_URL`, `PUSHSVC_PORT`);
- nested fields, with `__` between the levels: `PUSHSVC_DISPATCH__LEASE_S`,
  `PUSHSVC_APPS__DEMO__FCM__PROJECT_ID`, `PUSHSVC_TLS__CERT_FILE`; arrays of
  tables (`auth.api_keys`) take JSON: `PUSHSVC_AUTH__API_KEYS='[{"name": ...}]'`;
- the sections' fields also by their flat names, `PUSHSVC_DISPATCH_LEASE_S`,
  `PUSHSVC_AUTH_API_KEYS_FILE`, `PUSHSVC_TLS_CERT_FILE`.

Secrets are never inline: the config names files (a .p8 key, a service-account
JSON) mounted from Kubernetes Secrets, or environment variables holding them
(`key_env`, `cert_env`, `service_account_env`, `hash_env`, `secret_env`). An API
key's SHA-256 hash may be inline. `secrets_dir` (or `PUSHSVC_SECRETS_DIR`) names a
directory of files named like the environment variables above, each holding the
value (a Secret mounted as a volume, e.g. /run/secrets/PUSHSVC_STORE_URL holding a
store URL with its password); environment variables win over those files.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

log = logging.getLogger("pushsvc.config")

APNS_PRODUCTION_URL = "https://api.push.apple.com"
APNS_SANDBOX_URL = "https://api.sandbox.push.apple.com"
FCM_URL = "https://fcm.googleapis.com"

ENV_PREFIX = "PUSHSVC_"
ENV_NESTED_DELIMITER = "__"


class ConfigError(ValueError):
    """The configuration is invalid; each problem names its key path."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems: tuple[str, ...] = problems


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    # Relative paths are relative to the config file (load_settings passes its
    # directory as the validation context), so a config and its secrets move together.
    value = value.expanduser()
    base_dir = (info.context or {}).get("base_dir")
    return base_dir / value if base_dir is not None and not value.is_absolute() else value


def _empty_is_none(value: Any) -> Any:
    # An empty environment variable clears an optional path set in the file.
    return None if value == "" else value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path, relative to the config file's directory when not absolute."""
OptionalPath = Annotated[ConfigPath | None, BeforeValidator(_empty_is_none)]
"""An optional path; an empty string means none."""
Port = Annotated[int, Field(ge=0, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]
Seconds = Annotated[float, Field(ge=0)]


class _Section(BaseModel):
    """A table of the config: frozen, unknown keys rejected, field docstrings as descriptions."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class ApnsAppSettings(_Section):
    """One app's APNs credentials: token auth (key_file or key_env) or certificate auth (cert_file or cert_env)."""

    bundle_id: str = Field(min_length=1)
    """The app's bundle id, the default apns-topic; push types add their suffix (".voip", ...)."""
    key_file: OptionalPath = None
    """The .p8 signing key (token auth)."""
    key_env: str = ""
    """An environment variable holding the .p8 key's PEM text, instead of key_file."""
    key_id: str = ""
    """The signing key's 10-character Key ID (token auth)."""
    team_id: str = ""
    """The Apple developer Team ID (token auth)."""
    cert_file: OptionalPath = None
    """PEM or P12 client certificate (certificate auth)."""
    cert_env: str = ""
    """An environment variable holding the PEM client certificate (and its key, unless cert_key_file), instead of cert_file."""
    cert_key_file: OptionalPath = None
    """PEM private key when it is not with the certificate."""
    cert_password_file: OptionalPath = None
    """File holding the P12 or key password."""
    production_url: str = APNS_PRODUCTION_URL
    """APNs production endpoint."""
    sandbox_url: str = APNS_SANDBOX_URL
    """APNs sandbox (development) endpoint."""
    ca_file: OptionalPath = None
    """Extra CA to trust (the emulator's); unset means the system store."""

    @model_validator(mode="after")
    def _one_credential(self) -> ApnsAppSettings:
        token = [n for n in ("key_file", "key_env") if getattr(self, n)]
        cert = [n for n in ("cert_file", "cert_env") if getattr(self, n)]
        if not token and not cert:
            raise ValueError("set key_file or key_env (token auth), or cert_file or cert_env (certificate auth)")
        if len(token) + len(cert) > 1:
            raise ValueError(f"set one credential, not {' and '.join(token + cert)}")
        if token and not (self.key_id and self.team_id):
            raise ValueError("token auth needs key_id and team_id")
        return self


class FcmAppSettings(_Section):
    """One app's FCM HTTP v1 credentials."""

    service_account_file: OptionalPath = None
    """The service-account JSON; or service_account_env."""
    service_account_env: str = ""
    """An environment variable holding the service-account JSON, instead of service_account_file."""
    project_id: str = ""
    """The Firebase project; empty means the service account's project_id."""
    base_url: str = FCM_URL
    """FCM endpoint."""
    ca_file: OptionalPath = None
    """Extra CA to trust for FCM and the OAuth token_uri (the emulator's)."""

    @model_validator(mode="after")
    def _one_account(self) -> FcmAppSettings:
        if bool(self.service_account_file) == bool(self.service_account_env):
            raise ValueError("set exactly one of service_account_file, service_account_env")
        return self


class AppSettings(_Section):
    """One tenant app and its provider credentials: the table `[apps.<app_id>]`."""

    app_id: str = ""
    """The app's id; taken from the table name."""
    apns: ApnsAppSettings | None = None
    """APNs credentials; without them the app cannot send to iOS devices."""
    fcm: FcmAppSettings | None = None
    """FCM credentials; without them the app cannot send to Android devices."""


class DispatchSettings(_Section):
    """The delivery pipeline's knobs."""

    workers: int = Field(default=2, ge=0)
    """Partitions this replica works on at once; 0 sends nothing (an API-only replica)."""
    lease_s: PositiveSeconds = 10.0
    """How long a claimed partition stays ours without renewal (renewed every third of it).
    When a replica dies for good, another one resumes its partitions after this long."""
    replica_id: str = ""
    """This replica's name, unique among live replicas and stable across its restarts (in
    Kubernetes, the pod name). A restarted replica frees the leases its earlier incarnation
    held and resumes them at once. Empty means the host name."""
    batch_size: int = Field(default=500, gt=0)
    """Targets read, sent and checkpointed together; bounds duplicates after a crash."""
    partition_size: int = Field(default=5000, gt=0)
    """Targets per partition; big fan-outs split so several replicas share them."""
    max_partitions: int = Field(default=64, gt=0)
    """Most partitions one notification is split into."""
    max_in_flight_per_provider: int = Field(default=500, gt=0)
    """Concurrent requests per provider (app and platform)."""
    max_attempts: int = Field(default=5, gt=0)
    """Sends of one delivery before a retryable failure is final."""
    initial_backoff_s: PositiveSeconds = 0.5
    """First retry delay; doubles per attempt (with jitter), unless the provider says Retry-After."""
    max_backoff_s: PositiveSeconds = 60.0
    """Longest retry delay."""
    poll_interval_s: PositiveSeconds = 0.2
    """Idle sleep between claim attempts and receipt polls."""
    store_backoff_max_s: PositiveSeconds = 5.0
    """Longest wait between claim attempts while the store is unreachable (doubling from poll_interval_s)."""
    failed_partition_retry_s: Seconds = 5.0
    """How long a partition whose run failed unexpectedly waits before it is claimed again."""
    unstored_partition_retry_s: Seconds = 1.0
    """How long a partition whose notification is not stored yet waits before it is claimed again."""
    max_queue_depth: int = Field(default=10000, gt=0)
    """Unfinished notifications above which Send answers RESOURCE_EXHAUSTED."""
    queue_depth_cache_s: Seconds = 1.0
    """How long Send reuses the last queue-depth count before asking the store again."""
    receipt_retention_days: float = Field(default=7.0, gt=0)
    """How long receipts are kept for StreamReceipts replays."""
    orphan_after_s: PositiveSeconds = 60.0
    """A partition whose notification never got stored is dropped after this long."""
    receipt_gap_grace_s: Seconds = 5.0
    """How long a receipt reader waits for a missing cursor before skipping it."""
    request_timeout_s: PositiveSeconds = 10.0
    """Deadline of one provider request, queueing for a stream included."""
    connect_timeout_s: PositiveSeconds = 5.0
    """Deadline of one provider connection set-up (TCP and TLS)."""
    connections_per_provider: int = Field(default=1, gt=0)
    """HTTP/2 connections per app, platform and provider host; each carries up to
    the server's stream limit (about 1000 on APNs), so one is usually enough."""
    fault_log_interval_s: PositiveSeconds = 10.0
    """At most one log line per app, platform and kind of provider trouble this often (with a count of the rest)."""


def _check_scope(apps: tuple[str, ...], actions: tuple[str, ...]) -> None:
    # Imported here: pushsvc.auth's package imports this module.
    from pushsvc.auth.principal import AppScope, parse_actions

    AppScope.parse(apps, "apps")
    parse_actions(actions, "actions")


class ApiKeySettings(_Section):
    """One API key principal. The key itself is never stored, only its hash."""

    name: str = Field(min_length=1)
    """Shown in logs and audit lines as `key:<name>`."""
    hash: str = ""
    """`sha256:<hex>`, as printed by `pushsvc keys create`."""
    hash_file: OptionalPath = None
    """A file holding the hash (a mounted Secret)."""
    hash_env: str = ""
    """An environment variable holding the hash."""
    apps: tuple[str, ...] = ()
    """App ids, or prefixes written `team-*`; `*` is every app."""
    actions: tuple[str, ...] = ()
    """register, send, read, prune, admin."""

    @field_validator("hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        from pushsvc.auth.apikeys import parse_hash

        try:
            return parse_hash(value) if value else value
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("hash: ")) from None

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeySettings:
        if sum(map(bool, (self.hash, self.hash_file, self.hash_env))) != 1:
            raise ValueError("set exactly one of hash, hash_file, hash_env")
        _check_scope(self.apps, self.actions)
        return self


class JwtIssuerSettings(_Section):
    """A trusted JWT issuer and the one source of its verification keys."""

    issuer: str = Field(min_length=1)
    """The `iss` claim this issuer's tokens carry."""
    audience: str = Field(min_length=1)
    """The `aud` claim tokens must carry for pushsvc."""
    public_key_file: OptionalPath = None
    """PEM public key (RSA, EC or Ed25519)."""
    jwks_file: OptionalPath = None
    """JWKS document of public keys, selected by `kid`."""
    secret_file: OptionalPath = None
    """HS256 shared secret (at least 32 bytes)."""
    secret_env: str = ""
    """An environment variable holding the HS256 shared secret."""
    algorithms: tuple[str, ...] = ()
    """Narrows the algorithms the key's type allows; empty means all of those."""
    leeway_s: Seconds = 30.0
    """Clock skew tolerated on exp, nbf and iat."""

    @model_validator(mode="after")
    def _one_key_source(self) -> JwtIssuerSettings:
        sources = (self.public_key_file, self.jwks_file, self.secret_file, self.secret_env)
        if sum(map(bool, sources)) != 1:
            raise ValueError("set exactly one of public_key_file, jwks_file, secret_file, secret_env")
        return self


class IdentitySettings(_Section):
    """An mTLS principal: the SPIFFE ID in a client certificate's URI SAN."""

    spiffe_id: str
    """`spiffe://<trust domain>/<path>`, matched exactly."""
    apps: tuple[str, ...] = ()
    """App ids, or prefixes written `team-*`; `*` is every app."""
    actions: tuple[str, ...] = ()
    """register, send, read, prune, admin."""

    @field_validator("spiffe_id")
    @classmethod
    def _spiffe(cls, value: str) -> str:
        if not value.startswith("spiffe://"):
            raise ValueError("expected spiffe://<trust domain>/<path>")
        return value

    @model_validator(mode="after")
    def _scope(self) -> IdentitySettings:
        _check_scope(self.apps, self.actions)
        return self


class AuthSettings(_Section):
    """Who may call, and what each caller may do."""

    api_keys: tuple[ApiKeySettings, ...] = ()
    """API key principals (`[[auth.api_keys]]`)."""
    api_keys_file: OptionalPath = None
    """A TOML file of further `[[api_keys]]` tables (a mounted Secret)."""
    jwt: tuple[JwtIssuerSettings, ...] = ()
    """Trusted JWT issuers (`[[auth.jwt]]`)."""
    identities: tuple[IdentitySettings, ...] = ()
    """mTLS principals (`[[auth.identities]]`); they need `[tls]` with require_client_cert."""
    insecure_no_auth: bool = False
    """Every caller may do everything (`serve --insecure-no-auth`); logged as a warning."""

    @property
    def configured(self) -> bool:
        """Whether any principal can authenticate."""
        return bool(self.api_keys or self.jwt or self.identities)


class TlsSettings(_Section):
    """TLS on the gRPC port; with client_ca_file, mTLS."""

    cert_file: ConfigPath
    """The server certificate chain (PEM); reloaded when it changes."""
    key_file: ConfigPath
    """The server certificate's private key (PEM)."""
    client_ca_file: OptionalPath = None
    """CA certificates that sign client certificates (mTLS)."""
    require_client_cert: bool = False
    """Refuse connections without a client certificate; auth.identities need it."""
    reload_check_interval_s: Seconds = 1.0
    """How often, at most, a handshake checks whether the files changed."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(_Section):
    """Everything the composition root needs.

    A plain value: constructing it in code takes only the arguments given;
    `load_settings` is the one place that reads files and the environment.
    """

    store_url: str = "mongomock://localhost/pushsvc"
    """postgresql:// or mongodb:// / mongodb+srv:// (a server), mongomock:// (embedded) or memory:// (the reference adapter).

    postgresql:// takes two options of pushsvc's own in its query: `schema` (default "pushsvc") and
    `pool_size` (connections per process, default 10).
    """
    host: str = "0.0.0.0"
    """The gRPC listen address."""
    port: Port = 50051
    """The gRPC port (health and reflection are on it too); 0 picks a free one."""
    metrics_host: str = "0.0.0.0"
    """The Prometheus endpoint's listen address."""
    metrics_port: Port = 0
    """The Prometheus endpoint's port; 0 disables it."""
    log_format: Literal["json", "text"] = "json"
    """"json" (one object per line) or "text"; `pushsvc dev` logs text."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    stale_after_days: float = Field(default=60.0, gt=0)
    """Prune's default staleness threshold."""
    grace_s: Seconds = 25.0
    """Drain grace period on SIGTERM: in-flight RPCs get this long to finish; keep it below the pod's terminationGracePeriodSeconds."""
    keepalive_time_s: PositiveSeconds = 60.0
    """How often the server pings an idle connection."""
    keepalive_timeout_s: PositiveSeconds = 20.0
    """How long the server waits for a ping's answer before closing the connection."""
    keepalive_min_ping_interval_s: PositiveSeconds = 30.0
    """The shortest client ping interval the server accepts (more often is a ping flood)."""
    max_connection_age_s: PositiveSeconds = 300.0
    """Connections are closed after this long, so mesh load balancers rebalance long-lived gRPC connections."""
    max_connection_age_grace_s: Seconds = 30.0
    """How long calls on a connection past its age may still finish."""
    store_timeout_ms: int = Field(default=2000, gt=0)
    """Server selection and socket timeout: a down store fails fast with UNAVAILABLE."""
    health_interval_s: PositiveSeconds = 2.0
    """How often the store is pinged for the health status."""
    store_stall_s: PositiveSeconds = 5.0
    """A store call unanswered this long counts as the store being unreachable (health NOT_SERVING, store_up 0) until calls are answered again; it also bounds the health ping."""
    sweep_interval_s: PositiveSeconds = 60.0
    """How often expired receipts are deleted, on stores without TTL indexes."""
    secrets_dir: OptionalPath = None
    """A directory of files named like the PUSHSVC_* variables, each holding a value (a mounted Secret); the environment wins."""
    apps: Mapping[str, AppSettings] = Field(default_factory=dict)
    """The tenant apps, `[apps.<app_id>]` with `[apps.<app_id>.apns]` and `[apps.<app_id>.fcm]`."""
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    """The delivery pipeline (`[dispatch]`)."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    """Callers (`[auth]`)."""
    tls: TlsSettings | None = None
    """TLS on the gRPC port (`[tls]`); unset means plaintext (a mesh sidecar terminates TLS)."""

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @model_validator(mode="before")
    @classmethod
    def _app_ids(cls, data: Any) -> Any:
        # The app id is the table name: [apps.shop] is app "shop".
        if not isinstance(data, Mapping) or not isinstance(data.get("apps"), Mapping):
            return data
        apps = {}
        for app_id, body in data["apps"].items():
            if isinstance(body, Mapping) and "app_id" not in body:
                body = {**body, "app_id": app_id}
            apps[app_id] = body
        return {**data, "apps": apps}

    @model_validator(mode="after")
    def _app_ids_match(self) -> Settings:
        for app_id, app in self.apps.items():
            if app.app_id != app_id:
                raise ValueError(f"apps.{app_id}: app_id {app.app_id!r} differs from the table name")
        return self


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


_FLAT_SECTIONS: dict[str, type[BaseModel]] = {"dispatch": DispatchSettings, "auth": AuthSettings, "tls": TlsSettings}


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
    return {**values, "apps": {by_lower.get(app_id, app_id): body for app_id, body in apps.items()}}


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
        raise ConfigError(*_problems(exc, layers)) from None
    if settings.auth.api_keys_file is not None:
        settings = settings.model_copy(
            update={"auth": settings.auth.model_copy(update={"api_keys": (*settings.auth.api_keys, *_api_keys_file(settings.auth.api_keys_file))})}
        )
    return settings


class _ApiKeysFile(_Section):
    """The file auth.api_keys_file names: only `[[api_keys]]` tables."""

    api_keys: tuple[ApiKeySettings, ...] = ()


def _api_keys_file(path: Path) -> tuple[ApiKeySettings, ...]:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"auth.api_keys_file: {exc}") from exc
    try:
        return _ApiKeysFile.model_validate(raw, context={"base_dir": path.parent}).api_keys
    except ValidationError as exc:
        raise ConfigError(*_problems(exc, [(str(path), raw)], where=f"{path}: ")) from None


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


def _problems(exc: ValidationError, layers: list[tuple[str, Mapping[str, Any]]], where: str = "") -> list[str]:
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
    apps = ", ".join(
        f"{app_id} ({'+'.join(p for p in ('apns', 'fcm') if getattr(app, p) is not None) or 'no providers'})"
        for app_id, app in sorted(settings.apps.items())
    )
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
