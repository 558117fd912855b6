"""Message encryption for Web Push: RFC 8291 over RFC 8188's `aes128gcm`, one record.

Built on `cryptography` (already a base dependency) rather than `http_ece`, so
the hot path is one ECDH, two HMACs and one AES-GCM call; `http_ece` decodes
what this produces in the conformance tests.
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


def encrypt(plaintext: bytes, ua_public: bytes, auth_secret: bytes) -> bytes:
    """The `aes128gcm` body for one subscription: a fresh sender key and salt every call (RFC 8291 §3.4)."""
    sender = ec.generate_private_key(_CURVE)
    sender_public = sender.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    shared = sender.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, ua_public))
    salt = os.urandom(16)
    ikm = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=auth_secret, info=b"WebPush: info\x00" + ua_public + sender_public
    ).derive(shared)
    prk = hmac.digest(salt, ikm, hashlib.sha256)
    cek = hmac.digest(prk, b"Content-Encoding: aes128gcm\x00\x01", hashlib.sha256)[:16]
    nonce = hmac.digest(prk, b"Content-Encoding: nonce\x00\x01", hashlib.sha256)[:12]
    # One record: the plaintext, then the last-record delimiter 0x02 and no padding.
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    return salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(sender_public)]) + sender_public + ciphertext
