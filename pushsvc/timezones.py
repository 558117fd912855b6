"""IANA time zones by name: which names this server knows, and their rules (the `zoneinfo` database).

A token's `timezone` is checked against this database at registration, and a
local-time Send resolves each stored name through it. A name is known when
`zoneinfo.ZoneInfo` can load it: the system's tz database, or the `tzdata`
package where the system has none.
"""

from __future__ import annotations

import functools
import zoneinfo

UTC_NAME = "UTC"
"""The zone of a local-time send whose fallback zone is empty."""


@functools.lru_cache(maxsize=1024)
def zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone called `name`, or None when the database has no such zone (or the name is not one at all).

    Memoized: the answer for a name never changes while the process runs (the
    database is read once per zone), and a bulk import asks about the same
    few dozen names a million times. The memo is bounded, so names made up by
    callers cannot grow it.
    """
    if not name or len(name) > 255 or not name.isprintable():
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    # Not found, or not a key at all: ZoneInfo rejects absolute and relative
    # paths with ValueError, and a directory of the database (such as
    # "America") can surface as an OSError on some platforms.
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def known(name: str) -> bool:
    """True when `name` is an IANA zone this server can use."""
    return zone(name) is not None
