"""The tenant apps this replica serves and what each can send."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Protocol

from pushsvc import models
from pushsvc.providers.base import RenderedMessage


class Renderer(Protocol):
    """Renders a message once per notification for one platform of one app.

    A non-empty `notification_id` is rendered into the payload as the data key
    `NOTIFICATION_ID_KEY` (pushsvc.providers.rendering), so that a device, an app
    or the emulator's inbox can tell which notification a push belongs to.
    """

    def __call__(self, message: models.Message, *, notification_id: str = "") -> RenderedMessage: ...


@dataclasses.dataclass(frozen=True)
class AppProfile:
    """One app: which platforms it has credentials for, and how to render for each."""

    app_id: str
    renderers: Mapping[models.Platform, Renderer]
    token_checks: Mapping[models.Platform, Callable[[str], str]] = dataclasses.field(default_factory=dict)
    """The app's own token checks (Channel.app_token_check, such as an endpoint against an allow-list): why a token cannot be used, or ""."""
    default_max_per_second: int = 0
    """The rate a Send without its own `max_per_second` is held to; 0: unthrottled."""

    @property
    def platforms(self) -> frozenset[models.Platform]:
        """Platforms this app can send to."""
        return frozenset(self.renderers)
