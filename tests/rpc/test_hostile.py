"""Hostile input gets a clean answer: INVALID_ARGUMENT naming the field, one short log line at most.

Raw bytes go through `channel.unary_unary(path)` with no serializers, so the
server sees exactly the bytes a hostile client would send.
"""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from pushsvc.bootstrap import Application
from pushsvc.clock import ManualClock
from pushsvc.devstack import DevStack
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.rpc.helpers import status_of, violations

ROOT = Path(__file__).resolve().parents[2]
SERVICE = pb.DESCRIPTOR.services_by_name["PushService"]
METHODS = [m.name for m in SERVICE.methods]
GOOD_APNS = "ab" * 32

# Every request message has `string app_id = 1`: tag 0x0a, then a length.
BAD_UTF8 = b"\x0a\x03\xed\xa0\x80"  # a UTF-8-encoded lone surrogate
UNPARSABLE = {b"\xff\xff": "", b"\x08": "app_id", BAD_UTF8: "app_id", b"\x0a\x05ab": "app_id"}
"""Request bytes that no request type parses, and the field the violation names ("" is the whole request)."""


def _nested(levels: int, *, lists: bool) -> struct_pb2.Struct:
    """A Struct whose containers (the top one included) nest `levels` deep."""
    top = struct_pb2.Struct()
    value = top.fields["k"]
    for _ in range(levels - 1):
        value = value.list_value.values.add() if lists else value.struct_value.fields["k"]
    value.number_value = 1
    return top


async def _raw_call(channel: grpc.aio.Channel, method: str, data: bytes) -> grpc.aio.AioRpcError:
    """Sends `data` as the request bytes; returns the error the call must end with."""
    path = f"/{SERVICE.full_name}/{method}"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if SERVICE.methods_by_name[method].server_streaming:
            async for _ in channel.unary_stream(path)(data, timeout=10):
                pass
        else:
            await channel.unary_unary(path)(data, timeout=10)
    return info.value


