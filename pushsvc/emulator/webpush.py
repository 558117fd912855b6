"""A fake Web Push service (RFC 8030) with VAPID (RFC 8292) and payload decryption (RFC 8291).

Served on the FCM port, under ``/wp/<id>`` as Google's current endpoints are.
``POST /_emulator/webpush/subscriptions`` (every control endpoint) mints a
subscription as ``PushManager.subscribe()`` would return it, and keeps its
private key and auth secret, so every push to it is decrypted and the inbox
shows the plaintext. The JSON body may name:

- ``applicationServerKey``: the page's VAPID public key; pushes must then be
  signed by it (``k``), as a VAPID-restricted subscription requires;
- ``outcome``: a test outcome, one of ``OUTCOMES`` (410, 404, 413, 429, 500,
  503). The endpoint's path then starts with that outcome's prefix
  (``/wp/gone-…``), so the outcome is visible in the token. 410, 404 and
  413 answer every push; 429, 500 and 503 (with ``Retry-After: 1``) answer
  the first push only, and later ones are accepted.

Checks (reference/protocols-webpush-hms.md, Part 3): POST only; unknown
subscription 404; ``TTL`` present and digits (400); ``Urgency`` one of four,
not repeated (400); ``Topic`` at most 32 URL-safe base64 characters (400); a
body needs ``Content-Encoding: aes128gcm`` (400) and may be at most 4096
bytes (413); VAPID: ``vapid t=…, k=…`` present (401), an ES256 JWT that
verifies with ``k``, ``aud`` the endpoint's origin, ``exp`` after now and at
most 24 h ahead, ``sub`` mailto: or https:, ``k`` the subscription's
applicationServerKey when it has one (403 ``{"reason": "BadJwtToken"}``).
A body that does not decrypt is accepted with 201, as real services do (the
browser drops it), and recorded with the decryption error in its payload.
Success is 201 with ``Location`` (the message's URI) and ``TTL``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .display import Display, badge, mapping, shown_data, text
from .handlers import HandlerSpec, write_private
from .inbox import Inbox, InboxEntry
from .site import Request, Response
from .stats import Stats

CHANNEL = "webpush"
"""The channel's settings_key: its counter, control endpoints and manifest entries are named by it."""

PATH_PREFIX = "/wp/"
MAX_BODY_BYTES = 4096
"""RFC 8030 §7.2: 413 is allowed only above 4096 bytes."""
MAX_TTL_S = 30 * 86400
"""The TTL echoed back is capped, as Mozilla's service caps it."""
OUTCOMES: dict[str, tuple[str, int]] = {
    "410": ("gone-", 410),
    "404": ("notfound-", 404),
    "413": ("toolarge-", 413),
    "429": ("ratelimit-", 429),
    "500": ("error-", 500),
    "503": ("unavailable-", 503),
}
"""A test outcome's name, its endpoint path prefix and the status every push to it gets."""
RETRY_AFTER_S = "1"
ONCE = frozenset({429, 500, 503})
"""Outcomes answered to the first push only; later pushes are accepted, as the APNs and FCM test tokens do."""
_URGENCIES = ("very-low", "low", "normal", "high")
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}=*")
_SUB = re.compile(r"(mailto:[^\s<>]+@[^\s<>]+|https://\S+)")
_CURVE = ec.SECP256R1()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    stripped = text.strip().rstrip("=")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


@dataclasses.dataclass
class _Subscription:
    key: ec.EllipticCurvePrivateKey
    public: bytes
    auth: bytes
    server_key: str
    """The applicationServerKey it was made with (base64url, unpadded), or ""."""
    status: int
    """The test outcome's status, or 201."""


class DecryptError(ValueError):
    """The body is not a valid RFC 8291 record for the subscription."""


def decrypt(body: bytes, ua_key: ec.EllipticCurvePrivateKey, ua_public: bytes, auth: bytes) -> bytes:
    """The plaintext of an `aes128gcm` body, with RFC 8291 §4's and RFC 8188's checks."""
    if len(body) < 21:
        raise DecryptError("the body is shorter than the aes128gcm header")
    salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    if rs < 18:
        raise DecryptError(f"record size {rs} is below 18")
    if idlen != 65:
        raise DecryptError(f"keyid is {idlen} bytes; RFC 8291 needs the sender's 65-byte public key")
    sender_public, ciphertext = body[21:86], body[86:]
    if len(ciphertext) <= 16:
        raise DecryptError("the ciphertext is empty")
    try:
        sender = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, sender_public)
    except ValueError:
        raise DecryptError("the sender's key is not a P-256 point") from None
    shared = ua_key.exchange(ec.ECDH(), sender)
    ikm = HKDF(algorithm=hashes.SHA256(), length=32, salt=auth, info=b"WebPush: info\x00" + ua_public + sender_public).derive(shared)
    prk = hmac.digest(salt, ikm, hashlib.sha256)
    cek = hmac.digest(prk, b"Content-Encoding: aes128gcm\x00\x01", hashlib.sha256)[:16]
    nonce = hmac.digest(prk, b"Content-Encoding: nonce\x00\x01", hashlib.sha256)[:12]
    try:
        record = AESGCM(cek).decrypt(nonce, ciphertext, None)
    except InvalidTag:
        raise DecryptError("the authentication tag does not verify (wrong keys or a corrupt body)") from None
    stripped = record.rstrip(b"\x00")
    if not stripped:
        raise DecryptError("the record is all padding")
    if stripped[-1] != 2:
        raise DecryptError("the record's delimiter is not 0x02 (one final record)")
    return stripped[:-1]


