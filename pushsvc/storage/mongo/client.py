"""From a store URL to a pymongo (or mongomock) database, and what kind of server it is."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pymongo
from pymongo.collection import Collection
from pymongo.database import Database

EMBEDDED_SCHEMES = ("mongomock",)
SERVER_SCHEMES = ("mongodb", "mongodb+srv")


@dataclasses.dataclass
class Connection:
    """A lazily connected client and its database; `collection()` is how repositories get theirs."""

    client: Any
    db: Database[Any]
    embedded: bool
    """True for mongomock: one call at a time, no buildInfo, every filter a scan."""

    def collection(self, name: str) -> Collection[Any]:
        """The named collection; on the embedded backend, one whose `_id` lookups are key lookups."""
        if self.embedded:
            from pushsvc.storage.mongo.embedded import keyed_collection

            return keyed_collection(self.db, name)  # type: ignore[return-value]
        return self.db[name]

    def close(self) -> None:
        """Closes the client."""
        self.client.close()


def connect(
    url: str, *, timeout_ms: int, database: str | None = None, event_listeners: Sequence[Any] = ()
) -> Connection:
    """Builds the client for `url` (mongodb://, mongodb+srv:// or mongomock://); sends nothing yet.

    `event_listeners` are pymongo monitoring listeners (servers only; the
    index-coverage test records every command with one).
    """
    parts = urlsplit(url)
    db_name = database or parts.path.strip("/") or "pushsvc"
    if parts.scheme in EMBEDDED_SCHEMES:
        import mongomock  # only the embedded backend needs it

        client: Any = mongomock.MongoClient(tz_aware=True)
        return Connection(client=client, db=client[db_name], embedded=True)
    if parts.scheme in SERVER_SCHEMES:
        client = pymongo.MongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 5, 10000),
            retryWrites=True,
            event_listeners=list(event_listeners),
        )
        return Connection(client=client, db=client[db_name], embedded=False)
    raise ValueError(f"unsupported store URL scheme {parts.scheme!r}")


@dataclasses.dataclass(frozen=True)
class ServerTraits:
    """What the server behind a connection can and cannot do (see tests/storage/README.md)."""

    atomic_updates: bool = True
    """False for FerretDB 1.x: racing findAndModify calls all win, concurrent $inc lose updates."""
    ttl_indexes: bool = True


def sniff(conn: Connection) -> ServerTraits:
    """Asks the server what it is (blocking: run it on the store's executor)."""
    if conn.embedded:
        # mongomock emulates TTL by scanning the whole collection on every
        # operation, which makes receipt writes quadratic; the sweep is cheaper.
        return ServerTraits(atomic_updates=True, ttl_indexes=False)
    info = conn.client.admin.command("buildInfo")
    if "ferretdbVersion" in info:
        return ServerTraits(atomic_updates=False, ttl_indexes=False)
    return ServerTraits()
