"""Settings: a TOML file, then `PUSHSVC_*` environment overrides, then CLI flags.

Secrets are never inline: the config names files (a .p8 key, a service-account
JSON), mounted from Kubernetes Secrets in production, or, for auth, environment
variables (`hash_env`, `secret_env`). An API key's SHA-256 hash may be inline.

Environment overrides: `PUSHSVC_<FIELD>` for top-level fields (for example
`PUSHSVC_STORE_URL`, `PUSHSVC_PORT`, `PUSHSVC_STALE_AFTER_DAYS`) and
`PUSHSVC_DISPATCH_<FIELD>` for dispatcher fields (`PUSHSVC_DISPATCH_LEASE_S`).
`PUSHSVC_AUTH_API_KEYS_FILE` names a secrets file of further `[[api_keys]]`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

APNS_PRODUCTION_URL = "https://api.push.apple.com"
APNS_SANDBOX_URL = "https://api.sandbox.push.apple.com"
FCM_URL = "https://fcm.googleapis.com"


class ConfigError(ValueError):
    """The configuration is invalid; the message says where."""


@dataclasses.dataclass(frozen=True)
class ApnsAppSettings:
    """One app's APNs credentials: token auth (key_file) or certificate auth (cert_file)."""

    bundle_id: str
    """Default apns-topic; push types add their suffix (".voip", ...)."""
    key_file: Path | None = None
    """The .p8 signing key (token auth)."""
    key_id: str = ""
    team_id: str = ""
    cert_file: Path | None = None
    """PEM or P12 client certificate (certificate auth)."""
    cert_key_file: Path | None = None
    """PEM private key when it is not inside cert_file."""
    cert_password_file: Path | None = None
    """File holding the P12 or key password."""
    production_url: str = APNS_PRODUCTION_URL
    sandbox_url: str = APNS_SANDBOX_URL
    ca_file: Path | None = None
    """Extra CA to trust (the emulator's); None means the system store."""
    key_env: str = ""
    """An environment variable holding the .p8 key's PEM text, instead of key_file."""


@dataclasses.dataclass(frozen=True)
class FcmAppSettings:
    """One app's FCM HTTP v1 credentials."""

    service_account_file: Path | None = None
    """The service-account JSON; or service_account_env."""
    service_account_env: str = ""
    """An environment variable holding the service-account JSON, instead of service_account_file."""
    project_id: str = ""
    """Defaults to the service account's project_id."""
    base_url: str = FCM_URL
    ca_file: Path | None = None
    """Extra CA to trust for FCM and the OAuth token_uri (the emulator's)."""


@dataclasses.dataclass(frozen=True)
class AppSettings:
    """One tenant app and its provider credentials."""

    app_id: str
    apns: ApnsAppSettings | None = None
    fcm: FcmAppSettings | None = None


@dataclasses.dataclass(frozen=True)
class DispatchSettings:
    """The delivery pipeline's knobs."""

    workers: int = 2
    """Partitions this replica works on at once."""
    lease_s: float = 30.0
    """How long a claimed partition stays ours without renewal."""
    batch_size: int = 500
    """Targets read, sent and checkpointed together; bounds duplicates after a crash."""
    partition_size: int = 5000
    """Targets per partition; big fan-outs split so several replicas share them."""
    max_partitions: int = 64
    max_in_flight_per_provider: int = 500
    """Concurrent requests per provider (app and platform)."""
    max_attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    poll_interval_s: float = 0.2
    """Idle sleep between claim attempts and receipt polls."""
    max_queue_depth: int = 10000
    """Unfinished notifications above which Send answers RESOURCE_EXHAUSTED."""
    receipt_retention_days: float = 7.0
    orphan_after_s: float = 60.0
    """A partition whose notification never got stored is dropped after this long."""
    receipt_gap_grace_s: float = 5.0
    """How long a receipt reader waits for a missing cursor before skipping it."""
    request_timeout_s: float = 10.0
    """Deadline of one provider request, queueing for a stream included."""
    connect_timeout_s: float = 5.0
    """Deadline of one provider connection set-up (TCP and TLS)."""
    connections_per_provider: int = 1
    """HTTP/2 connections per app, platform and provider host; each carries up to
    the server's stream limit (about 1000 on APNs), so one is usually enough."""


