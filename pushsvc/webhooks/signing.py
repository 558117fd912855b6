"""Signatures in the style of the Standard Webhooks specification.

Each POST carries `webhook-id` (the batch's idempotency id), `webhook-timestamp`
(integer seconds since the epoch) and `webhook-signature`: `v1,` and the
base64 HMAC-SHA256, under the endpoint's secret, of `<id>.<timestamp>.<body>`.
A secret written `whsec_<base64>` (as Standard Webhooks libraries make them)
signs with the decoded bytes; any other secret with its bytes as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 16
"""Shorter keys are refused: an HMAC is only as strong as its key."""


def signing_key(secret: bytes) -> bytes:
    """The HMAC key of a configured secret (surrounding whitespace, such as a file's newline, ignored).

    Raises:
        ValueError: the secret is too short, or `whsec_` followed by something that is not base64.
    """
    text = secret.strip()
    if text.startswith(SECRET_PREFIX.encode()):
        try:
            key = base64.b64decode(text[len(SECRET_PREFIX):], validate=True)
        except binascii.Error:
            raise ValueError("a secret starting whsec_ must go on in base64") from None
    else:
        key = text
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the secret is shorter than {MIN_KEY_BYTES} bytes")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one signed POST."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
    }
