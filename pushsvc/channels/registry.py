"""The registry: every channel pushsvc speaks, by platform.

Adding a channel is its package, its Platform value (proto and models), and
one line here.
"""

from __future__ import annotations

from collections.abc import Mapping

from pushsvc import models
from pushsvc.channels import apns, fcm
from pushsvc.channels.base import Channel
from pushsvc.channels.hms import channel as hms
from pushsvc.channels.webpush import channel as webpush

CHANNELS: tuple[Channel, ...] = (apns.CHANNEL, fcm.CHANNEL, webpush.CHANNEL, hms.CHANNEL)
"""Every channel, in the order messages list them."""

BY_PLATFORM: Mapping[models.Platform, Channel] = {c.platform: c for c in CHANNELS}
"""The channel of each real platform."""

_NAMES = [f"PLATFORM_{c.platform.name}" for c in CHANNELS]
PLATFORM_NAMES = f"{', '.join(_NAMES[:-1])} or {_NAMES[-1]}" if len(_NAMES) > 1 else _NAMES[0]
"""How a field violation names the accepted platforms ("PLATFORM_APNS or PLATFORM_FCM")."""


def channel(platform: models.Platform) -> Channel:
    """The channel of a real platform; KeyError for UNSPECIFIED."""
    return BY_PLATFORM[platform]