def _bad_request(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out.update({v.field: v.description for v in bad.field_violations})
    return out


def _assert_clean_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """No record carries a traceback; returns the WARNING-or-worse records."""
    for record in caplog.records:
        assert record.exc_info is None and record.exc_text is None, record.getMessage()
        assert "Traceback" not in record.getMessage()
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
async def channel(app: Application) -> grpc.aio.Channel:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch


@pytest.mark.parametrize("method", METHODS)
async def test_unparsable_bytes_get_invalid_argument_and_one_short_line(
    channel: grpc.aio.Channel, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    # pushsvc's and grpc's records at every level (a traceback at DEBUG counts too); not every library's:
    # pymongo's DEBUG records (one per command, formatted with redaction) slowed a FerretDB run past its timeout.
    caplog.set_level(logging.DEBUG, logger="pushsvc")
    caplog.set_level(logging.DEBUG, logger="grpc")
    type_name = SERVICE.methods_by_name[method].input_type.full_name
    for data, field in UNPARSABLE.items():
        err = await _raw_call(channel, method, data)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (data, err.details())
        bad = _bad_request(err)
        assert list(bad) == [field], (data, bad)
        assert bad[field].startswith(f"the request is not a valid serialized {type_name}: ")
        assert "ab" not in bad[field].rpartition(": ")[2], "request bytes must not be echoed"
    assert "bad UTF-8" in _bad_request(await _raw_call(channel, method, BAD_UTF8))["app_id"]
    warnings = _assert_clean_log(caplog)
    # The test's clock stands still, so the throttle lets exactly one line through.
    assert [r.getMessage() for r in warnings] == [
        f"rejected an unparsable request to /{SERVICE.full_name}/{method}: Wire format was corrupt"
    ]
    assert len(warnings[0].getMessage()) < 160


async def test_unparsable_parts_are_named_by_their_field_path(channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    def field(number: int, body: bytes) -> bytes:
        return bytes([number << 3 | 2, len(body)]) + body

    good_device = pb.Device(token="a", platform=pb.PLATFORM_FCM).SerializeToString()
    devices = field(1, field(1, good_device) + field(1, field(1, b"\xff")))
    send = pb.SendRequest(app_id="demo").SerializeToString() + field(2, devices)
    assert list(_bad_request(await _raw_call(channel, "Send", send))) == ["target.devices.devices[1].token"]
    topics = pb.RegisterTokenRequest(topics=["a", "b"]).SerializeToString() + field(5, b"\xc0\xaf")
    assert list(_bad_request(await _raw_call(channel, "RegisterToken", topics))) == ["topics[2]"]
    data_key = field(3, field(7, field(1, b"\xff") + field(2, b"v")))
    assert list(_bad_request(await _raw_call(channel, "Send", data_key))) == ["message.data"]
    # The log line names the field too (from the descriptors, never the request's bytes).
    assert any(r.getMessage().endswith("String field had bad UTF-8 (at target.devices.devices[1].token)") for r in caplog.records)


async def test_the_log_line_is_rate_limited_per_method_and_counts_what_it_dropped(
    channel: grpc.aio.Channel, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(20):
        await _raw_call(channel, "RegisterToken", b"\xff")
    await _raw_call(channel, "Prune", b"\xff")
    assert len(_assert_clean_log(caplog)) == 2
    clock.advance(0.5)
    await _raw_call(channel, "RegisterToken", b"\xff")
    assert len(_assert_clean_log(caplog)) == 2
    clock.advance(0.6)
    await _raw_call(channel, "RegisterToken", b"\xff")
    lines = [r.getMessage() for r in _assert_clean_log(caplog)]
    assert len(lines) == 3 and lines[-1].endswith("(20 more suppressed)"), lines


async def test_the_server_still_answers_after_garbage(channel: grpc.aio.Channel, stub: push_pb2_grpc.PushServiceStub) -> None:
    for data in UNPARSABLE:
        await _raw_call(channel, "RegisterToken", data)
    ok = await stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token=GOOD_APNS, platform=pb.PLATFORM_APNS))
    assert ok.created
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_still_lists_and_describes_the_service(app: Application) -> None:
    grpcurl = ROOT / ".venv/bin/grpcurl"
    if not grpcurl.exists():
        pytest.skip("grpcurl is installed with the dev extra")
    address = f"127.0.0.1:{app.port}"

    def run(*args: str) -> str:
        return subprocess.run(
            [str(grpcurl), "-plaintext", address, *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    listed = await asyncio.to_thread(run, "list")
    assert SERVICE.full_name in listed.split() and "grpc.health.v1.Health" in listed.split()
    described = await asyncio.to_thread(run, "describe", SERVICE.full_name)
    assert all(f"rpc {m} (" in described for m in METHODS), described
    # Method symbols resolve too (Python's reflection alone answers "Symbol not found").
    for method in METHODS:
        one = await asyncio.to_thread(run, "describe", f"{SERVICE.full_name}.{method}")
        assert f"{SERVICE.full_name}.{method} is a method" in one and f"rpc {method} (" in one, one
    with pytest.raises(subprocess.CalledProcessError):
        await asyncio.to_thread(run, "describe", f"{SERVICE.full_name}.NoSuchMethod")


async def test_non_finite_numbers_in_every_struct_field_are_named(stub: push_pb2_grpc.PushServiceStub) -> None:
    msg = pb.Message(title="hi")
    msg.apns.payload.update({"a": {"b": math.nan}})
    msg.fcm.android.update({"x": [1, math.inf]})
    msg.fcm.apns.update({"y": -math.inf})
    msg.fcm.webpush.update({"z": math.nan})
    bad = await violations(stub.Send(pb.SendRequest(app_id="", target=pb.Target(all=True), message=msg)))
    assert set(bad) == {"app_id", "message.apns.payload", "message.fcm.android", "message.fcm.apns", "message.fcm.webpush"}
    assert "nan at a.b" in bad["message.apns.payload"] and "finite" in bad["message.apns.payload"]
    assert "inf at x[1]" in bad["message.fcm.android"]
    assert "-inf at y" in bad["message.fcm.apns"]


async def test_payload_nesting_is_limited_to_32_levels(stub: push_pb2_grpc.PushServiceStub) -> None:
    def send(payload: struct_pb2.Struct) -> pb.SendRequest:
        req = pb.SendRequest(app_id="demo", target=pb.Target(all=True), message=pb.Message(title="x"))
        req.message.fcm.webpush.CopyFrom(payload)
        return req

    bad = await violations(stub.Send(send(_nested(33, lists=True))))
    assert set(bad) == {"message.fcm.webpush"} and "more than 32 levels" in bad["message.fcm.webpush"]
    # 32 levels pass validation; this server has no app "demo", which is checked next.
    assert await status_of(stub.Send(send(_nested(32, lists=True)))) == grpc.StatusCode.FAILED_PRECONDITION
    assert await status_of(stub.Send(send(_nested(32, lists=False)))) == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_payload_deeper_than_the_decoder_allows_is_unparsable(
    stub: push_pb2_grpc.PushServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    req = pb.SendRequest(app_id="demo", target=pb.Target(all=True), message=pb.Message(title="x"))
    req.message.apns.payload.CopyFrom(_nested(90, lists=False))
    bad = await violations(stub.Send(req))
    assert set(bad) == {"message.apns.payload"}
    assert "nesting exceeds the decoder's limit of 100 levels" in bad["message.apns.payload"]
    assert len(_assert_clean_log(caplog)) == 1


@pytest.mark.parametrize("app_id", ["demo\n", "\ndemo", "de\nmo", "demo\r", "demo\x00", "démo", "demo "])
async def test_identifiers_are_matched_in_full(stub: push_pb2_grpc.PushServiceStub, app_id: str) -> None:
    req = pb.RegisterTokenRequest(app_id=app_id, token=GOOD_APNS, platform=pb.PLATFORM_APNS)
    assert set(await violations(stub.RegisterToken(req))) == {"app_id"}
    assert set(await violations(stub.Send(pb.SendRequest(app_id=app_id, target=pb.Target(all=True), message=pb.Message(title="x"))))) == {"app_id"}
    assert set(await violations(stub.GetNotification(pb.GetNotificationRequest(app_id=app_id)))) == {"app_id"}


async def test_control_characters_in_stored_identifiers_are_named(stub: push_pb2_grpc.PushServiceStub) -> None:
    req = pb.RegisterTokenRequest(
        app_id="demo", token=GOOD_APNS, platform=pb.PLATFORM_APNS,
        user_id="alice\x00", device_id="d\n", locale="en\r", timezone="UTC\x7f", app_version="1\x1b", topics=["ok", "n\x00"],
    )
    bad = await violations(stub.RegisterToken(req))
    assert set(bad) == {"user_id", "device_id", "locale", "timezone", "app_version", "topics[1]"}
    assert all("control characters" in d for d in bad.values())
    send = pb.SendRequest(
        app_id="demo", target=pb.Target(users=pb.UserList(user_ids=["bob", "eve\n"])),
        message=pb.Message(title="hi"), idempotency_key="k\x00",
    )
    assert set(await violations(stub.Send(send))) == {"target.users.user_ids[1]", "idempotency_key"}
    # Printable non-ASCII and emoji are fine in these fields.
    ok = await stub.RegisterToken(pb.RegisterTokenRequest(
        app_id="demo", token=GOOD_APNS, platform=pb.PLATFORM_APNS, user_id="Zoë 😀", topics=["ニュース"],
    ))
    assert ok.token.user_id == "Zoë 😀" and list(ok.token.topics) == ["ニュース"]


async def test_values_that_become_http2_headers_cannot_inject(stub: push_pb2_grpc.PushServiceStub) -> None:
    msg = pb.Message(title="hi", collapse_key="a\r\nb")
    msg.apns.topic = "com.example\napns-priority: 10"
    msg.apns.headers["apns-expiration"] = "0\r\napns-priority: 10"
    msg.apns.headers["apns-bad name"] = "1"
    msg.apns.headers["apns-id"] = " padded "
    bad = await violations(stub.Send(pb.SendRequest(app_id="demo", target=pb.Target(all=True), message=msg)))
    assert set(bad) == {
        "message.collapse_key",
        "message.apns.topic",
        "message.apns.headers[apns-expiration]",
        "message.apns.headers[apns-bad name]",
        "message.apns.headers[apns-id]",
    }


async def test_keys_mongodb_forbids_are_stored_as_json_text(stack: DevStack, stack_stub: push_pb2_grpc.PushServiceStub) -> None:
    """User-chosen keys (data, custom payloads) never become document field names in the store."""
    await stack_stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token="dollar-dot", platform=pb.PLATFORM_FCM, topics=["k"]))
    msg = pb.Message(title="hi", data={"$where": "1", "a.b": "2", "\u0000nul": "3"})
    msg.fcm.android.update({"$set": {"x.y": 1}, "data": {"$inc": "1"}})
    msg.apns.payload.update({"a.b": {"$gt": [1, {"c.d": None}]}})
    # Scheduled for tomorrow: stored like any other notification, but nothing is delivered during the test.
    send_at = timestamp_pb2.Timestamp()
    send_at.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    sent = await stack_stub.Send(pb.SendRequest(app_id="demo", target=pb.Target(topic="k"), message=msg, send_at=send_at))
    assert sent.targeted == 1 and sent.notification_id
    got = await stack_stub.GetNotification(pb.GetNotificationRequest(app_id="demo", notification_id=sent.notification_id))
    assert got.notification.state == pb.NOTIFICATION_STATE_SCHEDULED


@pytest.mark.parametrize("after", ["².1", "1.²", "١.٢", "1.2\n", " 1.2", f"{2**63}.1", f"1.{2**63}"])
async def test_cursors_that_were_never_issued_are_bad_input(stub: push_pb2_grpc.PushServiceStub, after: str) -> None:
    # Found by tests/fuzz, each an INTERNAL before: str.isdigit() accepts "²", which int() rejects,
    # and a number past int64 made the BSON encoder raise OverflowError (on a real store; mongomock encodes nothing).
    call = stub.StreamReceipts(pb.StreamReceiptsRequest(app_id="demo", after=after))
    assert set(await violations(_drain(call))) == {"after"}


async def _drain(call: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
    async for _ in call:
        pass


async def test_big_or_sprawling_unparsable_requests_are_named_as_a_whole(channel: grpc.aio.Channel) -> None:
    # Naming the field costs a walk of the bytes; past 64 KB or 500 fields it is skipped.
    big = pb.SendRequest(app_id="demo", message=pb.Message(title="x" * 70_000)).SerializeToString() + b"\x0a\x01\xff"
    assert list(_bad_request(await _raw_call(channel, "Send", big))) == [""]
    entry = bytes([0x0a, 1]) + b"k" + bytes([0x12, 1]) + b"v"
    sprawl = b"".join(bytes([0x3a, len(entry)]) + entry for _ in range(600))
    sprawling = bytes([0x1a]) + _varint(len(sprawl)) + sprawl + b"\x0a\x01\xff"
    assert list(_bad_request(await _raw_call(channel, "Send", sprawling))) == [""]


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out) + bytes([n])
