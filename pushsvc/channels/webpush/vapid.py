"""VAPID (RFC 8292): the application server's key, and the JWT it signs per push-service origin."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushsvc.channels.webpush.subscription import SubscriptionError, b64url, b64url_decode

JWT_LIFETIME_S = 12 * 3600
"""`exp` is 12 h ahead: RFC 8292 allows 24 h, and Mozilla's service rejects exactly 24 h on any clock skew."""
RENEW_BEFORE_S = 3600
"""A cached JWT is replaced once less than this is left of it."""


def load_private_key(data: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 key as PEM (PKCS#8 or SEC1), or as the base64url 32-byte scalar key generators print."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(text, password=None)
    else:
        try:
            raw = b64url_decode(text.decode("ascii"))
        except (SubscriptionError, UnicodeDecodeError):
            raise ValueError("expected a PEM EC private key or a base64url 32-byte P-256 private key") from None
        if len(raw) != 32:
            raise ValueError(f"a raw VAPID private key is 32 bytes (got {len(raw)})")
        key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("a VAPID key must be an EC P-256 key")
    return key


def application_server_key(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as a page's `applicationServerKey` (and VAPID's `k`): base64url uncompressed point."""
    return b64url(key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


def raw_private_key(key: ec.EllipticCurvePrivateKey) -> str:
    """The private scalar, base64url: the form `web-push generate-vapid-keys` prints."""
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


@dataclasses.dataclass
class _Signed:
    header: str
    expires_at: float


class VapidSigner:
    """Signs and caches one VAPID JWT per push-service origin.

    Args:
        key: The application server's P-256 key.
        subject: The `sub` claim: a mailto: or https: contact (Mozilla and Apple require it).
        clock: Epoch seconds.
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, subject: str, clock: Callable[[], float]) -> None:
        self._key = key
        self._subject = subject
        self._clock = clock
        self.public_key = application_server_key(key)
        self._cache: dict[str, _Signed] = {}

    def authorization(self, origin: str) -> str:
        """The `Authorization` header value for a request to `origin` (scheme://host[:port])."""
        now = self._clock()
        signed = self._cache.get(origin)
        if signed is None or signed.expires_at - now < RENEW_BEFORE_S:
            exp = int(now) + JWT_LIFETIME_S
            token = jwt.encode({"aud": origin, "exp": exp, "sub": self._subject}, self._key, algorithm="ES256",
                               headers={"typ": "JWT"})
            signed = _Signed(f"vapid t={token}, k={self.public_key}", float(exp))
            self._cache[origin] = signed
        return signed.header
