"""The PushSubscription a page hands over: parsed, checked and put in canonical form."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

_B64URL = re.compile(r"[A-Za-z0-9_-]+")
"""The URL-safe base64 alphabet, unpadded (what `b64url_decode` accepts, checked without a regular expression)."""
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_SPACE = re.compile(r"\s")
P256DH_BYTES = 65
"""An uncompressed P-256 point (0x04 ‖ X ‖ Y)."""
MIN_AUTH_BYTES = 16
"""RFC 8291 §3.2: the authentication secret is 16 bytes (senders accept longer)."""


class SubscriptionError(ValueError):
    """A token that is not a usable PushSubscription; the message says why, for a field violation."""


@dataclasses.dataclass(frozen=True, slots=True)
class Subscription:
    """A parsed subscription."""

    endpoint: str
    p256dh: bytes
    auth: bytes
    origin: str
    """scheme://host[:port] of the endpoint: the VAPID `aud`."""
    host: str
    """The endpoint's host name, lower-case."""

    def canonical(self) -> str:
        """The stored form: compact JSON with endpoint and keys, keys without padding."""
        return json.dumps(
            {"endpoint": self.endpoint, "keys": {"p256dh": b64url(self.p256dh), "auth": b64url(self.auth)}},
            separators=(",", ":"),
            ensure_ascii=False,
        )


def b64url_decode(text: str) -> bytes:
    """URL-safe base64 with or without padding; another alphabet is an error."""
    stripped = text.rstrip("=")
    # `+` and `/` are the standard alphabet's; after the translation below the
    # strict decoder rejects every other character outside the URL-safe one
    # (each send decodes two keys, so this skips a regular expression pass).
    if not stripped or "+" in stripped or "/" in stripped:
        raise SubscriptionError("must be URL-safe base64")
    try:
        data = (stripped + "=" * (-len(stripped) % 4)).encode("ascii").translate(_TO_STANDARD)
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SubscriptionError("must be URL-safe base64") from None


def b64url(data: bytes) -> str:
    """URL-safe base64 without padding, as PushSubscription.toJSON() writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse(token: str, *, max_chars: int = 4096) -> Subscription:
    """Parses `JSON.stringify(subscription)`; raises SubscriptionError saying what is wrong."""
    if len(token) > max_chars:
        raise SubscriptionError(f"must be at most {max_chars} characters (got {len(token)})")
    try:
        value: Any = json.loads(token)
    except (ValueError, RecursionError):
        raise SubscriptionError(
            "a Web Push token is the page's JSON.stringify(PushSubscription): "
            '{"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}'
        ) from None
    if not isinstance(value, dict):
        raise SubscriptionError("a Web Push token must be a JSON object with endpoint and keys")
    endpoint = value.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise SubscriptionError("the subscription's endpoint must be a non-empty string")
    if not endpoint.isprintable() or _SPACE.search(endpoint):
        raise SubscriptionError("the subscription's endpoint must be printable and contain no whitespace")
    try:
        parts = urllib.parse.urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise SubscriptionError("the subscription's endpoint must be an absolute https URL") from None
    if parts.scheme != "https" or not parts.hostname or parts.username is not None or port == 0:
        raise SubscriptionError("the subscription's endpoint must be an absolute https URL")
    expiration = value.get("expirationTime")
    if expiration is not None and (isinstance(expiration, bool) or not isinstance(expiration, int | float)):
        raise SubscriptionError("the subscription's expirationTime must be a number or null")
    keys = value.get("keys")
    if not isinstance(keys, dict):
        raise SubscriptionError("the subscription must have keys.p256dh and keys.auth")
    p256dh_text, auth_text = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh_text, str) or not isinstance(auth_text, str):
        raise SubscriptionError("the subscription must have keys.p256dh and keys.auth as strings")
    try:
        p256dh = b64url_decode(p256dh_text)
    except SubscriptionError as exc:
        raise SubscriptionError(f"keys.p256dh {exc}") from None
    try:
        auth = b64url_decode(auth_text)
    except SubscriptionError as exc:
        raise SubscriptionError(f"keys.auth {exc}") from None
    if len(p256dh) != P256DH_BYTES or p256dh[0] != 4:
        raise SubscriptionError(f"keys.p256dh must be an uncompressed P-256 point ({P256DH_BYTES} bytes)")
    if len(auth) < MIN_AUTH_BYTES:
        raise SubscriptionError(f"keys.auth must be at least {MIN_AUTH_BYTES} bytes")
    # Parsed once here: a fan-out parses each subscription once, at its send.
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return Subscription(endpoint, p256dh, auth, origin, parts.hostname.lower())


def canonical(token: str) -> str:
    """The stored form of a subscription, or the token unchanged when it is not one (validation says why)."""
    try:
        return parse(token, max_chars=1 << 20).canonical()
    except SubscriptionError:
        return token


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether `host` is on the allow-list: exact names, or `*.example.com` for any subdomain of it."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False
