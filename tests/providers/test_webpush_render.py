"""Web Push rendering, encryption (checked by http_ece, an independent decoder), VAPID and answer classification."""

from __future__ import annotations

import base64
import json

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushsvc import models
from pushsvc.channels.webpush import crypto, subscription
from pushsvc.channels.webpush.provider import classify_webpush_response, render_webpush, topic_of
from pushsvc.channels.webpush.vapid import JWT_LIFETIME_S, VapidSigner, application_server_key, load_private_key, raw_private_key
from pushsvc.providers.base import Outcome


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _browser() -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return key, public, b"0123456789abcdef"


@pytest.mark.parametrize("size", [0, 1, 100, crypto.MAX_PLAINTEXT_BYTES])
def test_http_ece_decrypts_what_pushsvc_encrypts(size: int) -> None:
    key, public, auth = _browser()
    plaintext = bytes(range(256)) * (size // 256) + bytes(size % 256)
    body = crypto.encrypt(plaintext, public, auth)
    assert len(body) == size + crypto.OVERHEAD_BYTES
    assert http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm") == plaintext


def test_every_message_gets_a_fresh_salt_and_sender_key() -> None:
    _, public, auth = _browser()
    first, second = crypto.encrypt(b"x", public, auth), crypto.encrypt(b"x", public, auth)
    assert first[:16] != second[:16] and first[21:86] != second[21:86]


def test_the_size_limit_applies_to_the_encrypted_record() -> None:
    fits = render_webpush(models.Message(body="a" * (crypto.MAX_PLAINTEXT_BYTES - len('{"body":""}'))))
    assert fits.size_bytes == crypto.MAX_RECORD_BYTES == fits.limit_bytes
    over = render_webpush(models.Message(body="a" * (crypto.MAX_PLAINTEXT_BYTES - len('{"body":""}') + 1)))
    assert over.size_bytes > over.limit_bytes


def test_render_maps_priority_to_urgency_and_collapse_key_to_topic() -> None:
    r = render_webpush(models.Message(title="T", priority=models.Priority.NORMAL, collapse_key="sale:spring 2026"))
    assert r.body["headers"]["urgency"] == "normal"
    topic = r.body["headers"]["topic"]
    assert len(topic) == 32 and topic == topic_of("sale:spring 2026") and subscription._B64URL.fullmatch(topic)
    assert json.loads(r.body["payload"]) == {"title": "T", "tag": "sale:spring 2026"}
    assert "topic" not in render_webpush(models.Message(title="T")).body["headers"]
    assert topic_of("news") == "news"


def test_vapid_jwt_is_es256_for_the_origin_and_cached_per_origin() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = [1_800_000_000.0]
    signer = VapidSigner(key, "mailto:ops@example.com", lambda: now[0])
    header = signer.authorization("https://fcm.googleapis.com")
    token, k = header.removeprefix("vapid t=").split(", k=")
    assert k == application_server_key(key)
    claims = jwt.decode(token, key.public_key(), algorithms=["ES256"], audience="https://fcm.googleapis.com",
                        options={"verify_exp": False})
    assert claims == {"aud": "https://fcm.googleapis.com", "exp": int(now[0]) + JWT_LIFETIME_S, "sub": "mailto:ops@example.com"}
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "JWT"}
    assert signer.authorization("https://fcm.googleapis.com") == header
    assert signer.authorization("https://updates.push.services.mozilla.com") != header
    now[0] += JWT_LIFETIME_S - 3000  # less than the renewal margin left
    assert signer.authorization("https://fcm.googleapis.com") != header


def test_vapid_keys_load_from_pem_and_from_the_raw_form() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert application_server_key(load_private_key(pem)) == application_server_key(key)
    assert application_server_key(load_private_key(raw_private_key(key).encode())) == application_server_key(key)
    with pytest.raises(ValueError):
        load_private_key(b"not a key")


