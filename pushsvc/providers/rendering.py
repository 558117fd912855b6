"""JSON helpers shared by the APNs and FCM renderers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

NOTIFICATION_ID_KEY = "pushsvc_notification_id"
"""The data key that carries pushsvc's notification id in every push: an APNs
top-level custom key, an FCM `data` entry. Its 56 bytes or so count toward the
provider's payload limit. It is pushsvc's: a caller's data key of the same name
is replaced, so that the id a device (or the emulator's inbox) sees is true."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Returns a new dict: `base` with `override` merged in, recursively.

    Nested mappings are merged key by key; any other value in `override`
    (including lists and None) replaces the one in `base`. Neither input is
    modified, so rendered messages never share mutable state with the caller.
    """
    merged: dict[str, Any] = {key: _copy(value) for key, value in base.items()}
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = _copy(value)
    return merged


def compact_json(value: Any) -> str:
    """Serializes the way providers measure size: no spaces, UTF-8 kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def utf8_len(text: str) -> int:
    """The size in bytes of `text` encoded as UTF-8."""
    return len(text.encode("utf-8"))


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
