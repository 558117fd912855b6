"""RegisterTokens through a real server and the generated stub, on every backend."""

from __future__ import annotations

import grpc
import pytest

from pushsvc.bootstrap import Application
from pushsvc.clock import ManualClock
from pushsvc.models import Platform
from pushsvc.storage import TargetQuery
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.rpc.helpers import violations

APNS, FCM = Platform.APNS, Platform.FCM
CREATED, UPDATED, INVALID = pb.REGISTRATION_OUTCOME_CREATED, pb.REGISTRATION_OUTCOME_UPDATED, pb.REGISTRATION_OUTCOME_INVALID


def item(token: str, platform: int = pb.PLATFORM_APNS, **kw: object) -> pb.TokenRegistration:
    return pb.TokenRegistration(token=token, platform=platform, **kw)  # type: ignore[arg-type]


def batch(*items: pb.TokenRegistration, app_id: str = "demo") -> pb.RegisterTokensRequest:
    return pb.RegisterTokensRequest(app_id=app_id, items=items)


def outcomes(reply: pb.RegisterTokensResponse) -> list[tuple[int, int]]:
    return [(r.index, r.outcome) for r in reply.results]


async def test_per_item_results_bad_items_are_reported_and_the_rest_stored(
    stub: push_pb2_grpc.PushServiceStub, app: Application, clock: ManualClock
) -> None:
    await stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token="aa" * 32, platform=pb.PLATFORM_APNS))
    clock.advance(60)
    reply = await stub.RegisterTokens(batch(
        item("aa" * 32, user_id="alice"),              # 0: already registered
        item("fcm-1", pb.PLATFORM_FCM, topics=["news"]),  # 1: new
        item("zz" * 32),                               # 2: not hex
        item("", pb.PLATFORM_FCM),                     # 3: empty
        item("fcm-2", pb.PLATFORM_UNSPECIFIED),        # 4: no platform
        item("fcm-3", pb.PLATFORM_FCM, topics=["ok", ""], locale="x" * 65),  # 5: two bad fields
        item("bb" * 32, device_id="phone", apns_environment=pb.APNS_ENVIRONMENT_SANDBOX),  # 6: new
    ))
    assert outcomes(reply) == [(0, UPDATED), (1, CREATED), (2, INVALID), (3, INVALID), (4, INVALID), (5, INVALID), (6, CREATED)]
    assert (reply.created, reply.updated, reply.invalid) == (2, 1, 4)
    fields = {r.index: sorted(v.field for v in r.violations) for r in reply.results if r.violations}
    assert fields == {2: ["items[2].token"], 3: ["items[3].token"], 4: ["items[4].platform"],
                      5: ["items[5].locale", "items[5].topics[1]"]}
    assert "hexadecimal" in reply.results[2].violations[0].description
    assert all(not r.violations for r in reply.results if r.outcome != INVALID)
    stored = await app.stores.tokens.get("demo", APNS, "aa" * 32)
    assert stored is not None and stored.user_id == "alice" and stored.last_seen_at > stored.created_at
    sandbox = await app.stores.tokens.get("demo", APNS, "bb" * 32)
    assert sandbox is not None and sandbox.apns_environment.value == "sandbox" and sandbox.device_id == "phone"
    assert await app.stores.tokens.get("demo", FCM, "fcm-3") is None
    # The same batch again: the valid items are updates, the bad ones the same violations.
    again = await stub.RegisterTokens(batch(item("aa" * 32), item("fcm-1", pb.PLATFORM_FCM), item("zz" * 32)))
    assert outcomes(again) == [(0, UPDATED), (1, UPDATED), (2, INVALID)]


async def test_a_batch_applies_device_rotation_in_item_order(stub: push_pb2_grpc.PushServiceStub, app: Application) -> None:
    reply = await stub.RegisterTokens(batch(item("01" * 32, device_id="d"), item("02" * 32, device_id="d")))
    assert outcomes(reply) == [(0, CREATED), (1, CREATED)]
    assert await app.stores.tokens.get("demo", APNS, "01" * 32) is None
    assert await app.stores.tokens.get("demo", APNS, "02" * 32) is not None


async def test_a_full_batch_is_accepted_and_counted(
    stub: push_pb2_grpc.PushServiceStub, app: Application, store_url: str
) -> None:
    # FerretDB's SQLite backend takes ~13 ms per upsert: a full batch of 1,000
    # there would cost the suite 13 s for nothing the other backends do not show.
    n = 100 if store_url.startswith("mongodb://") else 1000
    reply = await stub.RegisterTokens(batch(*(item(f"{i:064x}", user_id="bulk") for i in range(n))))
    assert (reply.created, reply.updated, reply.invalid, len(reply.results)) == (n, 0, 0, n)
    assert [r.index for r in reply.results] == list(range(n))
    assert await app.stores.tokens.count_targets("demo", TargetQuery("users", user_ids=("bulk",))) == n


async def test_bad_app_id_empty_and_oversized_batches_are_invalid_argument(stub: push_pb2_grpc.PushServiceStub) -> None:
    assert await violations(stub.RegisterTokens(batch(item("aa" * 32), app_id=""))) == {"app_id": "must not be empty"}
    assert set(await violations(stub.RegisterTokens(batch()))) == {"items"}
    too_many = await violations(stub.RegisterTokens(batch(*(item(f"fcm-{i}", pb.PLATFORM_FCM) for i in range(1001)))))
    assert too_many == {"items": "at most 1000 tokens per request (got 1001)"}


async def test_a_batch_past_the_message_size_limit_is_refused_whole(stub: push_pb2_grpc.PushServiceStub, app: Application) -> None:
    huge = batch(*(item(f"fcm-{i}-" + "x" * 4000, pb.PLATFORM_FCM, topics=["t" * 200, "u" * 200]) for i in range(1000)))
    assert huge.ByteSize() > 4 * 2**20
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RegisterTokens(huge)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await app.stores.tokens.get("demo", FCM, "fcm-0-" + "x" * 4000) is None

