"""The embedded (mongomock) backend's collections: `_id` lookups become key lookups.

mongomock evaluates every filter by copying and scanning the whole collection
(`reference/tooling.md` §8.5), so an `_id` lookup costs as much as a full scan
and RegisterToken slows down as the registry grows. This pushsvc-owned
subclass narrows the documents a filter is applied to when the filter pins
`_id` to one value or a list (`$in`), and, for an `_id` range (a fan-out
partition), tests each document's `_id` with a string comparison before
mongomock's filter; when the `_id` is the whole filter, that test decides it
and mongomock's filter is not run again, and an ascending `_id` order over such a range
is a plain string sort. Everything else, including any other
filter, is mongomock's. Nothing in mongomock is patched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import mongomock
from mongomock.filtering import filter_applies


class KeyedCollection(mongomock.Collection):  # type: ignore[misc]
    """A mongomock collection whose `_id`-pinned filters read only the pinned documents."""

    def _get_dataset(self, spec: Any, sort: Any, fields: Any, as_class: Any) -> Iterator[Mapping[str, Any]]:
        if _id_range(spec) is None or not _by_id(sort):
            return super()._get_dataset(spec, sort, fields, as_class)  # type: ignore[misc,no-any-return]
        # An `_id` range in `_id` order (a fan-out partition's scan): the range
        # admits string `_id`s only, whose BSON order is Python's (UTF-8 byte
        # order is code point order), so a plain sort replaces mongomock's,
        # which wraps every key in a BSON comparator (a third of the scan).
        docs = sorted(self._iter_documents(spec), key=_id_of)
        return (self._copy_only_fields(doc, fields, as_class) for doc in docs)

    def _iter_documents(self, filter: Any) -> Iterator[Mapping[str, Any]]:  # noqa: A002 - mongomock's name
        store: Any = self._store
        ids = _pinned_ids(filter)
        if ids is not None:
            docs = [store[i] for i in ids if i in store]
        else:
            within = _id_range(filter)
            if within is None:
                return super()._iter_documents(filter)  # type: ignore[misc,no-any-return]
            docs = [doc for doc in store.documents if within(doc["_id"])]
        if len(filter) == 1:
            # The filter is the `_id` pin or range alone, which the key lookup or
            # `within` has decided exactly: mongomock's generic evaluation of it
            # (BSON comparisons per document) would only repeat it. A fan-out
            # partition's scan is such a filter.
            return iter(docs)
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


_BOUNDS = {"$gt", "$gte", "$lt", "$lte"}


def _id_range(filter: Any) -> Callable[[Any], bool] | None:  # noqa: A002
    pin = filter.get("_id") if isinstance(filter, Mapping) else None
    if not isinstance(pin, Mapping) or not pin or not set(pin) <= _BOUNDS or not all(isinstance(v, str) for v in pin.values()):
        return None
    gt, gte, lt, lte = pin.get("$gt"), pin.get("$gte"), pin.get("$lt"), pin.get("$lte")

    def within(i: Any) -> bool:
        return (
            isinstance(i, str)
            and (gt is None or i > gt)
            and (gte is None or i >= gte)
            and (lt is None or i < lt)
            and (lte is None or i <= lte)
        )

    return within


def _by_id(sort: Any) -> bool:
    """True for an ascending sort on `_id` alone, as pymongo hands it over (a list of one (key, direction) pair)."""
    return isinstance(sort, list) and len(sort) == 1 and tuple(sort[0]) == ("_id", 1)


def _id_of(doc: Mapping[str, Any]) -> Any:
    return doc["_id"]


def keyed_collection(db: mongomock.Database, name: str) -> KeyedCollection:
    """The collection `name` of a mongomock database, with keyed `_id` lookups."""
    return KeyedCollection(db, name, db._store)  # type: ignore[arg-type]  # noqa: SLF001 - the database's own store, as mongomock passes it
