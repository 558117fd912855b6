"""Web Push subscriptions as tokens, through a real server and the generated stub."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushsvc.bootstrap import build_application
from pushsvc.clock import ManualClock
from pushsvc.config import AppSettings, Settings
from pushsvc.config.schema import WebPushAppSettings
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.rpc.helpers import violations


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _subscription(endpoint: str = "https://fcm.googleapis.com/wp/abc:def", *, padded: bool = False) -> str:
    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    pad = "=" if padded else ""
    # As JSON.stringify(subscription) writes it: endpoint, expirationTime, keys.
    return json.dumps({"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": _b64(public) + pad, "auth": _b64(b"a" * 16) + pad}})


@pytest.fixture
async def web_stub(tmp_path: Path) -> AsyncIterator[push_pb2_grpc.PushServiceStub]:
    key = tmp_path / "vapid.pem"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    web = WebPushAppSettings(vapid_private_key_file=key, subject="mailto:ops@example.com",
                             allowed_hosts=("fcm.googleapis.com", "*.push.apple.com"))
    settings = Settings(store_url="memory://webpush", host="127.0.0.1", port=0, dispatch=FAST_DISPATCH,
                        apps={"web": AppSettings(app_id="web", webpush=web)})
    app = build_application(settings, clock=ManualClock(), providers={})
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield push_pb2_grpc.PushServiceStub(channel)
    finally:
        await app.stop(0)


async def test_a_page_subscription_is_stored_in_canonical_form_keyed_by_it(web_stub) -> None:
    page = _subscription()
    first = await web_stub.RegisterToken(pb.RegisterTokenRequest(app_id="web", token=page, platform=pb.PLATFORM_WEBPUSH))
    assert first.created is True
    stored = json.loads(first.token.token)
    assert stored == {"endpoint": "https://fcm.googleapis.com/wp/abc:def", "keys": json.loads(page)["keys"]}
    # The same subscription, written with padding, keys first and an expirationTime: the same token.
    again = json.dumps({"keys": {k: v + "=" * (-len(v) % 4) for k, v in stored["keys"].items()},
                        "endpoint": stored["endpoint"], "expirationTime": 1_900_000_000_000})
    second = await web_stub.RegisterToken(pb.RegisterTokenRequest(app_id="web", token=again, platform=pb.PLATFORM_WEBPUSH))
    assert second.created is False and second.token.token == first.token.token
    removed = await web_stub.UnregisterToken(pb.UnregisterTokenRequest(app_id="web", token=page, platform=pb.PLATFORM_WEBPUSH))
    assert removed.removed is True


async def test_an_endpoint_off_the_allow_list_is_invalid_argument(web_stub) -> None:
    bad = _subscription("https://push.attacker.example/wp/x")
    found = await violations(web_stub.RegisterToken(pb.RegisterTokenRequest(app_id="web", token=bad, platform=pb.PLATFORM_WEBPUSH)))
    assert "push.attacker.example" in found["token"] and "not an allowed push service" in found["token"]
    ok = await web_stub.RegisterToken(pb.RegisterTokenRequest(
        app_id="web", token=_subscription("https://web.push.apple.com/QGuQyavXutnMH"), platform=pb.PLATFORM_WEBPUSH
    ))
    assert ok.created is True


async def test_a_batch_reports_bad_subscriptions_per_item_and_stores_the_rest(web_stub) -> None:
    items = [
        pb.TokenRegistration(token=_subscription(), platform=pb.PLATFORM_WEBPUSH),
        pb.TokenRegistration(token="{not json", platform=pb.PLATFORM_WEBPUSH),
        pb.TokenRegistration(token=_subscription("https://evil.example/x"), platform=pb.PLATFORM_WEBPUSH),
        pb.TokenRegistration(token=_subscription("http://fcm.googleapis.com/x"), platform=pb.PLATFORM_WEBPUSH),
    ]
    reply = await web_stub.RegisterTokens(pb.RegisterTokensRequest(app_id="web", items=items))
    assert (reply.created, reply.invalid) == (1, 3)
    bad = {r.index: r.violations[0] for r in reply.results if r.outcome == pb.REGISTRATION_OUTCOME_INVALID}
    assert set(bad) == {1, 2, 3} and all(v.field == f"items[{i}].token" for i, v in bad.items())
    assert "JSON.stringify" in bad[1].description and "allowed push service" in bad[2].description
    assert "https" in bad[3].description


async def test_send_checks_device_subscriptions_and_the_encrypted_size(web_stub) -> None:
    def send(token: str, body: str = "hi") -> pb.SendRequest:
        return pb.SendRequest(
            app_id="web", validate_only=True, message=pb.Message(body=body),
            target=pb.Target(devices=pb.DeviceList(devices=[pb.Device(token=token, platform=pb.PLATFORM_WEBPUSH)])),
        )

    assert (await web_stub.Send(send(_subscription()))).targeted == 1
    found = await violations(web_stub.Send(send(_subscription("https://elsewhere.example/x"))))
    assert "not an allowed push service" in found["target.devices.devices[0].token"]
    found = await violations(web_stub.Send(send("nope")))
    assert "JSON.stringify" in found["target.devices.devices[0].token"]
    # 3993 bytes of plaintext fit in the 4096-byte record; one more does not. The plaintext
    # carries pushsvc's notification id (32 hex digits) in its data.
    fits = "a" * (3993 - len('{"body":"","data":{"pushsvc_notification_id":""}}') - 32)
    assert (await web_stub.Send(send(_subscription(), fits))).targeted == 1
    found = await violations(web_stub.Send(send(_subscription(), fits + "a")))
    assert "WEBPUSH payload is 4097 bytes; the limit is 4096" in found["message"]


async def test_an_unspecified_platform_names_every_channel(web_stub) -> None:
    found = await violations(web_stub.RegisterToken(pb.RegisterTokenRequest(app_id="web", token="x")))
    assert found["platform"] == "must be PLATFORM_APNS, PLATFORM_FCM, PLATFORM_WEBPUSH or PLATFORM_HMS"


async def test_a_key_off_the_curve_is_invalid_argument(web_stub) -> None:
    token = json.dumps({"endpoint": "https://fcm.googleapis.com/wp/x", "keys": {"p256dh": "BA" + "A" * 85, "auth": _b64(b"a" * 16)}})
    found = await violations(web_stub.RegisterToken(pb.RegisterTokenRequest(app_id="web", token=token, platform=pb.PLATFORM_WEBPUSH)))
    assert found["token"] == "keys.p256dh is not a point on the P-256 curve"
