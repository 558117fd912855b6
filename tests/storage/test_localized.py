"""Contract: localized variants are stored with their notification, and targets carry their locale, on every backend."""

from __future__ import annotations

import dataclasses

from pushsvc import models
from pushsvc.clock import ManualClock
from pushsvc.storage import Stores, TargetQuery
from tests.storage.conftest import draft, plans

APNS, FCM = models.Platform.APNS, models.Platform.FCM


async def test_variants_round_trip_key_order_and_all(stores: Stores, clock: ManualClock) -> None:
    body = {"headers": {"apns-push-type": "alert"}, "payload": '{"aps":{"alert":{"title":"Olá"}}}'}
    localized = {
        "pt-BR": {APNS: body, FCM: {"notification": {"title": "Olá", "body": "ü"}, "z": 1, "a": [1, 2]}},
        "zh-Hant": {FCM: {"notification": {"title": "你好"}}},
    }
    d = dataclasses.replace(draft("n1", clock.now(), rendered={FCM: {"notification": {"title": "Hi"}}}), localized=localized)
    await stores.notifications.create(d, plans(1))
    record = await stores.notifications.get("app", "n1")
    assert record is not None and record.localized == localized
    assert list(record.localized["pt-BR"][FCM]) == ["notification", "z", "a"]  # key order kept, as for `rendered`
    plain = await stores.notifications.create(draft("n2", clock.now()), plans(1))
    assert plain is not None
    again = await stores.notifications.get("app", "n2")
    assert again is not None and again.localized == {}


async def test_targets_carry_their_registered_locale(stores: Stores, clock: ManualClock) -> None:
    now = clock.now()
    await stores.tokens.upsert(models.TokenRegistration("app", "fcm-br", FCM, user_id="u", locale="pt-BR"), now)
    await stores.tokens.upsert(models.TokenRegistration("app", "fcm-none", FCM, user_id="u", topics=("news",)), now)
    await stores.tokens.insert_new([models.TokenRegistration("app", "fcm-tw", FCM, topics=("news",), locale="zh-Hant-TW")], now)
    expected = {"fcm-br": "pt-BR", "fcm-none": "", "fcm-tw": "zh-Hant-TW"}
    for query, tokens in ((TargetQuery("all"), set(expected)), (TargetQuery("users", ("u",)), {"fcm-br", "fcm-none"}),
                          (TargetQuery("topic", topic="news"), {"fcm-none", "fcm-tw"})):
        seen = {}
        async for page in stores.tokens.scan_targets("app", query, (0, models.BUCKETS), None, 10):
            seen.update({t.token: t.locale for t in page})
        assert seen == {t: expected[t] for t in tokens}, query
    looked_up = await stores.tokens.lookup("app", [models.Device(t, FCM) for t in expected])
    assert {t: target.locale for (_, t), target in looked_up.items()} == expected
