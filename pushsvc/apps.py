"""The tenant apps this replica serves and what each can send."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from pushsvc import models
from pushsvc.providers.base import RenderedMessage

Renderer = Callable[[models.Message], RenderedMessage]
"""Renders a message once per notification for one platform of one app."""


@dataclasses.dataclass(frozen=True)
class AppProfile:
    """One app: which platforms it has credentials for, and how to render for each."""

    app_id: str
    renderers: Mapping[models.Platform, Renderer]
    token_checks: Mapping[models.Platform, Callable[[str], str]] = dataclasses.field(default_factory=dict)
    """The app's own token checks (a Web Push endpoint against its allow-list): why a token cannot be used, or ""."""

    @property
    def platforms(self) -> frozenset[models.Platform]:
        """Platforms this app can send to."""
        return frozenset(self.renderers)
