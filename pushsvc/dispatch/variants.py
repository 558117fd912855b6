"""A notification's rendered messages by language: the default, and a variant per locale tag (Message.localized).

Send renders every variant once per platform and stores the bodies; a
partition restores them once (each channel measures its own sizes again), and
each target gets the variant its locale chooses (`pushsvc.locales`). Targets
of one variant share one rendered object, so the providers' per-message caches
(keyed by the body's identity) serve a variant as they serve the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pushsvc import models
from pushsvc.locales import VariantChooser
from pushsvc.providers.base import RenderedMessage
from pushsvc.storage import TargetToken


class Variants:
    """The platform → rendered message mapping each target gets."""

    __slots__ = ("_by_tag", "_chooser", "_default")

    def __init__(
        self,
        default: Mapping[models.Platform, RenderedMessage],
        localized: Mapping[str, Mapping[models.Platform, Mapping[str, Any]]],
        restore: Callable[[models.Platform, Mapping[str, Any]], RenderedMessage],
    ) -> None:
        self._default = default
        self._by_tag = {tag: {p: restore(p, body) for p, body in bodies.items()} for tag, bodies in localized.items()}
        self._chooser = VariantChooser(self._by_tag) if self._by_tag else None

    def of(self, target: TargetToken) -> Mapping[models.Platform, RenderedMessage]:
        """The rendered messages for this target's language: its variant's, or the default."""
        if self._chooser is None or not target.locale:
            return self._default
        tag = self._chooser.choose(target.locale)
        return self._by_tag[tag] if tag else self._default
