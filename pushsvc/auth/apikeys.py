"""API keys: the configured ring of key hashes and the principals they authenticate.

The key's form and hash live in `pushsvc.access`. Lookup is by the hash, and
the stored hash is compared again with `hmac.compare_digest`, so timing
reveals nothing about the key.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Iterable

from pushsvc.access import Principal, hash_key


def config_snippet(name: str, key_hash: str, apps: Iterable[str], actions: Iterable[str]) -> str:
    """The `[[auth.api_keys]]` table that configures one key (JSON strings are valid TOML basic strings)."""
    return "\n".join(
        [
            "[[auth.api_keys]]",
            f"name = {json.dumps(name)}",
            f'hash = "{key_hash}"',
            f"apps = {json.dumps(list(apps))}",
            f"actions = {json.dumps(list(actions))}",
        ]
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    """One configured key: its hash and the principal it authenticates."""

    key_hash: str
    principal: Principal


class ApiKeyRing:
    """Finds the principal of a presented key."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_hash: dict[str, ApiKey] = {}
        for key in keys:
            if key.key_hash in self._by_hash:
                raise ValueError(f"api key {key.principal.name!r}: the same key hash is configured twice")
            self._by_hash[key.key_hash] = key

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, presented: str) -> Principal | None:
        """The key's principal, or None when no configured key matches."""
        digest = hash_key(presented)
        found = self._by_hash.get(digest)
        if found is None or not hmac.compare_digest(found.key_hash, digest):
            return None
        return found.principal
