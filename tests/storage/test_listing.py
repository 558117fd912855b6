"""Contract: `TokenStore.list` and `NotificationStore.list`, filtered and paginated, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import BadCursor, Stores
from tests.storage.conftest import draft, plans

APNS, FCM = models.Platform.APNS, models.Platform.FCM
QUEUED, COMPLETED = models.NotificationState.QUEUED, models.NotificationState.COMPLETED


def reg(token: str, platform: models.Platform = FCM, app: str = "app", **kw: object) -> models.TokenRegistration:
    return models.TokenRegistration(app_id=app, token=token, platform=platform, **kw)  # type: ignore[arg-type]


async def _all_tokens(stores: Stores, where: models.TokenFilter, limit: int) -> list[tuple[str, str]]:
    """Every page of a listing, checking that no page is longer than asked."""
    out: list[tuple[str, str]] = []
    after = None
    for _ in range(1000):
        page = await stores.tokens.list(where, after, limit)
        assert len(page.items) <= limit
        out += [(t.platform.value, t.token) for t in page.items]
        if page.after is None:
            return out
        assert len(page.items) == limit
        after = page.after
    raise AssertionError("the listing never ended")


@pytest.fixture
async def registry(stores: Stores, clock: ManualClock) -> dict[str, set[tuple[str, str]]]:
    """30 tokens of "app" over both platforms, users, topics and three last-seen days; 3 of another app."""
    expected: dict[str, set[tuple[str, str]]] = {"all": set(), "u1": set(), "news": set(), "apns": set(), "old": set()}
    start = clock.now()
    for day in range(3):
        for i in range(10):
            n = day * 10 + i
            platform = APNS if n % 3 == 0 else FCM
            token = f"{n:064x}" if platform is APNS else f"fcm-token-{n}"
            user = "u1" if n % 4 == 0 else f"user-{n}"
            topics = ("news",) if n % 5 == 0 else ("sport",)
            await stores.tokens.upsert(reg(token, platform, user_id=user, topics=topics), clock.now())
            key = (platform.value, token)
            expected["all"].add(key)
            if user == "u1":
                expected["u1"].add(key)
            if "news" in topics:
                expected["news"].add(key)
            if platform is APNS:
                expected["apns"].add(key)
            if day == 0:
                expected["old"].add(key)
        clock.advance(86400)
    for i in range(3):
        await stores.tokens.upsert(reg(f"other-{i}", app="other", user_id="u1", topics=("news",)), start)
    return expected


async def test_token_listing_pages_through_every_token_once_in_a_stable_order(
    stores: Stores, registry: dict[str, set[tuple[str, str]]]
) -> None:
    where = models.TokenFilter(app_id="app")
    for limit in (1, 7, 30, 1000):
        listed = await _all_tokens(stores, where, limit)
        assert len(listed) == len(set(listed)) == 30 and set(listed) == registry["all"]
        assert listed == await _all_tokens(stores, where, 4)
    assert await _all_tokens(stores, models.TokenFilter(app_id="nobody"), 5) == []


async def test_token_listing_filters_by_user_topic_platform_and_last_seen(
    stores: Stores, clock: ManualClock, registry: dict[str, set[tuple[str, str]]]
) -> None:
    now = clock.now()  # three days after the first registrations
    cases = {
        "u1": models.TokenFilter(app_id="app", user_id="u1"),
        "news": models.TokenFilter(app_id="app", topic="news"),
        "apns": models.TokenFilter(app_id="app", platform=APNS),
        "old": models.TokenFilter(app_id="app", last_seen_before=now - timedelta(days=2, hours=12)),
    }
    for name, where in cases.items():
        assert set(await _all_tokens(stores, where, 3)) == registry[name], name
    recent = models.TokenFilter(app_id="app", last_seen_after=now - timedelta(days=2, hours=12))
    assert set(await _all_tokens(stores, recent, 4)) == registry["all"] - registry["old"]
    both = models.TokenFilter(app_id="app", user_id="u1", topic="news", platform=APNS)
    assert set(await _all_tokens(stores, both, 2)) == registry["u1"] & registry["news"] & registry["apns"]
    window = models.TokenFilter(
        app_id="app", last_seen_after=now - timedelta(days=2, hours=12), last_seen_before=now - timedelta(days=1, hours=12)
    )
    day_two = await _all_tokens(stores, window, 100)
    assert len(day_two) == 10 and not set(day_two) & registry["old"]


async def test_a_listed_token_carries_its_registration(stores: Stores, clock: ManualClock) -> None:
    await stores.tokens.upsert(reg("fcm-a", user_id="u", topics=("t1", "t2"), locale="pt-BR", timezone="America/Sao_Paulo",
                                   app_version="2.1", device_id="d1"), clock.now())
    page = await stores.tokens.list(models.TokenFilter(app_id="app", user_id="u"), None, 10)
    assert page.after is None and len(page.items) == 1
    t = page.items[0]
    assert (t.token, t.platform, t.user_id, set(t.topics), t.locale, t.timezone, t.app_version, t.device_id) == (
        "fcm-a", FCM, "u", {"t1", "t2"}, "pt-BR", "America/Sao_Paulo", "2.1", "d1"
    )
    assert t.last_seen_at == clock.now() and t == await stores.tokens.get("app", FCM, "fcm-a")


async def test_a_page_resumes_after_its_last_token_even_when_that_token_is_gone(stores: Stores, clock: ManualClock) -> None:
    for i in range(6):
        await stores.tokens.upsert(reg(f"fcm-{i}"), clock.now())
    where = models.TokenFilter(app_id="app")
    first = await stores.tokens.list(where, None, 3)
    assert first.after is not None
    last = first.items[-1]
    await stores.tokens.delete("app", last.platform, last.token)
    rest = await stores.tokens.list(where, first.after, 10)
    assert rest.after is None
    assert {t.token for t in first.items} | {t.token for t in rest.items} == {f"fcm-{i}" for i in range(6)}
    assert not {t.token for t in first.items} & {t.token for t in rest.items}


async def test_a_token_position_of_the_wrong_shape_is_refused(stores: Stores) -> None:
    where = models.TokenFilter(app_id="app")
    for after in (("fcm",), ("nope", "tok"), ("fcm", "tok", "extra")):
        with pytest.raises(BadCursor):
            await stores.tokens.list(where, after, 10)


async def test_notification_listing_is_newest_first_filtered_and_paginated(stores: Stores, clock: ManualClock) -> None:
    start = clock.now()
    ids = []
    for i in range(12):
        nid = f"n{i:02d}"
        # Two notifications share each creation time: the id breaks the tie.
        await stores.notifications.create(draft(nid, clock.now(), targeted=0 if i % 3 == 0 else 5), [] if i % 3 == 0 else plans(1))
        ids.append(nid)
        if i % 2:
            clock.advance(60)
    await stores.notifications.create(draft("elsewhere", start, app_id="other"), plans(1))
    newest_first = [nid for _, nid in sorted(((i // 2, nid) for i, nid in enumerate(ids)), reverse=True)]

    async def listed(where: models.NotificationFilter, limit: int) -> list[str]:
        out: list[str] = []
        after = None
        while True:
            page = await stores.notifications.list(where, after, limit)
            assert len(page.items) <= limit
            out += [v.notification_id for v in page.items]
            if page.after is None:
                return out
            after = page.after

    everything = models.NotificationFilter(app_id="app")
    for limit in (1, 5, 12, 100):
        assert await listed(everything, limit) == newest_first
    completed = await listed(models.NotificationFilter(app_id="app", state=COMPLETED), 2)
    assert completed == [nid for nid in newest_first if int(nid[1:]) % 3 == 0]
    queued = await listed(models.NotificationFilter(app_id="app", state=QUEUED), 3)
    assert queued == [nid for nid in newest_first if int(nid[1:]) % 3]
    window = models.NotificationFilter(
        app_id="app", created_after=start + timedelta(minutes=2), created_before=start + timedelta(minutes=4)
    )
    assert await listed(window, 3) == ["n07", "n06", "n05", "n04"]
    assert await listed(models.NotificationFilter(app_id="nobody"), 3) == []
    page = await stores.notifications.list(everything, None, 1)
    v = page.items[0]
    assert v.notification_id == "n11" and v.targeted == 5 and v.created_at == start + timedelta(minutes=5)


async def test_a_notification_position_of_the_wrong_shape_is_refused(stores: Stores) -> None:
    where = models.NotificationFilter(app_id="app")
    bad = (("n1",), ("not a time", "n1"), ("2026-01-01T00:00:00", "n1"),
           ("0001-01-01T00:00:00+01:00", "n1"), ("9999-12-31T23:59:59-14:00", "n1"))  # past the range once in UTC
    for after in bad:
        with pytest.raises(BadCursor):
            await stores.notifications.list(where, after, 10)
