"""RegisterToken, UnregisterToken and Prune through a real server and the generated stub."""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2, json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pushsvc.bootstrap import Application
from pushsvc.clock import ManualClock
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc

APNS_TOKEN = "ab" * 32


def register(token: str = APNS_TOKEN, platform: int = pb.PLATFORM_APNS, **kw: object) -> pb.RegisterTokenRequest:
    return pb.RegisterTokenRequest(app_id="demo", token=token, platform=platform, **kw)  # type: ignore[arg-type]


async def test_register_then_reregister_refreshes_last_seen_and_keeps_created(
    stub: push_pb2_grpc.PushServiceStub, clock: ManualClock
) -> None:
    first = await stub.RegisterToken(register(user_id="alice", topics=["news"], locale="en-GB"))
    assert first.created is True
    assert first.token.user_id == "alice" and list(first.token.topics) == ["news"]
    assert first.token.created_at == first.token.last_seen_at
    clock.advance(90)
    again = await stub.RegisterToken(register(user_id="bob", app_version="2.0"))
    assert again.created is False
    assert again.token.created_at == first.token.created_at
    assert again.token.last_seen_at.ToDatetime() - first.token.last_seen_at.ToDatetime() == __import__("datetime").timedelta(seconds=90)
    assert again.token.user_id == "bob" and list(again.token.topics) == [] and again.token.app_version == "2.0"
    assert again.token.apns_environment == pb.APNS_ENVIRONMENT_PRODUCTION


async def test_device_rotation_removes_the_old_token(stub: push_pb2_grpc.PushServiceStub) -> None:
    await stub.RegisterToken(register("01" * 32, device_id="phone-1"))
    await stub.RegisterToken(register("02" * 32, device_id="phone-1"))
    old = await stub.UnregisterToken(pb.UnregisterTokenRequest(app_id="demo", token="01" * 32, platform=pb.PLATFORM_APNS))
    new = await stub.UnregisterToken(pb.UnregisterTokenRequest(app_id="demo", token="02" * 32, platform=pb.PLATFORM_APNS))
    assert (old.removed, new.removed) == (False, True)


async def test_an_fcm_token_has_no_apns_environment(stub: push_pb2_grpc.PushServiceStub) -> None:
    # Even when the caller sent one: it means nothing for FCM.
    for environment in (pb.APNS_ENVIRONMENT_UNSPECIFIED, pb.APNS_ENVIRONMENT_SANDBOX):
        reply = await stub.RegisterToken(register("fcm-env", pb.PLATFORM_FCM, apns_environment=environment))
        assert reply.token.apns_environment == pb.APNS_ENVIRONMENT_UNSPECIFIED
        assert "apnsEnvironment" not in json_format.MessageToDict(reply.token)
    apns = await stub.RegisterToken(register(apns_environment=pb.APNS_ENVIRONMENT_SANDBOX))
    assert apns.token.apns_environment == pb.APNS_ENVIRONMENT_SANDBOX


async def test_unregister_reports_removed_and_unknown_is_not_an_error(stub: push_pb2_grpc.PushServiceStub) -> None:
    await stub.RegisterToken(register("fcm-token-1", pb.PLATFORM_FCM))
    req = pb.UnregisterTokenRequest(app_id="demo", token="fcm-token-1", platform=pb.PLATFORM_FCM)
    assert (await stub.UnregisterToken(req)).removed is True
    assert (await stub.UnregisterToken(req)).removed is False


async def test_prune_uses_the_60_day_default_filters_and_dry_run(
    stub: push_pb2_grpc.PushServiceStub, clock: ManualClock
) -> None:
    await stub.RegisterToken(register("01" * 32))
    await stub.RegisterToken(register("old-fcm", pb.PLATFORM_FCM))
    clock.advance(59 * 86400)
    await stub.RegisterToken(register("02" * 32))
    clock.advance(2 * 86400)  # the first two are now 61 days old, the third 2 days
    dry = await stub.Prune(pb.PruneRequest(app_id="demo", dry_run=True))
    assert (dry.would_remove, dry.removed) == (2, 0)
    # In JSON too (grpcurl's view): the count is printed, not dropped as a zero would be.
    assert json_format.MessageToDict(dry) == {"wouldRemove": "2"}
    only_fcm = await stub.Prune(pb.PruneRequest(app_id="demo", platforms=[pb.PLATFORM_FCM]))
    assert only_fcm.removed == 1 and not only_fcm.HasField("would_remove")
    assert (await stub.Prune(pb.PruneRequest(app_id="demo"))).removed == 1
    short = await stub.Prune(pb.PruneRequest(app_id="demo", stale_after=duration_pb2.Duration(seconds=86400)))
    assert short.removed == 1
    none = await stub.Prune(pb.PruneRequest(app_id="demo", dry_run=True, stale_after=duration_pb2.Duration(seconds=1)))
    # Nothing to remove is still an answer: present, so grpcurl prints 0 rather than `{}`.
    assert json_format.MessageToDict(none) == {"wouldRemove": "0"}


async def test_health_is_serving_and_reflection_lists_the_services(app: Application) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "pushsvc.v1.PushService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = set()
        async for r in responses:
            names |= {s.name for s in r.list_services_response.service}
        assert {"pushsvc.v1.PushService", "grpc.health.v1.Health"} <= names
