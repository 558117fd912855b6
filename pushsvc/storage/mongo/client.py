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
        try:
            import mongomock  # only the embedded backend needs it, and only the `emulator` extra installs it
        except ModuleNotFoundError:
            raise ValueError(f"{parts.scheme}:// needs mongomock: pip install 'pushsvc[emulator]'") from None

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
    indexed_queries: bool = True
    """False for FerretDB 1.24: only a filter on one string `_id` is index-served; any other filter scans the
    collection and any sort is done in memory over every match (`Query`, internal/backends/sqlite/collection.go)."""
    indexed_updates: bool = True
    """False for FerretDB 1.24: an update (or delete) by `_id` costs in proportion to the collection, an insert
    does not. Measured 2026-12-06 with pymongo on 127.0.0.1, 20 ops each: update_one by `_id` 0.9 ms at 100
    documents, 2.3 ms at 1,000, 7.2 ms at 3,000; insert_one 0.5 to 0.9 ms and find_one by `_id` 0.4 to 0.6 ms
    at every size; a find by `_id` `$in` of 25 keys 4.5 ms at 100 documents and 78 ms at 3,000 (a scan)."""
    updates_per_command: int = 100
    """Most update statements one `update` command may carry (an ordered bulk_write of upserts is one command).

    FerretDB 1.24 (SQLite) runs each statement of an `update` command as a
    query whose cursor, once it matched a document, stays open until the
    whole command ends (`defer closer.Close()` inside the loop of
    `updateDocument`, internal/handler/msg_update.go), and each open cursor
    holds one connection of the database's SQLite pool, which allows 100
    (`SetMaxOpenConns(100)`, internal/backends/sqlite/metadata/pool/opendb.go).
    A command whose statements match 100 existing documents waits for a
    connection only it could free: it never answers, and the database's
    pool stays exhausted for good. The pool is shared by every client of
    that database, so concurrent commands add up. Measured on 127.0.0.1
    with pymongo 2026-12-06: one bulk_write of 99 upserts to existing `_id`s
    0.084 s, of 100 hung (socket timeout); 100, 200 and 1,000 upserts of new
    `_id`s 0.05 s, 0.12 s, 1.0 s (a cursor that matched nothing is closed);
    two concurrent bulk_writes of 60 hung, 2 x 50, 3 x 30 and 4 x 25 took
    0.07 to 0.19 s. Calls to FerretDB are serialised within a process, so 25
    leaves room for four replicas sharing one database.
    """


FERRETDB_UPDATES_PER_COMMAND = 25
"""See `ServerTraits.updates_per_command`."""


def sniff(conn: Connection) -> ServerTraits:
    """Asks the server what it is (blocking: run it on the store's executor)."""
    if conn.embedded:
        # mongomock emulates TTL by scanning the whole collection on every
        # operation, which makes receipt writes quadratic; the sweep is cheaper.
        return ServerTraits(atomic_updates=True, ttl_indexes=False)
    info = conn.client.admin.command("buildInfo")
    if "ferretdbVersion" in info:
        return ServerTraits(
            atomic_updates=False,
            ttl_indexes=False,
            indexed_queries=False,
            indexed_updates=False,
            updates_per_command=FERRETDB_UPDATES_PER_COMMAND,
        )
    return ServerTraits()
