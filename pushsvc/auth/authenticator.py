"""Authenticator: call metadata and the TLS peer in, a Principal out.

Credentials, in order:
1. `authorization: Bearer <credential>`: an API key (`psk_...`) or a JWT.
   A bearer that is present must be valid; it is never skipped in favour
   of the certificate.
2. Without a bearer, the client certificate's SPIFFE ID (mTLS), when it is
   mapped to a principal in config.
Nothing else authenticates; the error never quotes what the caller sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from pushsvc import errors
from pushsvc.access import ANONYMOUS, KEY_PREFIX, Principal
from pushsvc.auth.apikeys import ApiKeyRing
from pushsvc.auth.jwts import JwtRejected, JwtVerifier

log = logging.getLogger("pushsvc.auth")

_SPIFFE_PROPERTY = "peer_spiffe_id"
"""Set by grpc when the client certificate has exactly one URI SAN and it is a SPIFFE ID."""


class CallerIdentity(Protocol):
    """What an authenticator reads from a call: its metadata and its TLS peer."""

    def invocation_metadata(self) -> Sequence[tuple[str, str | bytes]] | None:
        """The call's metadata."""
        ...

    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        """The transport's peer properties."""
        ...


class Authenticator(Protocol):
    """Decides who the caller is, or raises errors.Unauthenticated."""

    def authenticate(self, call: CallerIdentity) -> Principal:
        """The caller's principal."""
        ...


class OpenAuthenticator:
    """Every caller is ANONYMOUS with every action: `serve --insecure-no-auth`."""

    def authenticate(self, call: CallerIdentity) -> Principal:
        """See `Authenticator.authenticate`."""
        return ANONYMOUS


class CredentialAuthenticator:
    """API keys, JWTs and mTLS identities, as configured."""

    def __init__(
        self,
        keys: ApiKeyRing,
        jwts: JwtVerifier | None = None,
        identities: Mapping[str, Principal] | None = None,
    ) -> None:
        self._keys = keys
        self._jwts = jwts
        self._identities = dict(identities or {})

    def authenticate(self, call: CallerIdentity) -> Principal:
        """See `Authenticator.authenticate`."""
        bearer = _bearer(call.invocation_metadata() or ())
        if bearer is not None:
            return self._bearer_principal(bearer)
        if self._identities:
            for spiffe_id in call.auth_context().get(_SPIFFE_PROPERTY, ()):
                principal = self._identities.get(spiffe_id.decode(errors="replace"))
                if principal is not None:
                    return principal
        raise errors.Unauthenticated("missing credentials: send 'authorization: Bearer <API key or JWT>'")

    def _bearer_principal(self, bearer: str) -> Principal:
        if bearer.startswith(KEY_PREFIX):
            principal = self._keys.lookup(bearer)
            if principal is not None:
                return principal
            raise errors.Unauthenticated("invalid credentials")
        if self._jwts is not None and bearer.count(".") == 2:
            try:
                return self._jwts.verify(bearer)
            except JwtRejected as exc:
                log.info("jwt rejected: %s", exc)
        raise errors.Unauthenticated("invalid credentials")


def _bearer(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    for key, value in metadata:
        if key == "authorization":
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            scheme, _, credential = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise errors.Unauthenticated("invalid credentials: expected 'authorization: Bearer <credential>'")
            return credential.strip()
    return None
