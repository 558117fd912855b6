"""Principal: who a caller is, and which apps and actions it may touch."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable


class Action(enum.Enum):
    """What a call does to an app. `admin` grants every action on the principal's apps."""

    REGISTER = "register"
    """RegisterToken, RegisterTokens and UnregisterToken: the app's own device registry."""
    SEND = "send"
    """Send and CancelNotification."""
    READ = "read"
    """GetNotification, StreamReceipts (the app's live feed included), GetToken, ListTokens and ListNotifications."""
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
