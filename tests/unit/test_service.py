"""PushService on the memory store with a manual clock: registration, Send's planning, idempotency, back-pressure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pushsvc import errors, models
from pushsvc.providers.fcm import render_fcm
from pushsvc.storage import TargetQuery
from tests.unit.conftest import APNS, APP, FCM, SETTINGS, World, make_world

ALL = models.Target(kind="all", all=True)
HELLO = models.Message(title="hello", data={"k.$": "v"})


def send(target: models.Target = ALL, **kw: object) -> models.SendCommand:
    return models.SendCommand(APP, target, HELLO, **kw)  # type: ignore[arg-type]


async def test_register_refresh_unregister_and_prune(world: World) -> None:
    reg = models.TokenRegistration(APP, "t1", FCM, user_id="u")
    token, created = await world.service.register_token(reg)
    assert created and token.created_at == world.clock.now()
    world.clock.advance(10)
    again, created = await world.service.register_token(reg)
    assert not created and again.created_at == token.created_at and again.last_seen_at == world.clock.now()
    assert await world.service.unregister_token(APP, FCM, "t1") is True
    assert await world.service.unregister_token(APP, FCM, "t1") is False
    await world.service.register_token(models.TokenRegistration(APP, "old", FCM))
    world.clock.advance(61 * 86400)
    await world.service.register_token(models.TokenRegistration(APP, "new", FCM))
    prune = models.PruneCommand(APP, None, frozenset(), dry_run=False)
    assert await world.service.prune(prune) == 1
    assert await world.stores.tokens.get(APP, FCM, "new") is not None


async def test_bad_registration_is_an_invalid_argument_naming_the_field(world: World) -> None:
    with pytest.raises(errors.InvalidArgument) as bad:
        await world.service.register_token(models.TokenRegistration("", "t", FCM))
    assert "app_id" in {v.field for v in bad.value.violations}


async def test_send_plans_partitions_and_stores_the_rendered_bodies_as_rendered(world: World) -> None:
    await world.register(120)
    sent = await world.service.send(send())
    assert sent.targeted == 120 and not sent.duplicate
    status = await world.stores.notifications.partitions(sent.notification_id)
    assert len(status) == 3  # 120 targets / partition_size 50
    record = await world.stores.notifications.get(APP, sent.notification_id)
    # The body the dispatcher gets is the renderer's, unchanged (data keys with dots and dollars included).
    assert record is not None and record.rendered[FCM] == render_fcm(HELLO, notification_id=sent.notification_id).body
    # pushsvc's notification id rides along as a data key, beside the caller's.
    assert record.rendered[FCM]["data"] == {"k.$": "v", "pushsvc_notification_id": sent.notification_id}


async def test_send_renders_every_platform_of_the_app(world: World) -> None:
    await world.register(2)
    await world.register(2, APNS, prefix="ab")
    sent = await world.service.send(send())
    record = await world.stores.notifications.get(APP, sent.notification_id)
    assert record is not None and set(record.rendered) == {APNS, FCM}
    assert "payload" in record.rendered[APNS]


async def test_validate_only_stores_nothing(world: World) -> None:
    await world.register(3)
    dry = await world.service.send(send(validate_only=True))
    assert (dry.notification_id, dry.targeted) == ("", 3)
    assert await world.stores.notifications.queue_depth() == 0


async def test_an_idempotency_key_returns_the_first_notification(world: World) -> None:
    await world.register(3)
    first = await world.service.send(send(idempotency_key="once"))
    again = await world.service.send(send(idempotency_key="once"))
    assert again.duplicate and again.notification_id == first.notification_id and again.targeted == 3


async def test_devices_are_deduplicated_and_sliced_into_partitions(world: World) -> None:
    devices = tuple(models.Device(f"d{i}", FCM) for i in range(120)) + (models.Device("d0", FCM),)
    sent = await world.service.send(send(models.Target(kind="devices", devices=devices)))
    assert sent.targeted == 120
    assert len(await world.stores.notifications.partitions(sent.notification_id)) == 3


async def test_a_platform_without_credentials_fails_only_when_it_has_targets() -> None:
    w = make_world(platforms=(FCM,))
    await w.register(2)
    assert (await w.service.send(send())).targeted == 2
    await w.register(1, APNS, prefix="ab")
    with pytest.raises(errors.FailedPrecondition):
        await w.service.send(send())
    only_fcm = models.Target(kind="all", all=True, platforms=frozenset({FCM}))
    assert (await w.service.send(send(only_fcm))).targeted == 2


async def test_back_pressure_refuses_sends_past_the_queue_depth_until_it_drains() -> None:
    w = make_world(SETTINGS.model_copy(update={"max_queue_depth": 2}))
    await w.register(1)
    await w.service.send(send())
    await w.service.send(send())
    with pytest.raises(errors.ResourceExhausted):
        await w.service.send(send())
    await w.drain()
    # The depth is cached for a second of the injected clock.
    with pytest.raises(errors.ResourceExhausted):
        await w.service.send(send())
    w.clock.advance(1.5)
    assert not (await w.service.send(send())).duplicate


async def test_a_scheduled_send_waits_for_its_time(world: World) -> None:
    await world.register(1)
    sent = await world.service.send(send(send_at=world.clock.now() + timedelta(minutes=5)))
    record = await world.stores.notifications.get(APP, sent.notification_id)
    assert record is not None and record.view.state is models.NotificationState.SCHEDULED
    assert await world.drain() == 0
    world.clock.advance(301)
    assert await world.drain() == 1
    assert world.fcm.attempts("t0000") == 1


async def test_users_and_topics_select_their_tokens(world: World) -> None:
    await world.register(3, user_id="alice", topics=("news",))
    await world.register(2, prefix="b", user_id="bob")
    users = models.Target(kind="users", user_ids=("bob", "bob"))
    assert (await world.service.send(send(users))).targeted == 2
    assert (await world.service.send(send(models.Target(kind="topic", topic="news")))).targeted == 3
    assert await world.stores.tokens.count_targets(APP, TargetQuery("users", ("alice", "bob"))) == 5