class WebPushService:
    """Subscriptions, and the push endpoint that accepts messages for them."""

    def __init__(self, *, inbox: Inbox, stats: Stats, clock: Callable[[], float], origin: Callable[[], str]) -> None:
        self._inbox = inbox
        self._stats = stats
        self._clock = clock
        self._origin = origin
        self._subscriptions: dict[str, _Subscription] = {}
        stats.register(CHANNEL)

    def subscribe(self, options: dict[str, Any]) -> dict[str, Any]:
        """Mints a subscription; raises ValueError for bad options."""
        outcome = str(options.get("outcome") or "")
        if outcome and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        server_key = options.get("applicationServerKey") or ""
        if not isinstance(server_key, str):
            raise ValueError("applicationServerKey must be a base64url string")
        if server_key:
            try:
                raw = _unb64(server_key)
            except (binascii.Error, ValueError):
                raise ValueError("applicationServerKey must be base64url") from None
            if len(raw) != 65 or raw[0] != 4:
                raise ValueError("applicationServerKey must be a 65-byte uncompressed P-256 point")
            server_key = _b64(raw)
        prefix, status = OUTCOMES.get(outcome, ("", 201))
        key = ec.generate_private_key(_CURVE)
        public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        sub_id = prefix + secrets.token_urlsafe(24)
        auth = secrets.token_bytes(16)
        self._subscriptions[sub_id] = _Subscription(key, public, auth, server_key, status)
        return {
            "endpoint": f"{self._origin()}{PATH_PREFIX}{sub_id}",
            "expirationTime": None,
            "keys": {"p256dh": _b64(public), "auth": _b64(auth)},
        }

    def subscribe_for_test(self, application_server_key: str = "", outcome: str = "") -> dict[str, Any]:
        """A new test subscription, as ``POST /_emulator/webpush/subscriptions`` mints it (`Emulator.subscribe_webpush`)."""
        return self.subscribe({"applicationServerKey": application_server_key, "outcome": outcome})

    def owns(self, path: str) -> bool:
        """Push endpoints, ``/wp/<id>``."""
        return path.startswith(PATH_PREFIX)

    def control(self, action: str) -> Callable[[dict[str, Any]], tuple[int, Any]] | None:
        """``POST /_emulator/webpush/subscriptions``: a new subscription (201)."""
        return (lambda options: (201, self.subscribe(options))) if action == "subscriptions" else None

    def accept(self, entries: Mapping[str, str]) -> None:
        """Nothing to accept: a push service takes any VAPID key (a subscription may pin one)."""

    def urls(self) -> dict[str, str]:
        """The push service's origin."""
        return {"webpush_url": self._origin()}

    def attributes(self) -> Mapping[str, Callable[[], Any]]:
        """`Emulator.webpush_url` and `Emulator.subscribe_webpush`."""
        return {"webpush_url": self._origin, "subscribe_webpush": lambda: self.subscribe_for_test}

    def handle(self, request: Request) -> Response:
        """One push request to ``/wp/<id>``."""
        self._stats.count(CHANNEL)
        sub_id = request.path.partition("?")[0][len(PATH_PREFIX):]
        sub = self._subscriptions.get(sub_id)
        if request.method != "POST":
            return Response.json(405, {"error": "method not allowed"}, [("allow", "POST")])
        if sub is None:
            return _error(404, "no such subscription")
        ttl = request.header("ttl")
        if ttl is None or not ttl.isdigit():
            return _error(400, "the TTL header is required, in seconds")
        urgencies = [v for k, v in request.headers if k == "urgency"]
        if len(urgencies) > 1 or (urgencies and urgencies[0] not in _URGENCIES):
            return _error(400, f"Urgency must be one of {', '.join(_URGENCIES)}, once")
        topic = request.header("topic")
        if topic is not None and not _TOPIC.fullmatch(topic):
            return _error(400, "Topic must be at most 32 URL-safe base64 characters")
        body = request.body
        if body and (request.header("content-encoding") or "").strip().lower() != "aes128gcm":
            return _error(400, "a body needs Content-Encoding: aes128gcm")
        rejected = self._check_vapid(request.header("authorization"), sub)
        if rejected is not None:
            return rejected
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
        if sub.status != 201:
            status = sub.status
            extra = [("retry-after", RETRY_AFTER_S)] if status in ONCE else []
            if status in ONCE:
                sub.status = 201
            if status == 410:
                extra.append(("cache-control", "max-age=86400"))
            return _error(status, f"test outcome {status}", extra)
        payload: dict[str, Any]
        if not body:
            payload = {}
        else:
            try:
                text = decrypt(body, sub.key, sub.public, sub.auth)
            except DecryptError as exc:
                payload = {"decrypt_error": str(exc)}
            else:
                payload = _payload(text)
        message_id = secrets.token_urlsafe(16)
        recorded = {k: v for k, v in request.headers if k != "authorization" and not k.startswith(":")}
        self._inbox.add(
            InboxEntry(
                platform="webpush",
                token=f"{self._origin()}{PATH_PREFIX}{sub_id}",
                environment="",
                headers=recorded,
                payload=payload,
                message_id=message_id,
                received_at=self._clock(),
            )
        )
        return Response(
            201,
            [("location", f"{self._origin()}/m/{message_id}"), ("ttl", str(min(int(ttl), MAX_TTL_S)))],
        )

    def _check_vapid(self, header: str | None, sub: _Subscription) -> Response | None:
        if not header:
            return _error(401, "VAPID authorization is required")
        scheme, _, params = header.strip().partition(" ")
        if scheme.lower() != "vapid":
            return _error(401, "the authorization scheme must be vapid")
        fields = dict(part.strip().partition("=")[::2] for part in params.split(","))
        token, k = fields.get("t", ""), fields.get("k", "")
        if not token or not k:
            return _error(401, "vapid needs t= and k=")
        try:
            raw = _unb64(k)
            public = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, raw)
            claims = jwt.decode(
                token, public, algorithms=["ES256"], audience=self._origin(),
                options={"require": ["exp", "aud", "sub"], "verify_exp": False},
            )
        except (binascii.Error, ValueError, jwt.PyJWTError) as exc:
            return _bad_jwt(f"the VAPID JWT does not verify: {type(exc).__name__}")
        now = self._clock()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or not now < exp <= now + 86400:
            return _bad_jwt("exp must be after now and at most 24 h ahead")
        if not isinstance(claims.get("sub"), str) or not _SUB.fullmatch(claims["sub"]):
            return _bad_jwt("sub must be a mailto: or https: contact")
        if sub.server_key and _b64(raw) != sub.server_key:
            return _bad_jwt("k is not the subscription's applicationServerKey")
        return None


