"""Generated from protos/pushsvc/v1/push.proto's Platform enum by scripts/gen; never edit by hand."""

from __future__ import annotations

import enum


class Platform(enum.Enum):
    """The push provider a token belongs to. UNSPECIFIED only ever reaches validation, which rejects it."""

    UNSPECIFIED = "unspecified"
    APNS = "apns"
    FCM = "fcm"
    WEBPUSH = "webpush"
    HMS = "hms"
