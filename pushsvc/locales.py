"""Which localized variant of a message a device gets, from the device's BCP 47 locale.

The rule, in order:

1. the variant whose tag equals the device's locale (compared case-insensitively,
   with `_` read as `-`, so `pt_br` matches `pt-BR`);
2. the device's locale cut at its last subtag, again and again, down to the
   language: `zh-Hant-TW` tries `zh-Hant`, then `zh`; `pt-BR` tries `pt`;
3. the message's own content (no variant).

A more general device locale never takes a more specific variant: a device in
`pt` does not get `pt-BR`, since nothing says which region it prefers. An
empty locale, or one that is not a well-formed tag, gets the message's own
content. Variant tags are checked at Send time (`is_tag`).

Every push of a variant says which one it is: the data key `VARIANT_KEY`
(`pushsvc_locale`) holds the variant's tag as the message spelled it. It is
put in at Send time, before rendering, so every channel carries it where it
carries data (for example an APNs custom key or an FCM data entry) and it
counts toward the payload limit checked then. The message's own content (the
default, and every message without variants) carries no such key, so its
payload is what it was before variants existed; a caller may not set the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TAG = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
"""A BCP 47 tag's shape: a 2-8 letter language, then subtags of 1-8 letters or digits."""

VARIANT_KEY = "pushsvc_locale"
"""The data key naming the localized variant a push carries (absent on the message's own content)."""

MAX_TAG_CHARS = 35
"""Longer than any tag a registry lists (RFC 5646 asks implementations to take at least 35)."""


def canonical(tag: str) -> str | None:
    """The tag in the form variants are matched by (lower case, `-`), or None when it is not well formed."""
    if not tag or len(tag) > MAX_TAG_CHARS:
        return None
    tag = tag.replace("_", "-")
    if not _TAG.fullmatch(tag):
        return None
    return tag.lower()


def is_tag(tag: str) -> bool:
    """True when `tag` is a well-formed language tag (what Message.localized keys must be)."""
    return canonical(tag) is not None


class VariantChooser:
    """Chooses among a message's variant tags; remembers each locale's answer (fan-outs repeat a few locales)."""

    __slots__ = ("_chosen", "_tags")

    def __init__(self, tags: Iterable[str]) -> None:
        self._tags: dict[str, str] = {}
        for tag in tags:
            key = canonical(tag)
            if key is not None:
                self._tags.setdefault(key, tag)
        self._chosen: dict[str, str] = {}

    def choose(self, locale: str) -> str:
        """The variant tag (as the message spelled it) for a device in `locale`; "" for the message's own content."""
        chosen = self._chosen.get(locale)
        if chosen is None:
            chosen = self._chosen[locale] = self._match(locale)
        return chosen

    def _match(self, locale: str) -> str:
        key = canonical(locale)
        while key:
            tag = self._tags.get(key)
            if tag is not None:
                return tag
            key = key.rpartition("-")[0]
        return ""


__all__ = ["MAX_TAG_CHARS", "VARIANT_KEY", "VariantChooser", "canonical", "is_tag"]
