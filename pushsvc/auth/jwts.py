"""JWT bearer tokens, verified with pyjwt against configured issuers.

Each issuer has its own keys (a PEM public key, a JWKS file, or an HS256
shared secret) and each key its own algorithm allow-list, derived from the
key's type: a public key never verifies an HS* token (the classic algorithm
confusion), and `none` is never accepted. `exp` is mandatory; `iss` and `aud`
must match. Times are checked against the injected clock with a small leeway.

The token says what it may do: `sub` names the caller, `scope` (space
separated, OAuth style) lists actions, and `apps` lists app patterns (see
`AppScope`). The issuer is trusted for those claims.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from pushsvc.access import Action, AppScope, Principal, parse_actions
from pushsvc.clock import Clock

log = logging.getLogger("pushsvc.auth")

_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
_HMAC = frozenset({"HS256", "HS384", "HS512"})


class JwtRejected(Exception):
    """The token is not acceptable; the message is safe to log (it never quotes the token)."""


@dataclasses.dataclass(frozen=True)
class VerificationKey:
    """One key and the algorithms it may verify."""

    key: Any
    algorithms: frozenset[str]
    kid: str | None = None


def _algorithms_for(key: Any) -> frozenset[str]:
    if isinstance(key, rsa.RSAPublicKey):
        return frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
    if isinstance(key, ec.EllipticCurvePublicKey):
        return frozenset({{"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(key.curve.name, "")}) - {""}
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    raise ValueError(f"unsupported public key type {type(key).__name__}")


def _restrict(allowed: frozenset[str], configured: Iterable[str] | None, where: str) -> frozenset[str]:
    if not configured:
        return allowed
    wanted = frozenset(configured)
    extra = wanted - allowed
    if extra:
        raise ValueError(f"{where}: algorithms {sorted(extra)} do not fit this key (allowed: {sorted(allowed)})")
    return wanted


def pem_key(pem: bytes, algorithms: Iterable[str] | None = None, where: str = "public_key_file") -> VerificationKey:
    """A PEM public key; RS*/PS*/ES*/EdDSA only, as its type allows."""
    try:
        key = load_pem_public_key(pem)
    except ValueError as exc:
        raise ValueError(f"{where}: not a PEM public key ({exc})") from None
    return VerificationKey(key, _restrict(_algorithms_for(key), algorithms, where))


def jwks_keys(text: str, algorithms: Iterable[str] | None = None, where: str = "jwks_file") -> list[VerificationKey]:
    """The public keys of a JWKS document; symmetric (`oct`) entries are refused."""
    try:
        entries = json.loads(text)["keys"]
        if not isinstance(entries, list):
            raise ValueError("'keys' is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where}: not a JWKS document ({exc})") from None
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("kty") == "oct":
            raise ValueError(f"{where}: keys[{i}]: only public keys belong in a JWKS")
        try:
            jwk = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            raise ValueError(f"{where}: keys[{i}]: {exc}") from None
        allowed = _algorithms_for(jwk.key)
        if entry.get("alg"):
            allowed = allowed & {str(entry["alg"])}
        out.append(VerificationKey(jwk.key, _restrict(allowed, algorithms, f"{where}: keys[{i}]"), jwk.key_id))
    if not out:
        raise ValueError(f"{where}: no keys")
    return out


def shared_secret(secret: bytes, algorithms: Iterable[str] | None = None, where: str = "secret") -> VerificationKey:
    """An HMAC shared secret, for HS256 only; at least 32 bytes."""
    if len(secret) < 32:
        raise ValueError(f"{where}: an HMAC secret needs at least 32 bytes")
    return VerificationKey(secret, _restrict(frozenset({"HS256"}), algorithms, where))


@dataclasses.dataclass(frozen=True)
class Issuer:
    """A trusted token issuer."""

    issuer: str
    audience: str
    keys: tuple[VerificationKey, ...]
    leeway_s: float = 30.0


class JwtVerifier:
    """Turns a bearer JWT into a Principal, or raises JwtRejected."""

    def __init__(self, issuers: Iterable[Issuer], clock: Clock, *, cache_size: int = 4096) -> None:
        self._cache: dict[str, tuple[Principal, float, float]] = {}
        self._cache_size = cache_size
        self._issuers: dict[str, Issuer] = {}
        for issuer in issuers:
            if issuer.issuer in self._issuers:
                raise ValueError(f"jwt issuer {issuer.issuer!r} configured twice")
            self._issuers[issuer.issuer] = issuer
        self._clock = clock

    def __len__(self) -> int:
        return len(self._issuers)

    def verify(self, token: str) -> Principal:
        """Verifies signature, algorithm, issuer, audience and times; returns the principal.

        A verified token is remembered (up to `cache_size` of them) until it
        expires, so a caller reusing its token pays for the signature check once.
        """
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires, leeway_s = cached
            if expires + leeway_s > self._clock.time():
                return principal
            del self._cache[token]
        principal, expires, leeway_s = self._verify(token)
        if len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[token] = (principal, expires, leeway_s)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float, float]:
        header, unverified = _peek(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in _ASYMMETRIC | _HMAC:
            raise JwtRejected("algorithm not allowed")
        issuer = self._issuers.get(str(unverified.get("iss", "")))
        if issuer is None:
            raise JwtRejected("unknown issuer")
        kid = header.get("kid")
        candidates = [k for k in issuer.keys if alg in k.algorithms and (kid is None or k.kid in (None, kid))]
        if not candidates:
            raise JwtRejected("no key for this algorithm")
        claims: Mapping[str, Any] | None = None
        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[alg],
                    audience=issuer.audience,
                    issuer=issuer.issuer,
                    # Times are checked below against the injected clock.
                    options={
                        "require": ["exp", "iss", "aud", "sub"],
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                    },
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise JwtRejected(type(exc).__name__) from None
        if claims is None:
            raise JwtRejected("bad signature")
        self._check_times(claims, issuer.leeway_s)
        return _principal(issuer, claims), float(claims["exp"]), issuer.leeway_s

    def _check_times(self, claims: Mapping[str, Any], leeway_s: float) -> None:
        now = self._clock.time()
        for name in ("exp", "nbf", "iat"):
            value = claims.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise JwtRejected(f"{name} is not a number")
        if claims["exp"] + leeway_s <= now:
            raise JwtRejected("expired")
        if "nbf" in claims and claims["nbf"] - leeway_s > now:
            raise JwtRejected("not yet valid")
        if "iat" in claims and claims["iat"] - leeway_s > now:
            raise JwtRejected("issued in the future")


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims, unverified: only to pick the issuer and key that then verify them."""
    try:
        header_b64, payload_b64, _ = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
        payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    except (ValueError, TypeError):
        raise JwtRejected("malformed token") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise JwtRejected("malformed token")
    return header, payload


def _principal(issuer: Issuer, claims: Mapping[str, Any]) -> Principal:
    scope = claims.get("scope", "")
    apps = claims.get("apps", [])
    if not isinstance(scope, str) or not isinstance(apps, list):
        raise JwtRejected("scope must be a string and apps a list")
    # Scope values that are not pushsvc actions (e.g. `openid`) belong to other services.
    known = {a.value for a in Action}
    try:
        actions = parse_actions([s for s in scope.split() if s in known], "scope")
        app_scope = AppScope.parse(apps, "apps")
    except ValueError as exc:
        raise JwtRejected(str(exc)) from None
    return Principal(name=f"jwt:{issuer.issuer}#{claims['sub']}", apps=app_scope, actions=actions)
