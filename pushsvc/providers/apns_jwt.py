"""The APNs provider token: one ES256 JWT per signing key, shared by every connection.

Apple's rules (reference/protocols.md §A.5) that this module protects:

- a JWT whose `iat` is more than 60 minutes old is rejected (403 ExpiredProviderToken);
- a *new* JWT used more often than once every 20 minutes gets
  429 TooManyProviderTokenUpdates and can make the connection unusable.

So one signer exists per .p8 key and every connection and task asks it for the
current `authorization` header. It mints lazily, once the current token is older
than `refresh_after_s` (50 minutes by default): never more often than every 20
minutes in normal operation, never serving a token older than 60 minutes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushsvc.metrics import NULL_METRICS, Metrics

MIN_REFRESH_AFTER_S = 20 * 60
"""Apple: a new token no more than once every 20 minutes."""
MAX_TOKEN_AGE_S = 60 * 60
"""Apple: a token older than 60 minutes is ExpiredProviderToken."""
DEFAULT_REFRESH_AFTER_S = 50 * 60
"""Inside Apple's window with a 10-minute margin for clock skew."""

log = logging.getLogger("pushsvc.providers.apns")


class ApnsTokenSigner:
    """Mints and caches the ES256 provider token of one APNs signing key.

    Thread-safe and cheap to call on every request: `authorization()` returns the
    cached header until it is `refresh_after_s` old.

    Args:
        key_pem: The .p8 key (PKCS#8 PEM of a P-256 private key). Parsed once.
        key_id: The 10-character key id (JOSE `kid`).
        team_id: The 10-character team id (claim `iss`).
        clock: Seconds since the epoch; injected so tests can move time.
        refresh_after_s: Age at which a new token is minted; must lie in
            [1200, 3600) so that Apple's 20/60-minute rules hold.
        metrics: Counts each mint (`kind="apns_jwt"`) and whether it worked.

    Raises:
        ValueError: The key is not an EC P-256 private key, or refresh_after_s is
            outside Apple's window.
    """

    def __init__(
        self,
        key_pem: bytes,
        key_id: str,
        team_id: str,
        *,
        clock: Callable[[], float] = time.time,
        refresh_after_s: float = DEFAULT_REFRESH_AFTER_S,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        if not MIN_REFRESH_AFTER_S <= refresh_after_s < MAX_TOKEN_AGE_S:
            raise ValueError(
                f"refresh_after_s must be in [{MIN_REFRESH_AFTER_S}, {MAX_TOKEN_AGE_S}), got {refresh_after_s}"
            )
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("an APNs signing key must be an EC P-256 private key")
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self._clock = clock
        self._refresh_after_s = refresh_after_s
        # A threading lock, not an asyncio one: minting never awaits, and the
        # signer may be shared with worker threads.
        self._lock = threading.Lock()
        self._header = ""
        self._issued_at = 0
        self._mint_count = 0
        self._metrics = metrics

    @property
    def key_id(self) -> str:
        """The key id (`kid`) this signer signs with."""
        return self._key_id

    @property
    def team_id(self) -> str:
        """The team id (`iss`) this signer signs for."""
        return self._team_id

    @property
    def mint_count(self) -> int:
        """How many tokens this signer has minted; lets tests assert sharing."""
        return self._mint_count

    @property
    def issued_at(self) -> int:
        """The `iat` of the current token (0 before the first one)."""
        return self._issued_at

    def authorization(self) -> str:
        """Returns the `authorization` header value, "bearer <jwt>".

        Mints a token only when there is none or the current one is at least
        `refresh_after_s` old.
        """
        now = self._clock()
        header = self._header
        if header and -60 <= now - self._issued_at < self._refresh_after_s:
            # The common case, without the lock: a header and its iat are
            # replaced together under it, and either pair is a valid token.
            return header
        with self._lock:
            age = now - self._issued_at
            # A clock that jumped backwards past iat would make APNs see a token
            # from the future; treat it like an expired one.
            if not self._header or age >= self._refresh_after_s or age < -60:
                self._mint(now)
            return self._header

    def force_refresh(self, rejected: str | None = None) -> str:
        """Mints a fresh token regardless of age, for 403 ExpiredProviderToken.

        Args:
            rejected: The header value APNs rejected. When given and the signer
                has already replaced it (another task got the same 403 first),
                the current header is returned without minting again, so a burst
                of rejections costs one new token, not one per request.

        Returns:
            The new (or already refreshed) header value.
        """
        with self._lock:
            if rejected is not None and self._header and rejected != self._header:
                return self._header
            self._mint(self._clock())
            return self._header

    def _mint(self, now: float) -> None:
        issued_at = int(now)
        try:
            token = jwt.encode(
                {"iss": self._team_id, "iat": issued_at},
                self._key,
                algorithm="ES256",
                headers={"kid": self._key_id},
            )
        except Exception:
            self._metrics.credential_refreshed("apns_jwt", ok=False)
            raise
        self._metrics.credential_refreshed("apns_jwt", ok=True)
        self._header = f"bearer {token}"
        self._issued_at = issued_at
        self._mint_count += 1
        log.info("minted an APNs provider token (key %s, team %s)", self._key_id, self._team_id)

    def __repr__(self) -> str:
        # Never include the token or the key.
        return f"ApnsTokenSigner(key_id={self._key_id!r}, team_id={self._team_id!r}, mints={self._mint_count})"
