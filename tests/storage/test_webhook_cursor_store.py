"""Contract: the webhook delivery cursors (WebhookCursorStore), on every backend."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from pushsvc.clock import ManualClock
from pushsvc.storage import Stores, WebhookCursor

LEASE_S = 30.0


async def test_a_new_cursor_starts_where_it_is_told_and_keeps_its_place(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    w = stores.webhooks
    assert await w.lease("app", "https://a.example/hook", "r1", 7, now, LEASE_S) == WebhookCursor(seq=7)
    # A second lease by the same owner renews; the start seq of a cursor that exists is ignored.
    assert await w.lease("app", "https://a.example/hook", "r1", 99, now, LEASE_S) == WebhookCursor(seq=7)
    # Cursors are per (app, endpoint).
    assert await w.lease("app", "https://b.example/hook", "r1", 0, now, LEASE_S) == WebhookCursor(seq=0)
    assert await w.lease("other", "https://a.example/hook", "r1", 3, now, LEASE_S) == WebhookCursor(seq=3)


async def test_save_writes_every_field_and_the_seq_never_goes_back(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    w = stores.webhooks
    await w.lease("app", "e", "r1", 0, now, LEASE_S)
    failing = WebhookCursor(
        seq=10, batch_end=25, failures=3, failing_since=now - timedelta(seconds=40), retry_at=now + timedelta(seconds=8)
    )
    assert await w.save("app", "e", "r1", failing, now, LEASE_S)
    assert await w.lease("app", "e", "r1", 0, now, LEASE_S) == failing
    assert await w.save("app", "e", "r1", WebhookCursor(seq=25), now, LEASE_S)
    assert await w.lease("app", "e", "r1", 0, now, LEASE_S) == WebhookCursor(seq=25)
    # An older seq (a stale writer's) is not written back; the other fields are.
    assert await w.save("app", "e", "r1", WebhookCursor(seq=12, batch_end=30), now, LEASE_S)
    assert await w.lease("app", "e", "r1", 0, now, LEASE_S) == WebhookCursor(seq=25, batch_end=30)


async def test_one_owner_at_a_time_until_the_lease_expires(stores: Stores, clock: ManualClock) -> None:
    w = stores.webhooks
    assert await w.lease("app", "e", "r1", 0, clock.now(), LEASE_S) is not None
    assert await w.lease("app", "e", "r2", 0, clock.now(), LEASE_S) is None
    assert not await w.save("app", "e", "r2", WebhookCursor(seq=5), clock.now(), LEASE_S)
    clock.advance(LEASE_S / 2)
    assert await w.save("app", "e", "r1", WebhookCursor(seq=4), clock.now(), LEASE_S)  # renews
    clock.advance(LEASE_S * 0.9)
    assert await w.lease("app", "e", "r2", 0, clock.now(), LEASE_S) is None, "save renewed r1's lease"
    clock.advance(LEASE_S * 0.2)
    taken = await w.lease("app", "e", "r2", 0, clock.now(), LEASE_S)
    assert taken == WebhookCursor(seq=4), "an expired lease passes to another owner with the cursor"
    # The old owner has lost it: its writes change nothing.
    assert not await w.save("app", "e", "r1", WebhookCursor(seq=9), clock.now(), LEASE_S)
    assert await w.lease("app", "e", "r1", 0, clock.now(), LEASE_S) is None
    assert await w.lease("app", "e", "r2", 0, clock.now(), LEASE_S) == WebhookCursor(seq=4)


async def test_release_frees_the_lease_at_once_and_keeps_the_cursor(stores: Stores, clock: ManualClock) -> None:
    w = stores.webhooks
    await w.lease("app", "e", "r1", 0, clock.now(), LEASE_S)
    saved = WebhookCursor(seq=6, batch_end=9)
    assert await w.save("app", "e", "r1", saved, clock.now(), LEASE_S)
    await w.release("app", "e", "r2")  # not the holder: nothing happens
    assert await w.lease("app", "e", "r2", 0, clock.now(), LEASE_S) is None
    await w.release("app", "e", "r1")
    assert not await w.save("app", "e", "r1", dataclasses.replace(saved, seq=8), clock.now(), LEASE_S)
    assert await w.lease("app", "e", "r2", 0, clock.now(), LEASE_S) == saved