@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [
        (201, Outcome.DELIVERED, ""), (202, Outcome.DELIVERED, ""),
        (404, Outcome.TOKEN_INVALID, "SubscriptionNotFound"), (410, Outcome.TOKEN_INVALID, "SubscriptionGone"),
        (401, Outcome.CREDENTIALS_REJECTED, "VapidRejected"), (403, Outcome.CREDENTIALS_REJECTED, "VapidRejected"),
        (413, Outcome.PERMANENT, "PayloadTooLarge"), (400, Outcome.PERMANENT, "BadRequest"),
        (429, Outcome.RETRYABLE, "TooManyRequests"), (502, Outcome.RETRYABLE, "PushServiceError"),
        (418, Outcome.PERMANENT, "UnexpectedStatus"),
    ],
)
def test_classification(status: int, outcome: Outcome, reason: str) -> None:
    result = classify_webpush_response(status, {"retry-after": "7"}, now=0)
    assert (result.outcome, result.reason, result.provider_status) == (outcome, reason, status)
    assert result.retry_after_s == (7.0 if outcome is Outcome.RETRYABLE else None)


def test_subscriptions_parse_to_one_canonical_form() -> None:
    _, public, auth = _browser()
    endpoint = "https://wns2-by3p.notify.windows.com/w/?token=BQYAAA%2bX%2f"
    page = json.dumps({"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": _b64(public), "auth": _b64(auth)}})
    padded = json.dumps({"keys": {"auth": _b64(auth) + "==", "p256dh": _b64(public) + "="}, "endpoint": endpoint,
                         "expirationTime": 1_900_000_000_000})
    assert subscription.canonical(page) == subscription.canonical(padded)
    parsed = subscription.parse(subscription.canonical(page))
    assert parsed.endpoint == endpoint and parsed.host == "wns2-by3p.notify.windows.com"
    assert parsed.origin == "https://wns2-by3p.notify.windows.com"
    assert subscription.host_allowed(parsed.host, ["*.notify.windows.com"])
    assert not subscription.host_allowed("notify.windows.com.evil.example", ["*.notify.windows.com"])
    assert not subscription.host_allowed("evilnotify.windows.com", ["*.notify.windows.com"])


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("not json", "JSON.stringify"),
        ("[]", "JSON object"),
        ('{"endpoint": "http://fcm.googleapis.com/x", "keys": {}}', "https URL"),
        ('{"endpoint": "https://fcm.googleapis.com/x"}', "keys.p256dh"),
        ('{"endpoint": "https://fcm.googleapis.com/x", "keys": {"p256dh": "a+b/", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}', "URL-safe"),
        ('{"endpoint": "https://fcm.googleapis.com/x", "keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}', "65 bytes"),
        ('{"endpoint": "https://fcm.googleapis.com/x", "expirationTime": "soon", "keys": {}}', "expirationTime"),
    ],
)
def test_bad_subscriptions_say_why(token: str, problem: str) -> None:
    with pytest.raises(subscription.SubscriptionError, match=problem):
        subscription.parse(token)
    assert subscription.canonical(token) == token


def test_http_ece_decrypts_with_a_key_loaded_once_and_a_fresh_sender_key_each_time() -> None:
    key, public, auth = _browser()
    loaded = crypto.load_public_key(public)
    bodies = [crypto.encrypt(b"again", public, auth, loaded) for _ in range(3)]
    for body in bodies:
        assert http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm") == b"again"
    assert len({body[21:86] for body in bodies}) == 3 and len({body[:16] for body in bodies}) == 3


def test_a_p256dh_off_the_curve_does_not_load() -> None:
    with pytest.raises(ValueError):
        crypto.load_public_key(b"\x04" + bytes(64))


@pytest.mark.parametrize(
    "text",
    ["", "=", "a+b/", "ab+c", "ab/c", "a=bc", "ab c", "ab\ncd", "abcde", "abcde===", "é", "ab\x00c", "YQ=x"],
)
def test_b64url_decode_rejects_what_is_not_url_safe_base64(text: str) -> None:
    with pytest.raises(subscription.SubscriptionError, match="URL-safe base64"):
        subscription.b64url_decode(text)


@pytest.mark.parametrize("size", [1, 2, 3, 16, 32, 65])
def test_b64url_decode_reads_keys_with_and_without_padding(size: int) -> None:
    data = bytes(range(256 - size, 256))  # high bytes: the encoding holds `-` and `_`
    encoded = base64.urlsafe_b64encode(data).decode()
    assert subscription.b64url_decode(encoded) == subscription.b64url_decode(encoded.rstrip("=")) == data
