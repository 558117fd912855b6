"""The embedded (mongomock) backend's collections: `_id` lookups become key lookups.

mongomock evaluates every filter by copying and scanning the whole collection
(`reference/tooling.md` §8.5), so an `_id` lookup costs as much as a full scan
and RegisterToken slows down as the registry grows. This pushsvc-owned
subclass narrows the documents a filter is applied to when the filter pins
`_id` to one value or a list (`$in`); everything else, including the filter
itself, is mongomock's. Nothing in mongomock is patched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import mongomock
from mongomock.filtering import filter_applies


class KeyedCollection(mongomock.Collection):  # type: ignore[misc]
    """A mongomock collection whose `_id`-pinned filters read only the pinned documents."""

    def _iter_documents(self, filter: Any) -> Iterator[Mapping[str, Any]]:  # noqa: A002 - mongomock's name
        ids = _pinned_ids(filter)
        if ids is None:
            return super()._iter_documents(filter)  # type: ignore[misc,no-any-return]
        store: Any = self._store
        docs = [store[i] for i in ids if i in store]
        return (doc for doc in docs if filter_applies(filter, doc))


def _pinned_ids(filter: Any) -> list[Any] | None:  # noqa: A002
    if not isinstance(filter, Mapping) or "_id" not in filter:
        return None
    pin = filter["_id"]
    if isinstance(pin, str):
        return [pin]
    if isinstance(pin, Mapping) and set(pin) == {"$in"} and all(isinstance(i, str) for i in pin["$in"]):
        return list(dict.fromkeys(pin["$in"]))
    return None


def keyed_collection(db: mongomock.Database, name: str) -> KeyedCollection:
    """The collection `name` of a mongomock database, with keyed `_id` lookups."""
    return KeyedCollection(db, name, db._store)  # type: ignore[arg-type]  # noqa: SLF001 - the database's own store, as mongomock passes it
