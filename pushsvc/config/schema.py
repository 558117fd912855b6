"""The settings models: every table and field of the config, with its checks.

Frozen models with unknown keys rejected (a typo must not pass silently) and
ranges checked. Each field's docstring is its description in the config
reference (docs/config.md, made by `scripts/gen-config-reference`). Reading
the layers is `loader`'s job; explaining a config is `diagnostics`'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, create_model, field_validator, model_validator

# The access vocabulary is a leaf (pushsvc.access imports nothing of pushsvc),
# so the models can check scopes and hashes where they are parsed.
from pushsvc.access import AppScope, parse_actions, parse_hash

# Each channel brings its own table ([apps.<app_id>.<settings_key>]); the
# channels build on pushsvc.sections and never import this package, so the
# registry is a dependency of the config and not the other way round.
from pushsvc.channels import registry
from pushsvc.sections import ConfigPath, OptionalPath, Port, PositiveSeconds, Seconds
from pushsvc.sections import Section as _Section

ENV_PREFIX = "PUSHSVC_"
ENV_NESTED_DELIMITER = "__"

_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class WebhookSettings(_Section):
    """One endpoint that receives the app's receipts in signed batches: a table `[[apps.<app_id>.webhooks]]`."""

    url: str
    """Where batches are POSTed as JSON: https, or http to a loopback host (localhost, 127.0.0.1, ::1)."""
    name: str = ""
    """The endpoint's name in metrics, logs and its stored cursor; empty means the URL. A new name starts at the log's end."""
    secret_file: OptionalPath = None
    """A file holding the signing secret (`whsec_<base64>` as Standard Webhooks prints it, or raw bytes)."""
    secret_env: str = ""
    """An environment variable holding the signing secret, instead of secret_file."""
    max_batch: int = Field(default=100, gt=0, le=10000)
    """Most receipts in one POST."""
    max_delay_ms: int = Field(default=1000, ge=0)
    """Longest a receipt waits for its batch to fill before the batch is sent anyway."""
    timeout_s: PositiveSeconds = 10.0
    """Deadline of one POST, connecting included."""
    initial_backoff_s: PositiveSeconds = 1.0
    """First retry delay after a failed POST; doubles per failure (with jitter)."""
    max_backoff_s: PositiveSeconds = 300.0
    """Longest retry delay: a paused endpoint is tried again this often."""
    pause_after_s: PositiveSeconds = 60.0
    """An endpoint failing this long is reported paused (metrics and a warning) until a POST succeeds."""
    ca_file: OptionalPath = None
    """A CA to trust for this endpoint instead of the system store (a private CA); unset means the system store."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("expected an https:// URL")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS and not parts.hostname.startswith("127."):
            raise ValueError("http:// is allowed only to a loopback host; use https://")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookSettings:
        if bool(self.secret_file) == bool(self.secret_env):
            raise ValueError("set exactly one of secret_file, secret_env (never the secret itself)")
        return self

    @property
    def endpoint(self) -> str:
        """The endpoint's stable name (its cursor's key)."""
        return self.name or self.url


class AppSettingsBase(_Section):
    """One tenant app and its provider credentials: the table `[apps.<app_id>]`.

    `AppSettings` is this model with one optional table per channel of the
    registry, `[apps.<app_id>.<settings_key>]`, each the channel's own settings
    model: a new channel adds its table without an edit here.
    """

    app_id: str = ""
    """The app's id; taken from the table name."""
    webhooks: tuple[WebhookSettings, ...] = ()
    """Endpoints that receive the app's receipts (`[[apps.<app_id>.webhooks]]`); see docs/webhooks.md."""
    default_max_per_second: int = Field(default=0, ge=0, le=2_147_483_647)
    """Targets per second, across every replica, that a Send of this app is held to when it
    sets no `max_per_second` of its own; 0 leaves such sends unthrottled (see docs/campaigns.md)."""

    @model_validator(mode="after")
    def _distinct_webhooks(self) -> AppSettingsBase:
        names = [w.endpoint for w in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError("webhooks: two endpoints with the same name (or URL); give each its own `name`")
        return self

    def channel_settings(self, settings_key: str) -> Any:
        """The app's table of one channel (`[apps.<app_id>.<settings_key>]`, the channel's settings model), or None."""
        return getattr(self, settings_key, None)


def _app_settings_model() -> type[AppSettingsBase]:
    """AppSettingsBase with each registered channel's table, in the registry's order."""
    tables: dict[str, Any] = {
        c.settings_key: (c.settings | None, Field(default=None, description=c.settings_help)) for c in registry.CHANNELS
    }
    return create_model(
        "AppSettings", __base__=AppSettingsBase, __module__=__name__, __doc__=AppSettingsBase.__doc__, **tables
    )


if TYPE_CHECKING:
    # What type checking can know of an app's tables is the base: the channels'
    # tables are read by their settings_key (`channel_settings`), never by name.
    AppSettings = AppSettingsBase
else:
    AppSettings = _app_settings_model()


def channel_settings_model(name: str) -> type[_Section]:
    """A channel's settings model by its class name (`FcmAppSettings`); AttributeError when none has it.

    The models live in their channels; `pushsvc.config.FcmAppSettings` and
    `pushsvc.config.schema.<Name>AppSettings` still resolve through this, for
    code written before they moved.
    """
    for channel in registry.CHANNELS:
        if channel.settings.__name__ == name:
            return channel.settings
    raise AttributeError(name)


def __getattr__(name: str) -> type[_Section]:
    try:
        return channel_settings_model(name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


class DispatchSettings(_Section):
    """The delivery pipeline's knobs."""

    workers: int = Field(default=2, ge=0)
    """Partitions this replica works on at once; 0 sends nothing (an API-only replica)."""
    express_workers: int = Field(default=1, ge=0)
    """Workers on top of `workers` that claim only express partitions (a high-priority send to
    at most `express_max_targets`), so a campaign can never fill every worker of a replica
    while a login code waits. Each replica keeps its own; none when `workers` is 0."""
    express_max_targets: int = Field(default=500, ge=0)
    """Most targets a high-priority send may have and still go in the express lane; bigger
    sends, and any send without high priority, go in the bulk lane (see docs/campaigns.md)."""
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


class TracingSettings(_Section):
    """OpenTelemetry spans: one per RPC and one per fan-out batch, exported over OTLP only when an endpoint is set."""

    otlp_endpoint: str = ""
    """OTLP/HTTP traces endpoint, e.g. "http://otel-collector:4318/v1/traces"; "" exports nothing and makes no spans. Needs the `otel` extra (`pip install 'pushsvc[otel]'`)."""
    service_name: str = "pushsvc"
    """The `service.name` resource attribute of every span."""
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """The share of new traces recorded; a caller's sampled `traceparent` is followed whatever this says."""
    export_timeout_s: PositiveSeconds = 10.0
    """Deadline of one export request to the endpoint."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value


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
    connect_port: Port = 0
    """The port serving PushService over the Connect protocol (JSON or binary POSTs, e.g. with curl) and gRPC-web, on `host`, plaintext HTTP/1.1; 0 disables it (`pushsvc dev` turns it on)."""
    metrics_host: str = "0.0.0.0"
    """The Prometheus endpoint's listen address."""
    metrics_port: Port = 0
    """The Prometheus endpoint's port; 0 disables it."""
    log_format: Literal["json", "text"] = "json"
    """"json" (one object per line) or "text"; `pushsvc dev` logs text."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The event loop `serve` runs on: "uvloop" (libuv: about 12% less server CPU per RegisterToken, bench/register.py) or Python's "asyncio"."""
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
    """The tenant apps, `[apps.<app_id>]`, each with a table per channel it sends to (`[apps.<app_id>.<channel>]`)."""
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    """The delivery pipeline (`[dispatch]`)."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    """Callers (`[auth]`)."""
    tls: TlsSettings | None = None
    """TLS on the gRPC port (`[tls]`); unset means plaintext (a mesh sidecar terminates TLS)."""
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    """OpenTelemetry traces (`[tracing]`); off unless `otlp_endpoint` is set."""

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
    def _connect_plaintext(self) -> Settings:
        if self.connect_port and self.tls is not None:
            # The Connect port has no TLS of its own yet; a plaintext port beside a TLS one would carry the same credentials in the clear.
            raise ValueError("connect_port: the Connect port is plaintext and cannot be combined with [tls]; terminate TLS in front of it, or set connect_port = 0")
        return self

    @model_validator(mode="after")
    def _app_ids_match(self) -> Settings:
        for app_id, app in self.apps.items():
            if app.app_id != app_id:
                raise ValueError(f"apps.{app_id}: app_id {app.app_id!r} differs from the table name")
        return self


class ApiKeysFile(_Section):
    """The file auth.api_keys_file names: only `[[api_keys]]` tables."""

    api_keys: tuple[ApiKeySettings, ...] = ()
