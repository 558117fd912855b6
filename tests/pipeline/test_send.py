"""Send end to end: real gRPC server, real dispatcher, the emulator over TLS + HTTP/2."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2

from pushsvc.devstack import DevStack
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.pipeline.helpers import APP, apns, by_token, notification, receipts, register
from tests.rpc.helpers import status_of, violations

A, F = pb.PLATFORM_APNS, pb.PLATFORM_FCM
D = pb.DELIVERY_STATUS_DELIVERED
HELLO = pb.Message(title="Hello", body="World", data={"k": "v"})


async def test_devices_target_reaches_unregistered_tokens_on_both_platforms(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    devices = [pb.Device(token=apns(1), platform=A), pb.Device(token="fcm-1", platform=F), pb.Device(token=apns(1), platform=A)]
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(devices=pb.DeviceList(devices=devices)), message=HELLO))
    assert sent.targeted == 2 and not sent.duplicate  # duplicates in the list are sent once
    got = by_token(await receipts(stack_stub, sent.notification_id))
    assert {t: r.status for t, r in got.items()} == {apns(1): D, "fcm-1": D}
    assert got[apns(1)].provider_status == 200 and got[apns(1)].provider_message_id
    assert got["fcm-1"].provider_message_id.startswith("projects/")
    assert not got[apns(1)].token_removed and got[apns(1)].user_id == ""
    apns_in = stack.emulator.inbox.entries(platform="apns", token=apns(1))
    assert len(apns_in) == 1 and apns_in[0].payload["aps"]["alert"] == {"title": "Hello", "body": "World"}
    assert apns_in[0].payload["k"] == "v" and apns_in[0].headers["apns-topic"] == stack.credentials.apns_bundle_id
    fcm_in = stack.emulator.inbox.entries(platform="fcm", token="fcm-1")
    assert len(fcm_in) == 1 and fcm_in[0].payload["notification"]["title"] == "Hello"
    n = await notification(stack_stub, sent.notification_id)
    assert (n.state, n.targeted, n.delivered, n.pending) == (pb.NOTIFICATION_STATE_COMPLETED, 2, 2, 0)


async def test_users_topic_and_all_targets_with_platform_filter(stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    await register(stack_stub, apns(1), A, user_id="alice", topics=["news"])
    await register(stack_stub, "fcm-a", F, user_id="alice")
    await register(stack_stub, apns(2), A, user_id="bob", topics=["news", "sport"])
    await register(stack_stub, "fcm-c", F, user_id="carol", topics=["sport"])

    async def tokens_of(target: pb.Target) -> set[str]:
        sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=target, message=HELLO))
        got = by_token(await receipts(stack_stub, sent.notification_id))
        assert sent.targeted == len(got)
        assert all(r.status == D for r in got.values())
        return set(got)

    assert await tokens_of(pb.Target(users=pb.UserList(user_ids=["alice"]))) == {apns(1), "fcm-a"}
    assert await tokens_of(pb.Target(users=pb.UserList(user_ids=["alice", "bob"]), platforms=[A])) == {apns(1), apns(2)}
    assert await tokens_of(pb.Target(topic="sport")) == {apns(2), "fcm-c"}
    assert await tokens_of(pb.Target(all=True, platforms=[F])) == {"fcm-a", "fcm-c"}
    assert await tokens_of(pb.Target(all=True)) == {apns(1), apns(2), "fcm-a", "fcm-c"}
    assert await tokens_of(pb.Target(topic="nobody-subscribed")) == set()


async def test_idempotency_key_returns_the_first_id_and_sends_once(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    req = pb.SendRequest(
        app_id=APP, target=pb.Target(devices=pb.DeviceList(devices=[pb.Device(token=apns(5), platform=A)])), message=HELLO,
        idempotency_key="order-42",
    )
    first, second = await stack_stub.Send(req), await stack_stub.Send(req)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.notification_id == first.notification_id
    await receipts(stack_stub, first.notification_id)
    concurrent = await asyncio.gather(*(stack_stub.Send(req) for _ in range(5)))
    assert {c.notification_id for c in concurrent} == {first.notification_id}
    assert len(stack.emulator.inbox.entries(token=apns(5))) == 1


async def test_validate_only_counts_and_checks_but_stores_and_sends_nothing(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    await register(stack_stub, apns(1), A, topics=["t"])
    await register(stack_stub, "fcm-1", F, topics=["t"])
    dry = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(topic="t"), message=HELLO, validate_only=True))
    assert (dry.targeted, dry.notification_id) == (2, "")
    big = pb.Message(title="x", data={"blob": "y" * 4500})
    bad = await violations(stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(topic="t"), message=big, validate_only=True)))
    assert "the APNS payload is" in bad["message"] and "4096" in bad["message"]
    await asyncio.sleep(0.3)
    assert len(stack.emulator.inbox.entries()) == 0


async def test_payload_limits_are_enforced_at_send_time_per_platform(stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    to_apns = pb.Target(devices=pb.DeviceList(devices=[pb.Device(token=apns(1), platform=A)]))
    voip_4500 = pb.Message(push_type=pb.PUSH_TYPE_VOIP, data={"blob": "v" * 4500})
    assert (await stack_stub.Send(pb.SendRequest(app_id=APP, target=to_apns, message=voip_4500, validate_only=True))).targeted == 1
    voip_5200 = pb.Message(push_type=pb.PUSH_TYPE_VOIP, data={"blob": "v" * 5200})
    bad = await violations(stack_stub.Send(pb.SendRequest(app_id=APP, target=to_apns, message=voip_5200)))
    assert "5120" in bad["message"]
    to_fcm = pb.Target(devices=pb.DeviceList(devices=[pb.Device(token="f", platform=F)]))
    bad = await violations(stack_stub.Send(pb.SendRequest(app_id=APP, target=to_fcm, message=pb.Message(data={"b": "x" * 4100}))))
    assert "the FCM payload" in bad["message"]


async def test_every_emulator_test_token_gives_its_documented_outcome_and_registry_state(
    stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub
) -> None:
    expected = {
        # token: (status, attempts, provider_status, reason, token_removed)
        apns(1): (D, 1, 200, "", False),
        apns(2, "0410"): (pb.DELIVERY_STATUS_TOKEN_INVALID, 1, 410, "Unregistered", True),
        apns(3, "0400"): (pb.DELIVERY_STATUS_TOKEN_INVALID, 1, 400, "BadDeviceToken", True),
        apns(4, "0429"): (D, 2, 200, "", False),
        apns(5, "0503"): (D, 2, 200, "", False),
        apns(6, "0403"): (pb.DELIVERY_STATUS_FAILED, 1, 403, "Forbidden", False),
        "fcm-ok": (D, 1, 200, "", False),
        "unregistered-1": (pb.DELIVERY_STATUS_TOKEN_INVALID, 1, 404, "UNREGISTERED", True),
        "invalid-1": (pb.DELIVERY_STATUS_TOKEN_INVALID, 1, 400, "INVALID_ARGUMENT", True),
        "quota-1": (D, 2, 200, "", False),
        "unavailable-1": (D, 2, 200, "", False),
        "mismatch-1": (pb.DELIVERY_STATUS_TOKEN_INVALID, 1, 403, "SENDER_ID_MISMATCH", True),
    }
    for token in expected:
        await register(stack_stub, token, A if token[0] in "0a" and len(token) == 64 else F, user_id="u")
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["u"])), message=HELLO))
    got = by_token(await receipts(stack_stub, sent.notification_id))
    assert {t: (r.status, r.attempts, r.provider_status, r.reason, r.token_removed) for t, r in got.items()} == expected
    left = await stack_stub.Send(
        pb.SendRequest(app_id=APP, target=pb.Target(users=pb.UserList(user_ids=["u"])), message=HELLO, validate_only=True)
    )
    assert left.targeted == sum(1 for v in expected.values() if not v[4])
    n = await notification(stack_stub, sent.notification_id)
    assert (n.delivered, n.failed, n.invalid_tokens, n.pending, n.targeted) == (6, 1, 5, 0, 12)


async def test_unknown_app_and_missing_credentials_are_failed_precondition(stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    req = pb.SendRequest(app_id="no-such-app", target=pb.Target(all=True), message=HELLO)
    assert await status_of(stack_stub.Send(req)) == grpc.StatusCode.FAILED_PRECONDITION


async def test_get_notification_unknown_is_not_found(stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    req = pb.GetNotificationRequest(app_id=APP, notification_id="0" * 32)
    assert await status_of(stack_stub.GetNotification(req)) == grpc.StatusCode.NOT_FOUND
    stream = stack_stub.StreamReceipts(pb.StreamReceiptsRequest(app_id=APP, notification_id="0" * 32))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stream:
            pass
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_apns_options_and_fcm_options_reach_the_wire(stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    payload = struct_pb2.Struct()
    payload.update({"aps": {"interruption-level": "time-sensitive"}, "custom": {"deep": 1}})
    android = struct_pb2.Struct()
    android.update({"notification": {"channel_id": "alerts"}})
    msg = pb.Message(
        title="T", badge=0, collapse_key="c1", ttl=duration_pb2.Duration(seconds=3600),
        apns=pb.ApnsOptions(payload=payload), fcm=pb.FcmOptions(android=android, analytics_label="lbl"),
    )
    devices = [pb.Device(token=apns(9), platform=A), pb.Device(token="fcm-9", platform=F)]
    sent = await stack_stub.Send(pb.SendRequest(app_id=APP, target=pb.Target(devices=pb.DeviceList(devices=devices)), message=msg))
    await receipts(stack_stub, sent.notification_id)
    (a,) = stack.emulator.inbox.entries(token=apns(9))
    assert a.payload["aps"]["badge"] == 0 and a.payload["aps"]["interruption-level"] == "time-sensitive"
    assert a.payload["custom"] == {"deep": 1} and a.headers["apns-collapse-id"] == "c1"
    assert int(a.headers["apns-expiration"]) > 0
    (f,) = stack.emulator.inbox.entries(token="fcm-9")
    assert f.payload["android"]["notification"]["channel_id"] == "alerts"
    assert f.payload["fcm_options"]["analytics_label"] == "lbl"
