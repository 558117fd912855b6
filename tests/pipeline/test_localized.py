"""Localized sends end to end: real gRPC server, real dispatcher, the emulator over TLS + HTTP/2."""

from __future__ import annotations

from pushsvc.devstack import DevStack
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.pipeline.helpers import APP, apns, by_token, receipts, register
from tests.rpc.helpers import violations

A, F = pb.PLATFORM_APNS, pb.PLATFORM_FCM


async def test_each_device_receives_its_language(stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    devices = {
        (apns(1), A): "pt-BR", (apns(2), A): "zh-Hant-TW", (apns(3), A): "",
        ("fcm-pt", F): "pt-PT", ("fcm-de", F): "de", ("fcm-bad", F): "?",
    }
    for (token, platform), locale in devices.items():
        await register(stack_stub, token, platform, locale=locale, user_id="u")
    message = pb.Message(
        title="Hello", body="World",
        localized={
            "pt-BR": pb.LocalizedContent(title="Olá", body="Mundo"),
            "pt": pb.LocalizedContent(title="Olá"),
            "zh-Hant": pb.LocalizedContent(title="你好", body="世界", subtitle="副"),
        },
    )
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["u"])), message=message))
    got = by_token(await receipts(stack_stub, sent.notification_id))
    assert len(got) == 6 and {r.status for r in got.values()} == {pb.DELIVERY_STATUS_DELIVERED}

    def apns_alert(token: str) -> dict[str, str]:
        [entry] = stack.emulator.inbox.entries(platform="apns", token=token)
        return dict(entry.payload["aps"]["alert"])

    def fcm_notification(token: str) -> dict[str, str]:
        [entry] = stack.emulator.inbox.entries(platform="fcm", token=token)
        return dict(entry.payload["notification"])

    assert apns_alert(apns(1)) == {"title": "Olá", "body": "Mundo"}
    assert apns_alert(apns(2)) == {"title": "你好", "subtitle": "副", "body": "世界"}
    assert apns_alert(apns(3)) == {"title": "Hello", "body": "World"}
    assert fcm_notification("fcm-pt") == {"title": "Olá", "body": "World"}
    assert fcm_notification("fcm-de") == {"title": "Hello", "body": "World"}
    assert fcm_notification("fcm-bad") == {"title": "Hello", "body": "World"}


async def test_bad_tags_and_oversized_variants_are_field_violations(stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    await register(stack_stub, "fcm-x", F)
    message = pb.Message(
        title="Hi",
        localized={"en US": pb.LocalizedContent(title="x"), "de": pb.LocalizedContent(body="ü" * 2100)},
    )
    bad = await violations(stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=message)))
    assert set(bad) == {"message.localized[en US]"}
    del message.localized["en US"]
    bad = await violations(stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=message)))
    assert set(bad) == {"message.localized[de]"} and "FCM payload" in bad["message.localized[de]"]
