"""Every bad request gets INVALID_ARGUMENT with a BadRequest naming each bad field; nothing gives INTERNAL."""

from __future__ import annotations

import random

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.rpc.helpers import violations

GOOD = "ab" * 32


async def test_empty_app_id_and_token_are_named(stub: push_pb2_grpc.PushServiceStub) -> None:
    bad = await violations(stub.RegisterToken(pb.RegisterTokenRequest(platform=pb.PLATFORM_FCM)))
    assert set(bad) == {"app_id", "token"}
    assert "empty" in bad["app_id"]


async def test_unspecified_and_unknown_platforms_are_rejected(stub: push_pb2_grpc.PushServiceStub) -> None:
    bad = await violations(stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token=GOOD)))
    assert set(bad) == {"platform"}
    bad = await violations(stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token=GOOD, platform=77)))  # type: ignore[arg-type]
    assert set(bad) == {"platform"}
    bad = await violations(stub.UnregisterToken(pb.UnregisterTokenRequest(app_id="demo", token=GOOD)))
    assert set(bad) == {"platform"}
    bad = await violations(stub.Prune(pb.PruneRequest(app_id="demo", platforms=[pb.PLATFORM_UNSPECIFIED])))
    assert set(bad) == {"platforms"}


@pytest.mark.parametrize(
    "token, why",
    [
        ("zz" * 32, "hexadecimal"),
        ("ab" * 10, "hex digits"),
        ("ab" * 101, "hex digits"),
        ("a" * 65, "hex digits"),
        ("ab cd", "hexadecimal"),
    ],
)
async def test_apns_tokens_must_be_hex_of_plausible_length(stub: push_pb2_grpc.PushServiceStub, token: str, why: str) -> None:
    bad = await violations(stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token=token, platform=pb.PLATFORM_APNS)))
    assert set(bad) == {"token"} and why in bad["token"]


async def test_over_long_strings_are_named(stub: push_pb2_grpc.PushServiceStub) -> None:
    req = pb.RegisterTokenRequest(
        app_id="a" * 129,
        token="f" * 5000,
        platform=pb.PLATFORM_FCM,
        user_id="u" * 129,
        device_id="d" * 129,
        locale="l" * 65,
        timezone="t" * 65,
        app_version="v" * 65,
    )
    bad = await violations(stub.RegisterToken(req))
    assert set(bad) == {"app_id", "token", "user_id", "device_id", "locale", "timezone", "app_version"}


async def test_too_many_topics_and_bad_topics(stub: push_pb2_grpc.PushServiceStub) -> None:
    bad = await violations(stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token=GOOD, platform=pb.PLATFORM_APNS, topics=["t"] * 101)))
    assert set(bad) == {"topics"}
    bad = await violations(stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token=GOOD, platform=pb.PLATFORM_APNS, topics=["ok", "", "x" * 300])))
    assert set(bad) == {"topics[1]", "topics[2]"}


async def test_negative_and_zero_durations_are_rejected(stub: push_pb2_grpc.PushServiceStub) -> None:
    bad = await violations(stub.Prune(pb.PruneRequest(app_id="demo", stale_after=duration_pb2.Duration(seconds=-5))))
    assert set(bad) == {"stale_after"}
    bad = await violations(stub.Prune(pb.PruneRequest(app_id="demo", stale_after=duration_pb2.Duration())))
    assert set(bad) == {"stale_after"}
    send = pb.SendRequest(
        app_id="demo",
        target=pb.Target(topic="news"),
        message=pb.Message(title="hi", ttl=duration_pb2.Duration(seconds=-1)),
    )
    bad = await violations(stub.Send(send))
    assert "message.ttl" in bad


