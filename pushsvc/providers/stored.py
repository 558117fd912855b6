"""A stored rendering made whole again: the body persisted with a notification, with its real size and limit.

Send renders each platform's message once and persists only its body, so any
replica can send it without re-rendering. A partition restores the
`RenderedMessage` from that body once, through the renderer's own
`rendered_from_body`, so what crosses to the providers is the message as it was
rendered, sizes included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pushsvc import models
from pushsvc.providers import apns, fcm
from pushsvc.providers.base import RenderedMessage

_RESTORERS: Mapping[models.Platform, Callable[[Mapping[str, Any]], RenderedMessage]] = {
    models.Platform.APNS: apns.rendered_from_body,
    models.Platform.FCM: fcm.rendered_from_body,
}


def stored_rendering(platform: models.Platform, body: Mapping[str, Any]) -> RenderedMessage:
    """The rendered message whose body Send stored for `platform`."""
    return _RESTORERS[platform](body)
