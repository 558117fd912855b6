"""The storage contract suite runs against every backend through `stores`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pushsvc.storage import MongoStores, open_stores


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[MongoStores]:
    """Fresh stores with indexes, on each backend."""
    s = open_stores(store_url)
    await s.ensure_indexes()
    try:
        yield s
    finally:
        s.close()
