"""Localized sends in the dispatcher: each token gets its language's rendering, rendered once per variant."""

from __future__ import annotations

from typing import Any

import pytest

from pushsvc import errors, models
from tests.unit.conftest import APNS, APP, FCM, World

ALL = models.Target(kind="all", all=True)
VARIANTS = {
    "pt-BR": models.LocalizedContent(title="Olá", body="Brasil"),
    "pt": models.LocalizedContent(title="Olá"),  # the body falls back to the message's
    "zh-Hant": models.LocalizedContent(title="你好", body="世界"),
}


async def test_each_token_gets_the_variant_of_its_locale(world: World) -> None:
    locales = {"pt-BR": "t-br", "pt-PT": "t-pt", "zh-Hant-TW": "t-tw", "": "t-none", "fr": "t-fr", "bad locale!": "t-bad"}
    for locale, token in locales.items():
        await world.service.register_token(models.TokenRegistration(APP, token, FCM, locale=locale))
    message = models.Message(title="Hello", body="World", localized=VARIANTS)
    sent = await world.service.send(models.SendCommand(APP, ALL, message))
    await world.drain()
    shown = {d.token: (d.rendered.body["notification"]["title"], d.rendered.body["notification"]["body"]) for d in world.fcm.sent}
    assert shown == {
        "t-br": ("Olá", "Brasil"),
        "t-pt": ("Olá", "World"),
        "t-tw": ("你好", "世界"),
        "t-none": ("Hello", "World"),
        "t-fr": ("Hello", "World"),
        "t-bad": ("Hello", "World"),
    }
    record = await world.stores.notifications.get(APP, sent.notification_id)
    assert record is not None and record.view.delivered == 6


async def test_rendering_is_once_per_variant_and_platform_never_per_token(world: World) -> None:
    for i in range(30):
        await world.service.register_token(models.TokenRegistration(APP, f"f{i}", FCM, locale=("pt-BR", "zh-Hant", "fr")[i % 3]))
        await world.service.register_token(models.TokenRegistration(APP, f"{i:064x}", APNS, locale="pt-BR"))
    calls: list[tuple[str, str]] = []
    app = world.service._apps[APP]  # noqa: SLF001 - the renderers are the profile's; counting them is the point
    for platform, render in list(app.renderers.items()):
        def counting(
            m: models.Message, render: Any = render, platform: models.Platform = platform, notification_id: str = ""
        ) -> Any:
            calls.append((platform.value, m.title))
            return render(m, notification_id=notification_id)
        app.renderers[platform] = counting  # type: ignore[index]  # the test's own profile, mutable on purpose
    await world.service.send(models.SendCommand(APP, ALL, models.Message(title="Hello", localized=VARIANTS)))
    await world.drain()
    assert len(world.fcm.sent) == 30 and len(world.apns.sent) == 30
    # (1 + 3 variants) x 2 platforms, at Send; none at delivery.
    assert sorted(calls) == sorted((p.value, t) for p in (APNS, FCM) for t in ("Hello", "Olá", "Olá", "你好"))


async def test_every_variant_is_checked_against_the_payload_limits_at_send(world: World) -> None:
    await world.register(1)
    huge = models.LocalizedContent(body="x" * 4000)
    message = models.Message(title="Hi", localized={"de": huge, "fr": models.LocalizedContent(title="Salut")})
    with pytest.raises(errors.InvalidArgument) as info:
        await world.service.send(models.SendCommand(APP, ALL, message))
    fields = {v.field for v in info.value.violations}
    assert fields == {"message.localized[de]"}
    bad = models.Message(title="Hi", localized={"not a tag": models.LocalizedContent(title="x"),
                                                "pt_BR": models.LocalizedContent(title="a"),
                                                "pt-br": models.LocalizedContent(title="b")})
    with pytest.raises(errors.InvalidArgument) as info:
        await world.service.send(models.SendCommand(APP, ALL, bad))
    assert {v.field for v in info.value.violations} == {"message.localized[not a tag]", "message.localized[pt-br]"}
