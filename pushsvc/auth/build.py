"""Builds the authenticator and TLS credentials from settings, reading the secrets they name.

Secrets come from files (mounted Kubernetes Secrets) or environment variables;
a missing or malformed one is a ConfigError naming the setting, never its value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from pushsvc.access import AppScope, Principal, parse_actions, parse_hash
from pushsvc.auth.apikeys import ApiKey, ApiKeyRing
from pushsvc.auth.authenticator import Authenticator, CredentialAuthenticator, OpenAuthenticator
from pushsvc.auth.jwts import Issuer, JwtVerifier, VerificationKey, jwks_keys, pem_key, shared_secret
from pushsvc.auth.tls import CertificateReloader, TlsFiles
from pushsvc.clock import Clock
from pushsvc.config import AuthSettings, ConfigError, JwtIssuerSettings, TlsSettings

log = logging.getLogger("pushsvc.auth")


def _read(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None


def _env(env: Mapping[str, str], name: str, where: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{where}: environment variable {name} is not set")
    return value


def _scope(apps: tuple[str, ...], actions: tuple[str, ...], where: str) -> tuple[AppScope, frozenset]:
    if not apps or not actions:
        raise ConfigError(f"{where}: apps and actions must both be non-empty")
    try:
        return AppScope.parse(apps, f"{where}.apps"), parse_actions(actions, f"{where}.actions")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _issuer(settings: JwtIssuerSettings, where: str, env: Mapping[str, str]) -> Issuer:
    algorithms = settings.algorithms or None
    keys: list[VerificationKey]
    try:
        if settings.public_key_file is not None:
            keys = [pem_key(_read(settings.public_key_file, f"{where}.public_key_file"), algorithms, f"{where}.public_key_file")]
        elif settings.jwks_file is not None:
            keys = jwks_keys(_read(settings.jwks_file, f"{where}.jwks_file").decode(), algorithms, f"{where}.jwks_file")
        elif settings.secret_file is not None:
            keys = [shared_secret(_read(settings.secret_file, f"{where}.secret_file").strip(), algorithms, f"{where}.secret_file")]
        else:
            secret = _env(env, settings.secret_env, f"{where}.secret_env").encode()
            keys = [shared_secret(secret, algorithms, f"{where}.secret_env")]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Issuer(settings.issuer, settings.audience, tuple(keys), settings.leeway_s)


def build_authenticator(auth: AuthSettings, clock: Clock, env: Mapping[str, str] | None = None) -> Authenticator | None:
    """The configured authenticator; OpenAuthenticator with `insecure_no_auth`; None when auth is not configured.

    Raises:
        ConfigError: a secret is missing or malformed.
    """
    env = os.environ if env is None else env
    if not auth.configured:
        if auth.insecure_no_auth:
            log.warning("auth is OFF (--insecure-no-auth): any caller can act as any app")
            return OpenAuthenticator()
        return None
    keys = []
    for i, key in enumerate(auth.api_keys):
        where = f"auth.api_keys[{i}] ({key.name})"
        if key.hash_file is not None:
            raw = _read(key.hash_file, f"auth.api_keys[{i}].hash_file").decode().strip()
        elif key.hash_env:
            raw = _env(env, key.hash_env, where).strip()
        else:
            raw = key.hash
        try:
            digest = parse_hash(raw, where)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        apps, actions = _scope(key.apps, key.actions, where)
        keys.append(ApiKey(digest, Principal(f"key:{key.name}", apps, actions)))
    identities = {}
    for i, identity in enumerate(auth.identities):
        apps, actions = _scope(identity.apps, identity.actions, f"auth.identities[{i}]")
        identities[identity.spiffe_id] = Principal(identity.spiffe_id, apps, actions)
    issuers = [_issuer(issuer, f"auth.jwt[{i}]", env) for i, issuer in enumerate(auth.jwt)]
    try:
        ring = ApiKeyRing(keys)
        verifier = JwtVerifier(issuers, clock) if issuers else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return CredentialAuthenticator(ring, verifier, identities)


def build_tls(tls: TlsSettings, clock: Clock) -> CertificateReloader:
    """The TLS credentials source for the gRPC port.

    Raises:
        ConfigError: a file is missing or does not hold what it should.
    """
    try:
        return CertificateReloader(
            TlsFiles(tls.cert_file, tls.key_file, tls.client_ca_file, tls.require_client_cert),
            clock,
            check_interval_s=tls.reload_check_interval_s,
        )
    except OSError as exc:
        # Named by its key, as every other unreadable secret is.
        fields = {str(tls.cert_file): "cert_file", str(tls.key_file): "key_file", str(tls.client_ca_file): "client_ca_file"}
        where = f"tls.{fields[str(exc.filename)]}" if str(exc.filename) in fields else "tls"
        name = f" {exc.filename}" if exc.filename else ""
        raise ConfigError(f"{where}: cannot read{name}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"tls: {exc}") from None
