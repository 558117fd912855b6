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

from pushsvc.config.diagnostics import SERVE_STORE_SCHEMES, check_serve, key_path, summary
from pushsvc.config.loader import load_settings
from pushsvc.config.schema import (
    LOG_LEVELS,
    ApiKeySettings,
    AppSettings,
    AppSettingsBase,
    AuthSettings,
    DispatchSettings,
    IdentitySettings,
    JwtIssuerSettings,
    Settings,
    TlsSettings,
    TracingSettings,
    WebhookSettings,
    channel_settings_model,
)
from pushsvc.sections import ConfigError

__all__ = [
    "LOG_LEVELS",
    "SERVE_STORE_SCHEMES",
    "ApiKeySettings",
    "AppSettings",
    "AppSettingsBase",
    "AuthSettings",
    "ConfigError",
    "DispatchSettings",
    "IdentitySettings",
    "JwtIssuerSettings",
    "Settings",
    "TlsSettings",
    "WebhookSettings",
    "TracingSettings",
    "check_serve",
    "key_path",
    "load_settings",
    "summary",
]


def __getattr__(name: str) -> type[object]:
    # Each channel's settings model lives in its channel (`ApnsAppSettings` in
    # pushsvc.channels.apns); the name still resolves here for older callers.
    try:
        return channel_settings_model(name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