@dataclasses.dataclass(frozen=True)
class ApiKeySettings:
    """One API key principal. The key itself is never stored, only its hash."""

    name: str
    """Shown in logs and audit lines as `key:<name>`."""
    hash: str = ""
    """`sha256:<hex>`, as printed by `pushsvc keys create`."""
    hash_file: Path | None = None
    """A file holding the hash (a mounted Secret)."""
    hash_env: str = ""
    """An environment variable holding the hash."""
    apps: tuple[str, ...] = ()
    """App ids, or prefixes written `team-*`; `*` is every app."""
    actions: tuple[str, ...] = ()
    """register, send, read, prune, admin."""


@dataclasses.dataclass(frozen=True)
class JwtIssuerSettings:
    """A trusted JWT issuer and the one source of its verification keys."""

    issuer: str
    audience: str
    public_key_file: Path | None = None
    """PEM public key (RSA, EC or Ed25519)."""
    jwks_file: Path | None = None
    """JWKS document of public keys, selected by `kid`."""
    secret_file: Path | None = None
    """HS256 shared secret (at least 32 bytes)."""
    secret_env: str = ""
    """An environment variable holding the HS256 shared secret."""
    algorithms: tuple[str, ...] = ()
    """Narrows the algorithms the key's type allows; empty means all of those."""
    leeway_s: float = 30.0
    """Clock skew tolerated on exp, nbf and iat."""


@dataclasses.dataclass(frozen=True)
class IdentitySettings:
    """An mTLS principal: the SPIFFE ID in a client certificate's URI SAN."""

    spiffe_id: str
    apps: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class AuthSettings:
    """Who may call, and what each caller may do."""

    api_keys: tuple[ApiKeySettings, ...] = ()
    api_keys_file: Path | None = None
    """A TOML file of further `[[api_keys]]` tables (a mounted Secret)."""
    jwt: tuple[JwtIssuerSettings, ...] = ()
    identities: tuple[IdentitySettings, ...] = ()
    insecure_no_auth: bool = False
    """Every caller may do everything (`serve --insecure-no-auth`); logged as a warning."""

    @property
    def configured(self) -> bool:
        """Whether any principal can authenticate."""
        return bool(self.api_keys or self.jwt or self.identities)


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """TLS on the gRPC port; with client_ca_file, mTLS."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    require_client_cert: bool = False
    reload_check_interval_s: float = 1.0
    """How often, at most, a handshake checks whether the files changed."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the composition root needs."""

    store_url: str = "mongomock://localhost/pushsvc"
    """mongodb:// or mongodb+srv:// (a server), mongomock:// (embedded) or memory:// (the reference adapter)."""
    host: str = "0.0.0.0"
    port: int = 50051
    metrics_port: int = 0
    """0 disables the Prometheus endpoint."""
    stale_after_days: float = 60.0
    """Prune's default staleness threshold."""
    grace_s: float = 25.0
    """The drain's bound after SIGTERM: in-flight calls and fan-out batches get this long, then are cancelled.
    Kubernetes' terminationGracePeriodSeconds must exceed it."""
    keepalive_time_s: float = 60.0
    """The server pings a connection idle this long."""
    keepalive_timeout_s: float = 20.0
    """...and closes it when the ping is not answered within this."""
    keepalive_min_ping_interval_s: float = 30.0
    """Clients may ping this often (with or without calls) before the server answers GOAWAY too_many_pings."""
    max_connection_age_s: float = 300.0
    """Lets mesh load balancers rebalance long-lived gRPC connections."""
    max_connection_age_grace_s: float = 30.0
    """How long calls on a connection past its age may still run before it is closed."""
    health_interval_s: float = 2.0
    """How often the store is pinged for the health status (a failing store call also turns it NOT_SERVING at once)."""
    sweep_interval_s: float = 60.0
    """How often receipts past retention are deleted, on stores without TTL indexes."""
    store_timeout_ms: int = 2000
    """Server selection and socket timeout: a down store fails fast with UNAVAILABLE."""
    apps: Mapping[str, AppSettings] = dataclasses.field(default_factory=dict)
    dispatch: DispatchSettings = dataclasses.field(default_factory=DispatchSettings)
    auth: AuthSettings = dataclasses.field(default_factory=AuthSettings)
    tls: TlsSettings | None = None


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Reads a TOML file, applies `PUSHSVC_*` variables, then explicit overrides.

    Raises:
        ConfigError: with the offending key named.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        base_dir = path.parent
    dispatch_raw = dict(raw.pop("dispatch", {}))
    apps_raw = raw.pop("apps", {})
    auth_raw = dict(raw.pop("auth", {}))
    tls_raw = raw.pop("tls", None)
    for f in dataclasses.fields(Settings):
        key = f"PUSHSVC_{f.name.upper()}"
        if key in env and f.name not in ("apps", "dispatch", "auth", "tls"):
            raw[f.name] = env[key]
    for f in dataclasses.fields(DispatchSettings):
        key = f"PUSHSVC_DISPATCH_{f.name.upper()}"
        if key in env:
            dispatch_raw[f.name] = env[key]
    raw.update({k: v for k, v in overrides.items() if v is not None})
    dispatch = _build(DispatchSettings, dispatch_raw, "dispatch", base_dir)
    apps = {app_id: _build_app(app_id, body, base_dir) for app_id, body in apps_raw.items()}
    settings = _build(Settings, raw, "", base_dir)
    if "PUSHSVC_AUTH_API_KEYS_FILE" in env:
        auth_raw["api_keys_file"] = env["PUSHSVC_AUTH_API_KEYS_FILE"]
    auth = _build_auth(auth_raw, base_dir)
    tls = _build(TlsSettings, tls_raw, "tls", base_dir) if tls_raw else None
    return dataclasses.replace(settings, apps=apps, dispatch=dispatch, auth=auth, tls=tls)