def _payload(text: bytes) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return {"text": text.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"value": value}


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response.json(status, {"code": status, "error": message}, headers or [])


def _bad_jwt(message: str) -> Response:
    # Apple's form (and RFC 8292's status for an invalid token); Mozilla answers 401 for every fault.
    return Response.json(403, {"reason": "BadJwtToken", "error": message})


def demo_credentials(directory: Path) -> dict[str, str]:
    """A demo VAPID key, EC P-256 PKCS#8 PEM (``vapid-key.pem``)."""
    path = directory / "vapid-key.pem"
    key = ec.generate_private_key(_CURVE)
    write_private(
        path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return {"webpush_vapid_key_file": str(path)}


def display(payload: Mapping[str, Any]) -> Display:
    """What a browser shows: the decrypted JSON pushsvc sends (title, body, image, badge, sound, data).

    Another sender's text is shown as the body, and a payload that could not
    be decrypted shows why.
    """
    return Display(
        app="web",
        title=text(payload.get("title")),
        body=text(payload.get("body")) or text(payload.get("text")) or text(payload.get("decrypt_error")),
        badge=badge(payload.get("badge")),
        sound=text(payload.get("sound")),
        image=text(payload.get("image")),
        **shown_data(mapping(payload.get("data"))),
    )


HANDLER = HandlerSpec(
    channel=CHANNEL,
    build=lambda ctx: WebPushService(inbox=ctx.inbox, stats=ctx.stats, clock=ctx.clock, origin=ctx.origin),
    demo_credentials=demo_credentials,
    display=display,
    label="Web Push",
    icon="W",
    color="#2a9d5b",
)
"""The Web Push channel's emulator handler (named by its registry entry)."""
