"""What a phone would show for a recorded notification: title, body, badge, sound, image, category.

Read from the request as the device's OS would read it:

- APNs: ``aps.alert`` (a string is the body; a dictionary gives ``title``,
  ``subtitle``, ``body``, falling back to the ``*-loc-key`` names),
  ``aps.badge``, ``aps.sound`` (a string, or a critical-alert dictionary's
  ``name``), ``aps.category``. APNs has no image field: a notification
  service extension downloads one named by a custom key, so the top-level
  ``image``, ``image_url`` or ``image-url`` key, or ``fcm_options.image``, is
  shown. The app is the ``apns-topic``.
- FCM: ``notification`` (``title``, ``body``, ``image``), overridden by
  ``android.notification`` as an Android device does (plus its ``sound``,
  and ``click_action`` as the category); ``apns.payload.aps`` gives the
  badge, and the sound or category when Android's are absent. The app is the
  project id of the message name.
- Web Push: the decrypted payload's ``title``, ``body``, ``image``,
  ``badge`` and ``sound`` (a payload that is not JSON is the body).

Beside what is shown, ``data`` is what the app receives: FCM's ``data``
object, an APNs payload's custom keys (every top-level key but ``aps``),
HMS's ``data`` (a JSON string, parsed) or a Web Push payload's ``data``.
``notification_id`` is pushsvc's id of the notification the push belongs to:
the data key ``pushsvc_notification_id`` that pushsvc renders into every push
(``NOTIFICATION_ID_KEY``; "" when absent, as for pushes not sent by pushsvc).
``locale`` is the localized variant pushsvc chose for the device: the tag in
the data key ``pushsvc_locale`` (``LOCALE_KEY``); "" when absent, which is the
message's own content (pushsvc marks only the variants) or a push from
another sender.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

NOTIFICATION_ID_KEY = "pushsvc_notification_id"
"""The data key pushsvc renders its notification id under. The emulator does not
import pushsvc (it is a peer of it), so the name is repeated here; a test holds
the two equal."""
LOCALE_KEY = "pushsvc_locale"
"""The data key pushsvc names a localized variant's tag under (pushsvc.locales.VARIANT_KEY; a test holds the two equal)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Display:
    """The visible parts of one notification ("" or None when absent)."""

    app: str = ""
    title: str = ""
    subtitle: str = ""
    body: str = ""
    badge: int | None = None
    sound: str = ""
    image: str = ""
    category: str = ""
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    notification_id: str = ""
    locale: str = ""
    """The localized variant's tag pushsvc chose for this device; "" for the message's own content."""

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


def display_of(platform: str, headers: Mapping[str, str], payload: Mapping[str, Any], message_id: str) -> Display:
    """Render one recorded request (an inbox entry's fields) as a phone would show it."""
    if platform == "apns":
        return _apns(headers, payload)
    if platform == "webpush":
        return _webpush(payload)
    if platform == "hms":
        return _hms(payload)
    return _fcm(payload, message_id)


def _hms(message: Mapping[str, Any]) -> Display:
    notification = _dict(message.get("notification"))
    android = _dict(_dict(message.get("android")).get("notification"))
    return Display(
        app="hms",
        title=_text(android.get("title")) or _text(notification.get("title")),
        body=_text(android.get("body")) or _text(notification.get("body")),
        badge=_badge(_dict(android.get("badge")).get("set_num")),
        sound=_text(android.get("sound")),
        image=_text(android.get("image")) or _text(notification.get("image")),
        **_data(_json_object(message.get("data"))),
    )


def _json_object(text: Any) -> Mapping[str, Any]:
    """HMS carries `data` as a JSON string: its object, or {} when it is not one."""
    if not isinstance(text, str):
        return {}
    try:
        return _dict(json.loads(text))
    except ValueError:
        return {}


def _webpush(payload: Mapping[str, Any]) -> Display:
    # The decrypted JSON pushsvc sends (title, body, image, tag, badge, sound); another sender's
    # text is shown as the body.
    return Display(
        app="web",
        title=_text(payload.get("title")),
        body=_text(payload.get("body")) or _text(payload.get("text")) or _text(payload.get("decrypt_error")),
        badge=_badge(payload.get("badge")),
        sound=_text(payload.get("sound")),
        image=_text(payload.get("image")),
        **_data(_dict(payload.get("data"))),
    )


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _badge(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sound(value: Any) -> str:
    if isinstance(value, Mapping):
        return _text(value.get("name"))
    return _text(value)


def _apns(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Display:
    aps = _dict(payload.get("aps"))
    alert = aps.get("alert")
    title = subtitle = body = ""
    if isinstance(alert, str):
        body = alert
    elif isinstance(alert, Mapping):
        title = _text(alert.get("title")) or _text(alert.get("title-loc-key"))
        subtitle = _text(alert.get("subtitle")) or _text(alert.get("subtitle-loc-key"))
        body = _text(alert.get("body")) or _text(alert.get("loc-key"))
    image = (
        _text(payload.get("image"))
        or _text(payload.get("image_url"))
        or _text(payload.get("image-url"))
        or _text(_dict(payload.get("fcm_options")).get("image"))
    )
    return Display(
        app=headers.get("apns-topic", ""),
        title=title,
        subtitle=subtitle,
        body=body,
        badge=_badge(aps.get("badge")),
        sound=_sound(aps.get("sound")),
        image=image,
        category=_text(aps.get("category")),
        **_data({key: value for key, value in payload.items() if key != "aps"}),
    )


def _data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"data": dict(data), "notification_id": _text(data.get(NOTIFICATION_ID_KEY)), "locale": _text(data.get(LOCALE_KEY))}


def _fcm(message: Mapping[str, Any], message_id: str) -> Display:
    notification = _dict(message.get("notification"))
    android = _dict(_dict(message.get("android")).get("notification"))
    aps = _dict(_dict(_dict(message.get("apns")).get("payload")).get("aps"))
    alert = _dict(aps.get("alert"))
    app = message_id.split("/")[1] if message_id.startswith("projects/") else ""
    return Display(
        app=app,
        title=_text(android.get("title")) or _text(notification.get("title")),
        subtitle=_text(alert.get("subtitle")),
        body=_text(android.get("body")) or _text(notification.get("body")),
        badge=_badge(aps.get("badge")),
        sound=_text(android.get("sound")) or _sound(aps.get("sound")),
        image=_text(android.get("image")) or _text(notification.get("image")),
        category=_text(android.get("click_action")) or _text(aps.get("category")),
        **_data(_dict(message.get("data"))),
    )
