"""Page tokens: the opaque strings ListTokens and ListNotifications hand out and take back.

A token carries the storage adapter's resume key (strings only) and a
fingerprint of the filters it was made for, so a token reused with other
filters is refused instead of silently skipping or repeating items. It is
not a secret and not signed: a forged one can only name a position in the
caller's own app, which the caller may list anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from pushsvc import errors
from pushsvc.errors import FieldViolation

_VERSION = 1
_MAX_CHARS = 2048
"""Far above any token this module makes (ids are bounded by validation), far below a message limit."""

FIELD = "page_token"


def _fingerprint(filters: Any) -> str:
    # repr of a frozen dataclass of strings, enums, datetimes and None is stable across processes.
    return hashlib.sha256(repr(filters).encode()).hexdigest()[:16]


def encode(after: tuple[str, ...] | None, filters: Any) -> str:
    """The token for the page after `after`; "" when there is none."""
    if after is None:
        return ""
    body = json.dumps({"v": _VERSION, "f": _fingerprint(filters), "k": list(after)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(token: str, filters: Any) -> tuple[str, ...] | None:
    """The resume key in `token`, None for ""; raises InvalidArgument (field page_token) for anything else."""
    if not token:
        return None
    try:
        if len(token) > _MAX_CHARS:
            raise ValueError("too long")
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(body, dict) or body.get("v") != _VERSION:
            raise ValueError("unknown version")
        key = body.get("k")
        if not isinstance(key, list) or not all(isinstance(k, str) for k in key):
            raise ValueError("bad key")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidArgument(
            FieldViolation(FIELD, "is not a page token (pass back next_page_token unchanged)")
        ) from None
    if body.get("f") != _fingerprint(filters):
        raise errors.InvalidArgument(
            FieldViolation(FIELD, "was issued for other filters; repeat the request's filters with it")
        )
    return tuple(key)


def bad_key() -> errors.InvalidArgument:
    """The error for a well-formed token whose key the store does not recognize."""
    return errors.InvalidArgument(FieldViolation(FIELD, "is not a page token of this listing"))


__all__ = ["FIELD", "bad_key", "decode", "encode"]
