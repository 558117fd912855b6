"""Who may do what: actions, app scopes and principals, and the form of an API key and its hash.

A leaf of the package tree: the config's models check scopes, actions and key
hashes where they are parsed, and the auth package builds principals from the
config, so this vocabulary imports nothing of pushsvc's (keeping config and
auth out of a cycle).

API keys are 32 random bytes shown once, kept only as a SHA-256 hash. A fast
hash is enough because the key is not a password: it carries 256 bits of
entropy, so a stolen hash cannot be brute-forced however quick each guess is,
and a slow KDF would only add latency to every call.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import secrets
from collections.abc import Iterable

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



class Action(enum.Enum):
    """What a call does to an app. `admin` grants every action on the principal's apps."""

    REGISTER = "register"
    """RegisterToken, RegisterTokens and UnregisterToken: the app's own device registry."""
    SEND = "send"
    READ = "read"
    """GetNotification and StreamReceipts, the app's live feed included."""
    PRUNE = "prune"
    ADMIN = "admin"


def parse_actions(names: Iterable[str], where: str = "actions") -> frozenset[Action]:
    """Actions from their names; raises ValueError naming the unknown one."""
    out = set()
    for name in names:
        try:
            out.add(Action(str(name).strip().lower()))
        except ValueError:
            known = ", ".join(a.value for a in Action)
            raise ValueError(f"{where}: unknown action {name!r} (known: {known})") from None
    return frozenset(out)


@dataclasses.dataclass(frozen=True, slots=True)
class AppScope:
    """App ids a principal may act on: exact names, and prefixes written `team-a-*`.

    `*` alone is every app. A pattern with `*` anywhere but at the end is refused
    at load time, so a typo cannot widen the scope.
    """

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, patterns: Iterable[str], where: str = "apps") -> AppScope:
        """Builds a scope from patterns; raises ValueError on an empty or malformed one."""
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"{where}: an app pattern must be a non-empty string, got {pattern!r}")
            if pattern.endswith("*"):
                stem = pattern[:-1]
                if "*" in stem:
                    raise ValueError(f"{where}: {pattern!r}: '*' is allowed only at the end")
                prefixes.append(stem)
            elif "*" in pattern:
                raise ValueError(f"{where}: {pattern!r}: '*' is allowed only at the end")
            else:
                exact.add(pattern)
        return cls(frozenset(exact), tuple(prefixes))

    def covers(self, app_id: str) -> bool:
        """Whether `app_id` is inside this scope."""
        return app_id in self.exact or any(app_id.startswith(p) for p in self.prefixes)


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `name` is for logs and never a secret."""

    name: str
    """`key:<name>`, `jwt:<iss>#<sub>` or `spiffe://...`."""
    apps: AppScope
    actions: frozenset[Action]

    def may(self, action: Action, app_id: str) -> bool:
        """Whether this principal may do `action` on `app_id`."""
        if action not in self.actions and Action.ADMIN not in self.actions:
            return False
        return self.apps.covers(app_id)


ANONYMOUS = Principal(name="anonymous", apps=AppScope(prefixes=("",)), actions=frozenset({Action.ADMIN}))
"""The principal of every call when auth is switched off (`serve --insecure-no-auth`)."""
