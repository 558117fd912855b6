"""The MongoDB adapter's declared indexes exist on every Mongo backend."""

from __future__ import annotations

import pytest

from pushsvc.storage import Stores


async def test_indexes_of_design_exist(stores: Stores) -> None:
    from pushsvc.storage.mongo import MongoStores, schema

    if not isinstance(stores, MongoStores):
        pytest.skip("not the MongoDB adapter")
    db = stores.connection.db
    for collection in {i.collection for i in schema.INDEXES}:
        info = await stores.runner(db[collection].index_information)
        keys = {tuple(k for k, _ in v["key"]) for v in info.values()}
        for index in schema.INDEXES:
            if index.collection == collection:
                assert index.keys in keys, (collection, index)
    tokens = await stores.runner(db[schema.TOKENS].index_information)
    keys = {tuple(k for k, _ in v["key"]) for v in tokens.values()}
    # (app_id, platform, token) uniqueness is the _id itself: see the
    # concurrent-registration and insert_new tests for the behaviour.
    for wanted in [("app_id", "user_id"), ("app_id", "topics"), ("app_id", "last_seen_at"), ("app_id", "device_id")]:
        assert wanted in keys
