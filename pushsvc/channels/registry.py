"""The registry: every channel pushsvc speaks, by platform.

Adding a channel is its package (settings model, credentials, renderer,
adapter, reasons, and the module path of its emulator handler), its Platform
value in push.proto (scripts/gen makes `models.Platform` from it), one line
here, and its docs; `scripts/channel_files.py` counts what else names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushsvc import models
from pushsvc.channels import apns, fcm
from pushsvc.channels.base import Channel
from pushsvc.channels.hms import channel as hms
from pushsvc.channels.webpush import channel as webpush
from pushsvc.providers.base import RenderedMessage

CHANNELS: tuple[Channel, ...] = (apns.CHANNEL, fcm.CHANNEL, webpush.CHANNEL, hms.CHANNEL)
"""Every channel, in the order messages list them."""

BY_PLATFORM: Mapping[models.Platform, Channel] = {c.platform: c for c in CHANNELS}
"""The channel of each real platform."""

_NAMES = [f"PLATFORM_{c.platform.name}" for c in CHANNELS]
PLATFORM_NAMES = f"{', '.join(_NAMES[:-1])} or {_NAMES[-1]}" if len(_NAMES) > 1 else _NAMES[0]
"""How a field violation names the accepted platforms ("PLATFORM_APNS or PLATFORM_FCM")."""


def restore_rendering(platform: models.Platform, body: Mapping[str, Any]) -> RenderedMessage:
    """The rendered message whose body Send stored for `platform`, sizes included."""
    return BY_PLATFORM[platform].restore_rendering(body)


def channel(platform: models.Platform) -> Channel:
    """The channel of a real platform; KeyError for UNSPECIFIED."""
    return BY_PLATFORM[platform]
