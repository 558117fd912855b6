"""Message encryption for Web Push: RFC 8291 over RFC 8188's `aes128gcm`, one record.

Built on `cryptography` (already a base dependency) rather than `http_ece`, so
the hot path is one key generation, one ECDH, one HKDF, three HMACs and one
AES-GCM call; `http_ece` decodes what this produces in the conformance tests.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

RECORD_SIZE = 4096
"""The `rs` written in the header (RFC 8291 §4: a push service may refuse more than 4096 bytes)."""
HEADER_BYTES = 16 + 4 + 1 + 65
"""salt ‖ rs ‖ idlen ‖ keyid (the sender's public key)."""
OVERHEAD_BYTES = HEADER_BYTES + 1 + 16
"""The header, the padding delimiter and the AES-GCM tag: what the body adds to the plaintext."""
MAX_RECORD_BYTES = 4096
"""RFC 8030 §7.2: push services must accept 4096 bytes of encrypted body; above it they may answer 413."""
MAX_PLAINTEXT_BYTES = MAX_RECORD_BYTES - OVERHEAD_BYTES
"""3993 bytes."""

_CURVE = ec.SECP256R1()
_SHA256 = hashes.SHA256()
_ECDH = ec.ECDH()
_X962 = serialization.Encoding.X962
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00\x01"
_NONCE_INFO = b"Content-Encoding: nonce\x00\x01"
_RS_IDLEN = RECORD_SIZE.to_bytes(4, "big") + bytes([65])
"""The header between the salt and the sender's key: rs, then idlen (an uncompressed P-256 point)."""


def load_public_key(ua_public: bytes) -> ec.EllipticCurvePublicKey:
    """The subscriber's `p256dh` as a key object; ValueError when it is not a point on P-256.

    Loading costs about as much as the HKDF and AES-GCM steps together, so a
    caller that sends to the same subscription again keeps the loaded key.
    """
    return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, ua_public)


def encrypt(
    plaintext: bytes, ua_public: bytes, auth_secret: bytes, ua_key: ec.EllipticCurvePublicKey | None = None
) -> bytes:
    """The `aes128gcm` body for one subscription: a fresh sender key and salt every call (RFC 8291 §3.4).

    `ua_key` is `load_public_key(ua_public)` when the caller has it already.
    """
    sender = ec.generate_private_key(_CURVE)
    sender_public = sender.public_key().public_bytes(_X962, _UNCOMPRESSED)
    shared = sender.exchange(_ECDH, ua_key if ua_key is not None else load_public_key(ua_public))
    salt = os.urandom(16)
    # `cryptography`'s HKDF here: two raw `hmac.digest` calls measured no faster.
    ikm = HKDF(algorithm=_SHA256, length=32, salt=auth_secret, info=_KEY_INFO + ua_public + sender_public).derive(shared)
    prk = hmac.digest(salt, ikm, hashlib.sha256)
    cek = hmac.digest(prk, _CEK_INFO, hashlib.sha256)[:16]
    nonce = hmac.digest(prk, _NONCE_INFO, hashlib.sha256)[:12]
    # One record: the plaintext, then the last-record delimiter 0x02 and no padding.
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    return salt + _RS_IDLEN + sender_public + ciphertext
