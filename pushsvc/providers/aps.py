"""Apple's push vocabulary, shared by the APNs adapter and by FCM's apns block.

FCM relays pushes to iOS devices through APNs: its renderer writes the same
`aps` dictionary and priority headers, and its error bodies quote Apple's
reason strings. Both adapters import them from here, so neither imports the
other.
"""

from __future__ import annotations

import enum
from typing import Any

from pushsvc import models


class ApnsReason(enum.StrEnum):
    """Every `reason` string APNs documents for the device-push API (§A.9)."""

    BAD_COLLAPSE_ID = "BadCollapseId"
    BAD_DEVICE_TOKEN = "BadDeviceToken"
    BAD_EXPIRATION_DATE = "BadExpirationDate"
    BAD_MESSAGE_ID = "BadMessageId"
    BAD_PRIORITY = "BadPriority"
    BAD_TOPIC = "BadTopic"
    DEVICE_TOKEN_NOT_FOR_TOPIC = "DeviceTokenNotForTopic"
    DUPLICATE_HEADERS = "DuplicateHeaders"
    IDLE_TIMEOUT = "IdleTimeout"
    INVALID_PUSH_TYPE = "InvalidPushType"
    MISSING_DEVICE_TOKEN = "MissingDeviceToken"
    MISSING_TOPIC = "MissingTopic"
    PAYLOAD_EMPTY = "PayloadEmpty"
    TOPIC_DISALLOWED = "TopicDisallowed"
    BAD_CERTIFICATE = "BadCertificate"
    BAD_CERTIFICATE_ENVIRONMENT = "BadCertificateEnvironment"
    EXPIRED_PROVIDER_TOKEN = "ExpiredProviderToken"
    FORBIDDEN = "Forbidden"
    INVALID_PROVIDER_TOKEN = "InvalidProviderToken"
    MISSING_PROVIDER_TOKEN = "MissingProviderToken"
    UNRELATED_KEY_ID_IN_TOKEN = "UnrelatedKeyIdInToken"
    BAD_ENVIRONMENT_KEY_ID_IN_TOKEN = "BadEnvironmentKeyIdInToken"
    BAD_ENVIRONMENT_KEY_IN_TOKEN = "BadEnvironmentKeyInToken"
    """The spelling seen relayed through FCM; Apple's page says ...KeyIdInToken."""
    BAD_PATH = "BadPath"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    EXPIRED_TOKEN = "ExpiredToken"
    UNREGISTERED = "Unregistered"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    TOO_MANY_PROVIDER_TOKEN_UPDATES = "TooManyProviderTokenUpdates"
    TOO_MANY_REQUESTS = "TooManyRequests"
    INTERNAL_SERVER_ERROR = "InternalServerError"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    SHUTDOWN = "Shutdown"


DEAD_TOKEN_REASONS = frozenset(
    {
        ApnsReason.BAD_DEVICE_TOKEN,
        ApnsReason.UNREGISTERED,
        ApnsReason.EXPIRED_TOKEN,
        ApnsReason.DEVICE_TOKEN_NOT_FOR_TOPIC,
    }
)
"""Reasons that mean the device token is dead, whoever relays them."""


def apns_priority(priority: models.Priority, push_type: models.PushType) -> str:
    """The apns-priority header value: "10" or "5"; background pushes are always "5"."""
    if push_type is models.PushType.BACKGROUND:
        return "5"
    if priority is models.Priority.NORMAL:
        return "5"
    return "10"


def aps_dictionary(message: models.Message, push_type: models.PushType, *, with_alert: bool = True) -> dict[str, Any]:
    """The `aps` dictionary of a message, shared with the FCM renderer's apns block.

    Args:
        message: The message.
        push_type: Its effective push type.
        with_alert: Include title and body in `alert` (FCM fills those from its
            own `notification` block, so it passes False and keeps the subtitle).
    """
    aps: dict[str, Any] = {}
    alert: dict[str, str] = {}
    if with_alert and message.title:
        alert["title"] = message.title
    if message.subtitle:
        alert["subtitle"] = message.subtitle
    if with_alert and message.body:
        alert["body"] = message.body
    # Device-side localization keys: FCM's notification block has no place for them on iOS, so both renderers put them here.
    alert_any: dict[str, Any] = dict(alert)
    if message.title_loc_key:
        alert_any["title-loc-key"] = message.title_loc_key
    if message.title_loc_args:
        alert_any["title-loc-args"] = list(message.title_loc_args)
    if message.body_loc_key:
        alert_any["loc-key"] = message.body_loc_key
    if message.body_loc_args:
        alert_any["loc-args"] = list(message.body_loc_args)
    if alert_any:
        aps["alert"] = alert_any
    if message.badge is not None:
        aps["badge"] = message.badge
    if message.sound:
        aps["sound"] = message.sound
    if message.category:
        aps["category"] = message.category
    if message.thread_id:
        aps["thread-id"] = message.thread_id
    if message.content_available or push_type is models.PushType.BACKGROUND:
        aps["content-available"] = 1
    if message.mutable_content:
        aps["mutable-content"] = 1
    return aps


