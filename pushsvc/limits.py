"""Request size limits: generous, but bounded so no input can exhaust a replica.

Apart from `validation` so that each channel's token check can read them
without importing the validation that loops over the channels.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits on requests. Generous, but bounded so no input can exhaust a replica."""

    max_id_chars: int = 128
    """app_id, user_id, device_id, notification_id."""
    apns_token_min_hex: int = 64
    """APNs tokens are 32 bytes today; Apple says not to assume a size, so we allow longer."""
    apns_token_max_hex: int = 200
    max_token_chars: int = 4096
    max_topic_chars: int = 256
    max_topics_per_token: int = 100
    max_attr_chars: int = 64
    """Each of a token's attributes (`models.TOKEN_ATTRIBUTES`: locale, timezone, app_version)."""
    max_registrations_per_batch: int = 1_000
    """Items of one RegisterTokens call; the server's message size bounds it too."""
    max_devices_per_send: int = 10_000
    max_users_per_send: int = 1_000
    max_data_entries: int = 100
    max_text_chars: int = 4096
    max_idempotency_key_chars: int = 256
    max_apns_headers: int = 16
    max_collapse_key_bytes: int = 64
    """APNs rejects longer apns-collapse-id values."""
    max_schedule_ahead_s: float = 30 * 86400
    max_stale_after_s: float = 10 * 365 * 86400
    """Prune's stale_after beyond ten years is a mistake, and beyond ~2000 years a date overflow."""
    max_payload_depth: int = 32
    """Nesting of objects and arrays in a custom payload (apns.payload, fcm.*); the top object is level 1.

    Real APNs and FCM payloads nest a few levels. 32 is also the deepest object
    nesting the protobuf decoder's limit of 100 message levels lets through.
    """
