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
- Every other channel: its emulator handler's ``display`` (:mod:`.handlers`),
  given the recorded payload; it builds a :class:`Display` with the helpers
  here (:func:`text`, :func:`badge`, :func:`mapping`, :func:`shown_data`).

Beside what is shown, ``data`` is what the app receives: FCM's ``data``
object, an APNs payload's custom keys (every top-level key but ``aps``), or
what a handler's ``display`` reads as the app's data.
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
from collections.abc import Callable, Mapping
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


View = Callable[[Mapping[str, Any]], Display]
"""How a channel handler shows one recorded payload (``HandlerSpec.display``)."""


def display_of(
    platform: str,
    headers: Mapping[str, str],
    payload: Mapping[str, Any],
    message_id: str,
    views: Mapping[str, View] | None = None,
) -> Display:
    """Render one recorded request (an inbox entry's fields) as a phone would show it.

    ``views`` are the channel handlers' displays by platform; APNs and FCM
    are the emulator's built-in servers and read here.
    """
    if platform == "apns":
        return _apns(headers, payload)
    view = views.get(platform) if views else None
    if view is not None:
        return view(payload)
    return _fcm(payload, message_id)


def mapping(value: Any) -> Mapping[str, Any]:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def text(value: Any) -> str:
    """The value if it is a string, else ""."""
    return value if isinstance(value, str) else ""


def badge(value: Any) -> int | None:
    """The value if it is an integer (a boolean is not), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sound(value: Any) -> str:
    if isinstance(value, Mapping):
        return text(value.get("name"))
    return text(value)


def _apns(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Display:
    aps = mapping(payload.get("aps"))
    alert = aps.get("alert")
    title = subtitle = body = ""
    if isinstance(alert, str):
        body = alert
    elif isinstance(alert, Mapping):
        title = text(alert.get("title")) or text(alert.get("title-loc-key"))
        subtitle = text(alert.get("subtitle")) or text(alert.get("subtitle-loc-key"))
        body = text(alert.get("body")) or text(alert.get("loc-key"))
    image = (
        text(payload.get("image"))
        or text(payload.get("image_url"))
        or text(payload.get("image-url"))
        or text(mapping(payload.get("fcm_options")).get("image"))
    )
    return Display(
        app=headers.get("apns-topic", ""),
        title=title,
        subtitle=subtitle,
        body=body,
        badge=badge(aps.get("badge")),
        sound=_sound(aps.get("sound")),
        image=image,
        category=text(aps.get("category")),
        **shown_data({key: value for key, value in payload.items() if key != "aps"}),
    )


def shown_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Display` fields read from the app's data: ``data``, ``notification_id`` and ``locale``."""
    return {"data": dict(data), "notification_id": text(data.get(NOTIFICATION_ID_KEY)), "locale": text(data.get(LOCALE_KEY))}


def _fcm(message: Mapping[str, Any], message_id: str) -> Display:
    notification = mapping(message.get("notification"))
    android = mapping(mapping(message.get("android")).get("notification"))
    aps = mapping(mapping(mapping(message.get("apns")).get("payload")).get("aps"))
    alert = mapping(aps.get("alert"))
    app = message_id.split("/")[1] if message_id.startswith("projects/") else ""
    return Display(
        app=app,
        title=text(android.get("title")) or text(notification.get("title")),
        subtitle=text(alert.get("subtitle")),
        body=text(android.get("body")) or text(notification.get("body")),
        badge=badge(aps.get("badge")),
        sound=text(android.get("sound")) or _sound(aps.get("sound")),
        image=text(android.get("image")) or text(notification.get("image")),
        category=text(android.get("click_action")) or text(aps.get("category")),
        **shown_data(mapping(message.get("data"))),
    )