def _tables(value: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"{where}: expected an array of tables ([[{where}]])")
    return value


def _api_keys(tables: list[Mapping[str, Any]], where: str, base_dir: Path) -> list[ApiKeySettings]:
    keys = []
    for i, table in enumerate(tables):
        key = _build(ApiKeySettings, table, f"{where}[{i}]", base_dir)
        if sum(map(bool, (key.hash, key.hash_file, key.hash_env))) != 1:
            raise ConfigError(f"{where}[{i}] ({key.name}): set exactly one of hash, hash_file, hash_env")
        keys.append(key)
    return keys


def _build_auth(raw: Mapping[str, Any], base_dir: Path) -> AuthSettings:
    unknown = set(raw) - {"api_keys", "api_keys_file", "jwt", "identities", "insecure_no_auth"}
    if unknown:
        raise ConfigError(f"auth: unknown keys {sorted(unknown)}")
    keys = _api_keys(_tables(raw.get("api_keys", []), "auth.api_keys"), "auth.api_keys", base_dir)
    keys_file = _coerce(Path, raw["api_keys_file"], base_dir) if raw.get("api_keys_file") else None
    if keys_file is not None:
        try:
            extra = tomllib.loads(keys_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"auth.api_keys_file: {exc}") from exc
        if set(extra) - {"api_keys"}:
            raise ConfigError(f"{keys_file}: only [[api_keys]] tables belong there")
        keys += _api_keys(_tables(extra.get("api_keys", []), "api_keys"), f"{keys_file}: api_keys", keys_file.parent)
    issuers = []
    for i, table in enumerate(_tables(raw.get("jwt", []), "auth.jwt")):
        issuer = _build(JwtIssuerSettings, table, f"auth.jwt[{i}]", base_dir)
        sources = (issuer.public_key_file, issuer.jwks_file, issuer.secret_file, issuer.secret_env)
        if sum(map(bool, sources)) != 1:
            raise ConfigError(
                f"auth.jwt[{i}]: set exactly one of public_key_file, jwks_file, secret_file, secret_env"
            )
        if not issuer.issuer or not issuer.audience:
            raise ConfigError(f"auth.jwt[{i}]: issuer and audience are required")
        issuers.append(issuer)
    identities = [
        _build(IdentitySettings, table, f"auth.identities[{i}]", base_dir)
        for i, table in enumerate(_tables(raw.get("identities", []), "auth.identities"))
    ]
    for i, identity in enumerate(identities):
        if not identity.spiffe_id.startswith("spiffe://"):
            raise ConfigError(f"auth.identities[{i}].spiffe_id: expected spiffe://<trust domain>/<path>")
    return AuthSettings(
        api_keys=tuple(keys),
        api_keys_file=keys_file,
        jwt=tuple(issuers),
        identities=tuple(identities),
        insecure_no_auth=_coerce(bool, raw.get("insecure_no_auth", False), base_dir),
    )


