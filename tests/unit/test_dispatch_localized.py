"""Localized sends in the dispatcher: each token gets its language's rendering, rendered once per variant."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pushsvc import errors, locales, models
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


async def test_each_variant_push_names_its_tag_and_the_default_names_none(world: World) -> None:
    for locale, token in {"pt-BR": "t-br", "pt-PT": "t-pt", "fr": "t-fr"}.items():
        await world.service.register_token(models.TokenRegistration(APP, token, FCM, locale=locale))
    await world.service.register_token(models.TokenRegistration(APP, f"{1:064x}", APNS, locale="zh-Hant-TW"))
    message = models.Message(title="Hello", data={"order": "7"}, localized=VARIANTS)
    await world.service.send(models.SendCommand(APP, ALL, message))
    await world.drain()
    fcm_data = {d.token: d.rendered.body["data"] for d in world.fcm.sent}
    # The tag as the message spelled it, beside the caller's own data and pushsvc's notification id.
    assert {token: data.get(locales.VARIANT_KEY) for token, data in fcm_data.items()} == {
        "t-br": "pt-BR", "t-pt": "pt", "t-fr": None,
    }
    assert all(data["order"] == "7" for data in fcm_data.values())
    [apns] = world.apns.sent
    assert json.loads(apns.rendered.body["payload"])[locales.VARIANT_KEY] == "zh-Hant"  # an APNs custom key


async def test_the_variant_key_counts_toward_the_payload_limit(world: World) -> None:
    await world.register(1)
    app = world.service._apps[APP]  # noqa: SLF001 - the app's own renderers give the sizes the Send checks
    notification_id = "0" * 32  # Send's ids are uuid4 hex: 32 characters
    longest = []
    for render in app.renderers.values():
        one = render(models.Message(title="Hi", body="x"), notification_id=notification_id)
        longest.append(1 + one.limit_bytes - one.size_bytes)
    # A body that fills the tightest platform's payload exactly, without the variant's key.
    body = "x" * min(longest)
    await world.service.send(models.SendCommand(APP, ALL, models.Message(title="Hi", body=body)))
    at_limit = models.Message(title="Hi", body="y", localized={"de": models.LocalizedContent(body=body)})
    with pytest.raises(errors.InvalidArgument) as info:
        await world.service.send(models.SendCommand(APP, ALL, at_limit))
    assert {v.field for v in info.value.violations} == {"message.localized[de]"}
    shorter = models.Message(title="Hi", body="y", localized={"de": models.LocalizedContent(body=body[len(',"pushsvc_locale":"de"'):])})
    await world.service.send(models.SendCommand(APP, ALL, shorter))


async def test_a_caller_cannot_set_the_variant_key(world: World) -> None:
    await world.register(1)
    message = models.Message(title="Hi", data={locales.VARIANT_KEY: "fr"})
    with pytest.raises(errors.InvalidArgument) as info:
        await world.service.send(models.SendCommand(APP, ALL, message))
    assert {v.field for v in info.value.violations} == {f"message.data[{locales.VARIANT_KEY}]"}
