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


async def test_device_side_localization_keys_pass_through(stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    await register(stack_stub, apns(7), A, user_id="loc")
    await register(stack_stub, "fcm-loc", F, user_id="loc")
    message = pb.Message(
        title_loc_key="WELCOME_TITLE", title_loc_args=["Ana"], body_loc_key="WELCOME_BODY", body_loc_args=["3", "days"],
    )
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["loc"])), message=message))
    got = by_token(await receipts(stack_stub, sent.notification_id))
    assert {r.status for r in got.values()} == {pb.DELIVERY_STATUS_DELIVERED}
    [apns_in] = stack.emulator.inbox.entries(platform="apns", token=apns(7))
    assert apns_in.payload["aps"]["alert"] == {
        "title-loc-key": "WELCOME_TITLE", "title-loc-args": ["Ana"], "loc-key": "WELCOME_BODY", "loc-args": ["3", "days"],
    }
    assert apns_in.headers["apns-push-type"] == "alert"  # keys alone make a visible alert
    [fcm_in] = stack.emulator.inbox.entries(platform="fcm", token="fcm-loc")
    android = fcm_in.payload["android"]["notification"]
    assert (android["title_loc_key"], android["title_loc_args"], android["body_loc_key"], android["body_loc_args"]) == (
        "WELCOME_TITLE", ["Ana"], "WELCOME_BODY", ["3", "days"]
    )
    assert fcm_in.payload["apns"]["payload"]["aps"]["alert"]["loc-key"] == "WELCOME_BODY"
    too_many = pb.Message(title="x", body_loc_args=["a"] * 101, title_loc_key="k" * 300)
    bad = await violations(stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=too_many)))
    assert set(bad) == {"message.body_loc_args", "message.title_loc_key"}


async def test_each_push_names_its_variant_and_the_caller_cannot(stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    await register(stack_stub, apns(8), A, locale="pt-BR", user_id="named")
    await register(stack_stub, "fcm-named", F, locale="fr", user_id="named")
    message = pb.Message(title="Hello", data={"k": "v"}, localized={"pt-BR": pb.LocalizedContent(title="Olá")})
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["named"])), message=message))
    got = by_token(await receipts(stack_stub, sent.notification_id))
    assert {r.status for r in got.values()} == {pb.DELIVERY_STATUS_DELIVERED}
    [apns_in] = stack.emulator.inbox.entries(platform="apns", token=apns(8))
    assert (apns_in.payload["pushsvc_locale"], apns_in.payload["k"]) == ("pt-BR", "v")
    [fcm_in] = stack.emulator.inbox.entries(platform="fcm", token="fcm-named")
    assert "pushsvc_locale" not in fcm_in.payload["data"] and fcm_in.payload["data"]["k"] == "v"  # the message's own content
    message.data["pushsvc_locale"] = "fr"
    bad = await violations(stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(all=True), message=message)))
    assert set(bad) == {"message.data[pushsvc_locale]"}