SERVE_STORE_SCHEMES = ("mongodb://", "mongodb+srv://")


def check_serve(settings: Settings) -> None:
    """The safety checks of `pushsvc serve`: a real store, and auth unless explicitly switched off.

    Raises:
        ConfigError: a one-line reason.
    """
    if not settings.store_url.startswith(SERVE_STORE_SCHEMES):
        raise ConfigError(
            "serve needs store_url = 'mongodb://...' or 'mongodb+srv://...' (or PUSHSVC_STORE_URL); "
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


def _build_app(app_id: str, body: Mapping[str, Any], base_dir: Path) -> AppSettings:
    if not isinstance(body, Mapping):
        raise ConfigError(f"apps.{app_id}: expected a table")
    apns = body.get("apns")
    fcm = body.get("fcm")
    unknown = set(body) - {"apns", "fcm"}
    if unknown:
        raise ConfigError(f"apps.{app_id}: unknown keys {sorted(unknown)}")
    app = AppSettings(
        app_id=app_id,
        apns=_build(ApnsAppSettings, apns, f"apps.{app_id}.apns", base_dir) if apns else None,
        fcm=_build(FcmAppSettings, fcm, f"apps.{app_id}.fcm", base_dir) if fcm else None,
    )
    if app.apns and not (app.apns.key_file or app.apns.key_env or app.apns.cert_file):
        raise ConfigError(f"apps.{app_id}.apns: set key_file (token auth) or cert_file (certificate auth)")
    if app.apns and app.apns.key_file and app.apns.key_env:
        raise ConfigError(f"apps.{app_id}.apns: set key_file or key_env, not both")
    if app.apns and (app.apns.key_file or app.apns.key_env) and not (app.apns.key_id and app.apns.team_id):
        raise ConfigError(f"apps.{app_id}.apns: token auth needs key_id and team_id")
    if app.fcm and bool(app.fcm.service_account_file) == bool(app.fcm.service_account_env):
        raise ConfigError(f"apps.{app_id}.fcm: set exactly one of service_account_file, service_account_env")
    return app


_T = typing.TypeVar("_T")


def _build(cls: type[_T], raw: Mapping[str, Any], where: str, base_dir: Path) -> _T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown keys {sorted(unknown)}")
    values = {}
    for name, value in raw.items():
        try:
            values[name] = _coerce(hints[name], value, base_dir)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where + '.' if where else ''}{name}: {exc}") from exc
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def _coerce(hint: Any, value: Any, base_dir: Path) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or value == "":
            return None
        return _coerce(inner[0], value, base_dir)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {value!r}")
        return tuple(_coerce(typing.get_args(hint)[0], v, base_dir) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        return int(value)
    if hint is float:
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    if hint is Path:
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else base_dir / p
    raise TypeError(f"unsupported setting type {hint!r}")