async def test_out_of_range_durations_and_timestamps_are_bad_input(stub: push_pb2_grpc.PushServiceStub) -> None:
    huge = duration_pb2.Duration(seconds=315_576_000_000)
    bad = await violations(stub.Prune(pb.PruneRequest(app_id="demo", stale_after=huge)))
    assert set(bad) == {"stale_after"}
    send = pb.SendRequest(
        app_id="demo", target=pb.Target(all=True), message=pb.Message(title="x"),
        send_at=timestamp_pb2.Timestamp(seconds=10**15),
    )
    bad = await violations(stub.Send(send))
    assert set(bad) == {"send_at"}


async def test_send_request_shape_errors_are_all_named(stub: push_pb2_grpc.PushServiceStub) -> None:
    bad = await violations(stub.Send(pb.SendRequest(app_id="demo")))
    assert set(bad) == {"target", "message"}
    req = pb.SendRequest(
        app_id="demo",
        target=pb.Target(
            devices=pb.DeviceList(devices=[pb.Device(token="xyz", platform=pb.PLATFORM_APNS), pb.Device(token="t")]),
            platforms=[pb.PLATFORM_UNSPECIFIED],
        ),
        message=pb.Message(title="hi", data={"from": "x", "google.foo": "y"}, collapse_key="c" * 65),
        idempotency_key="k" * 300,
    )
    bad = await violations(stub.Send(req))
    assert set(bad) == {
        "target.platforms",
        "target.devices.devices[0].token",
        "target.devices.devices[1].platform",
        "message.data[from]",
        "message.data[google.foo]",
        "message.collapse_key",
        "idempotency_key",
    }
    bad = await violations(stub.Send(pb.SendRequest(app_id="demo", target=pb.Target(users=pb.UserList()), message=pb.Message(body="b"))))
    assert set(bad) == {"target.users.user_ids"}
    too_many = pb.Target(devices=pb.DeviceList(devices=[pb.Device(token="f", platform=pb.PLATFORM_FCM)] * 10_001))
    bad = await violations(stub.Send(pb.SendRequest(app_id="demo", target=too_many, message=pb.Message(body="b"))))
    assert set(bad) == {"target.devices.devices"}


async def test_bad_cursor_and_ids_on_reads(stub: push_pb2_grpc.PushServiceStub) -> None:
    bad = await violations(stub.GetNotification(pb.GetNotificationRequest(app_id="", notification_id="n" * 200)))
    assert set(bad) == {"app_id", "notification_id"}
    call = stub.StreamReceipts(pb.StreamReceiptsRequest(app_id="demo", after="not-a-cursor"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_random_garbage_never_yields_internal(stub: push_pb2_grpc.PushServiceStub) -> None:
    rng = random.Random(1234)
    alphabet = "ab09 \x00\u00e9\u2603\U0001f600-_./:"

    def text(n: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(n)))

    for _ in range(60):
        calls = [
            stub.RegisterToken(pb.RegisterTokenRequest(app_id=text(20), token=text(300), platform=rng.randrange(-2, 5), topics=[text(5) for _ in range(rng.randrange(3))])),  # type: ignore[arg-type]
            stub.UnregisterToken(pb.UnregisterTokenRequest(app_id=text(20), token=text(70), platform=rng.randrange(0, 3))),  # type: ignore[arg-type]
            stub.Prune(pb.PruneRequest(app_id=text(10), stale_after=duration_pb2.Duration(seconds=rng.randrange(-10**12, 10**12)), dry_run=True)),
            stub.Send(pb.SendRequest(app_id=text(10), target=pb.Target(topic=text(10)), message=pb.Message(title=text(30), data={text(4): text(4)}), validate_only=True)),
            stub.GetNotification(pb.GetNotificationRequest(app_id=text(10), notification_id=text(40))),
        ]
        for call in calls:
            try:
                await call
            except grpc.aio.AioRpcError as err:
                assert err.code() != grpc.StatusCode.INTERNAL, err.details()
                assert err.code() in {
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.NOT_FOUND,
                    grpc.StatusCode.FAILED_PRECONDITION,
                }, err.details()
