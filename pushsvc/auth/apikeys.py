"""API keys: 32 random bytes shown once, kept only as a SHA-256 hash.

A fast hash is enough here because the key is not a password: it carries 256
bits of entropy, so a stolen hash cannot be brute-forced however quick each
guess is, and a slow KDF would only add latency to every call. Lookup is by
the hash, and the stored hash is compared again with `hmac.compare_digest`,
so timing reveals nothing about the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable

from pushsvc.auth.principal import Principal

KEY_PREFIX = "psk_"
"""Marks a pushsvc API key, so that secret scanners and humans recognise one."""
HASH_PREFIX = "sha256:"


def new_key() -> str:
    """A fresh API key: the prefix and 32 random bytes, base64url."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The form kept in config: `sha256:<hex>`."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def parse_hash(value: str, where: str = "hash") -> str:
    """Validates a configured `sha256:<64 hex>` hash; returns it normalised."""
    value = value.strip().lower()
    digest = value.removeprefix(HASH_PREFIX)
    if not value.startswith(HASH_PREFIX) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{where}: expected 'sha256:' and 64 hex digits (from `pushsvc keys create`)")
    return value


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
