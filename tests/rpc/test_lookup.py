"""GetToken, ListTokens and ListNotifications (and CancelNotification's validation) through a real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import timestamp_pb2

from pushsvc.clock import ManualClock
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.rpc.helpers import status_of, violations

F, A = pb.PLATFORM_FCM, pb.PLATFORM_APNS


def ts(at: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(at)
    return out


async def _register_fleet(stub: push_pb2_grpc.PushServiceStub, clock: ManualClock) -> None:
    """25 FCM tokens (alice has 5, 10 follow "news"), then 5 APNs tokens of bob a day later."""
    items = [
        pb.TokenRegistration(token=f"fcm-{i:02d}", platform=F, user_id="alice" if i < 5 else f"u{i}",
                             topics=["news"] if i % 2 == 0 and i < 20 else [], locale="de-DE")
        for i in range(25)
    ]
    await stub.RegisterTokens(pb.RegisterTokensRequest(app_id="demo", items=items))
    clock.advance(86400)
    items = [pb.TokenRegistration(token=f"{i:064x}", platform=A, user_id="bob") for i in range(5)]
    await stub.RegisterTokens(pb.RegisterTokensRequest(app_id="demo", items=items))


async def _list(stub: push_pb2_grpc.PushServiceStub, request: pb.ListTokensRequest) -> list[str]:
    out: list[str] = []
    while True:
        page = await stub.ListTokens(request)
        assert len(page.tokens) <= (request.page_size or 100)
        out += [t.token for t in page.tokens]
        if not page.next_page_token:
            return out
        request.page_token = page.next_page_token


async def test_get_token_returns_the_registration_and_not_found_otherwise(stub: push_pb2_grpc.PushServiceStub) -> None:
    registered = await stub.RegisterToken(
        pb.RegisterTokenRequest(app_id="demo", token="fcm-x", platform=F, user_id="alice", topics=["news"], locale="pt-BR")
    )
    got = await stub.GetToken(pb.GetTokenRequest(app_id="demo", platform=F, token="fcm-x"))
    assert got.token == registered.token
    assert await status_of(stub.GetToken(pb.GetTokenRequest(app_id="demo", platform=A, token="ab" * 32))) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert await status_of(stub.GetToken(pb.GetTokenRequest(app_id="other", platform=F, token="fcm-x"))) == (
        grpc.StatusCode.NOT_FOUND
    )
    bad = await violations(stub.GetToken(pb.GetTokenRequest(app_id="demo", token="fcm-x")))
    assert set(bad) == {"platform"}


async def test_list_tokens_pages_and_filters(stub: push_pb2_grpc.PushServiceStub, clock: ManualClock) -> None:
    await _register_fleet(stub, clock)
    everything = await _list(stub, pb.ListTokensRequest(app_id="demo", page_size=7))
    assert len(everything) == len(set(everything)) == 30
    assert everything == await _list(stub, pb.ListTokensRequest(app_id="demo"))  # one page of 100
    assert sorted(await _list(stub, pb.ListTokensRequest(app_id="demo", user_id="alice", page_size=2))) == [
        f"fcm-{i:02d}" for i in range(5)
    ]
    assert sorted(await _list(stub, pb.ListTokensRequest(app_id="demo", topic="news", page_size=3))) == [
        f"fcm-{i:02d}" for i in range(0, 20, 2)
    ]
    apns = await _list(stub, pb.ListTokensRequest(app_id="demo", platform=A, page_size=2))
    assert sorted(apns) == [f"{i:064x}" for i in range(5)]
    yesterday = clock.now() - timedelta(hours=12)
    assert len(await _list(stub, pb.ListTokensRequest(app_id="demo", last_seen_before=ts(yesterday)))) == 25
    assert sorted(await _list(stub, pb.ListTokensRequest(app_id="demo", last_seen_after=ts(yesterday)))) == sorted(apns)
    assert await _list(stub, pb.ListTokensRequest(app_id="demo", user_id="alice", platform=A)) == []
    page = await stub.ListTokens(pb.ListTokensRequest(app_id="demo", user_id="alice", page_size=1))
    assert page.tokens[0].locale == "de-DE" and page.tokens[0].user_id == "alice" and page.next_page_token
    # Pages larger than the maximum are served at the maximum.
    assert len((await stub.ListTokens(pb.ListTokensRequest(app_id="demo", page_size=1_000_000))).tokens) == 30


async def test_list_tokens_rejects_bad_page_tokens_and_filters_with_field_violations(
    stub: push_pb2_grpc.PushServiceStub, clock: ManualClock
) -> None:
    await _register_fleet(stub, clock)
    first = await stub.ListTokens(pb.ListTokensRequest(app_id="demo", page_size=2))
    assert first.next_page_token
    for token in ("garbage", "!!!", "e30", first.next_page_token[:-3], "A" * 5000):
        bad = await violations(stub.ListTokens(pb.ListTokensRequest(app_id="demo", page_token=token)))
        assert set(bad) == {"page_token"}, token
    # A token made for other filters (here: another user) is refused rather than misread.
    bad = await violations(stub.ListTokens(pb.ListTokensRequest(app_id="demo", user_id="alice", page_token=first.next_page_token)))
    assert "other filters" in bad["page_token"]
    bad = await violations(stub.ListTokens(pb.ListTokensRequest(app_id="other", page_token=first.next_page_token)))
    assert set(bad) == {"page_token"}
    now = clock.now()
    bad = await violations(
        stub.ListTokens(
            pb.ListTokensRequest(app_id="", page_size=-1, platform=99, user_id="a\x00b", last_seen_before=ts(now),
                                 last_seen_after=ts(now))
        )
    )
    assert set(bad) == {"app_id", "page_size", "platform", "user_id", "last_seen_before"}
    out_of_range = pb.ListTokensRequest(app_id="demo")
    out_of_range.last_seen_after.seconds = 10**13
    assert set(await violations(stub.ListTokens(out_of_range))) == {"last_seen_after"}
    # And the listing still works afterwards.
    assert (await stub.ListTokens(pb.ListTokensRequest(app_id="demo", page_token=first.next_page_token, page_size=2))).tokens


async def test_list_notifications_validation_and_empty_app(stub: push_pb2_grpc.PushServiceStub) -> None:
    empty = await stub.ListNotifications(pb.ListNotificationsRequest(app_id="demo"))
    assert list(empty.notifications) == [] and empty.next_page_token == ""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    bad = await violations(
        stub.ListNotifications(
            pb.ListNotificationsRequest(app_id="demo", state=42, page_size=-5, created_after=ts(start), created_before=ts(start))
        )
    )
    assert set(bad) == {"state"}  # an unknown enum number is named before the rest is read
    bad = await violations(
        stub.ListNotifications(
            pb.ListNotificationsRequest(app_id="demo", page_size=-5, created_after=ts(start), created_before=ts(start),
                                        page_token="x")
        )
    )
    assert set(bad) == {"page_size", "created_before"}
    bad = await violations(stub.ListNotifications(pb.ListNotificationsRequest(app_id="demo", page_token="not-a-token")))
    assert set(bad) == {"page_token"}


async def test_cancel_notification_validates_and_reports_unknown_ids(stub: push_pb2_grpc.PushServiceStub) -> None:
    bad = await violations(stub.CancelNotification(pb.CancelNotificationRequest(app_id="demo")))
    assert set(bad) == {"notification_id"}
    bad = await violations(stub.CancelNotification(pb.CancelNotificationRequest(app_id="", notification_id="n\n1")))
    assert set(bad) == {"app_id", "notification_id"}
    code = await status_of(stub.CancelNotification(pb.CancelNotificationRequest(app_id="demo", notification_id="n-unknown")))
    assert code == grpc.StatusCode.NOT_FOUND
