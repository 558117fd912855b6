"""WebPushProvider against the emulator's Web Push service over TLS (HTTP/2 offered), with its test outcomes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pushsvc import models
from pushsvc.channels.webpush.provider import WebPushProvider, render_webpush
from pushsvc.channels.webpush.vapid import VapidSigner, application_server_key
from pushsvc.clock import SystemClock
from pushsvc.providers.base import Delivery, Outcome
from pushsvc.providers.transport import Http2Transport, TlsConfig


@pytest.fixture
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _provider(
    emulator, key: ec.EllipticCurvePrivateKey, *, allowed: tuple[str, ...] = ("127.0.0.1",), **kw
) -> WebPushProvider:
    return WebPushProvider(
        transport=Http2Transport(tls=TlsConfig(ca_pem=emulator.ca_pem), request_timeout_s=5.0),
        signer=VapidSigner(key, "mailto:ops@example.com", SystemClock().time),
        allowed_hosts=allowed,
        default_ttl_s=3600,
        clock=SystemClock(),
        **kw,
    )


@pytest.fixture
async def provider(emulator, vapid_key) -> AsyncIterator[WebPushProvider]:
    provider = _provider(emulator, vapid_key)
    yield provider
    await provider.aclose()


def _delivery(subscription: dict, message: models.Message | None = None, **kw) -> Delivery:
    message = message or models.Message(title="Hi", body="there", data={"k": "v"}, collapse_key="news", priority=models.Priority.HIGH)
    return Delivery(token=json.dumps(subscription), rendered=render_webpush(message), **kw)


async def test_delivered_decrypted_and_in_the_inbox(provider, emulator, vapid_key) -> None:
    sub = emulator.subscribe_webpush(application_server_key(vapid_key))
    result = await provider.send(_delivery(sub))
    assert result.outcome is Outcome.DELIVERED and result.provider_status == 201
    assert result.provider_message_id.startswith(f"{emulator.webpush_url}/m/")
    [entry] = emulator.inbox.entries(platform="webpush", token=sub["endpoint"])
    assert entry.payload == {"title": "Hi", "body": "there", "tag": "news", "data": {"k": "v"}}
    assert entry.headers["urgency"] == "high" and entry.headers["topic"] == "news"
    assert entry.headers["ttl"] == "3600" and entry.headers["content-encoding"] == "aes128gcm"


async def test_ttl_is_the_time_left_before_expiry(provider, emulator, vapid_key) -> None:
    sub = emulator.subscribe_webpush()
    expires = SystemClock().now() + timedelta(seconds=120)
    assert (await provider.send(_delivery(sub, expires_at=expires))).outcome is Outcome.DELIVERED
    [entry] = emulator.inbox.entries(platform="webpush")
    assert 118 <= int(entry.headers["ttl"]) <= 120


@pytest.mark.parametrize(
    ("outcome", "expected", "status", "retry_after"),
    [
        ("410", Outcome.TOKEN_INVALID, 410, None),
        ("404", Outcome.TOKEN_INVALID, 404, None),
        ("413", Outcome.PERMANENT, 413, None),
        ("429", Outcome.RETRYABLE, 429, 1.0),
        ("500", Outcome.RETRYABLE, 500, 1.0),
        ("503", Outcome.RETRYABLE, 503, 1.0),
    ],
)
async def test_test_outcomes(provider, emulator, outcome, expected, status, retry_after) -> None:
    sub = emulator.subscribe_webpush(outcome=outcome)
    result = await provider.send(_delivery(sub))
    assert (result.outcome, result.provider_status, result.retry_after_s) == (expected, status, retry_after)
    assert not emulator.inbox.entries(platform="webpush")
    # The retryable outcomes answer once; the others every time.
    again = await provider.send(_delivery(sub))
    assert again.outcome is (Outcome.DELIVERED if expected is Outcome.RETRYABLE else expected)


async def test_another_vapid_key_than_the_subscriptions_is_credentials_rejected(provider, emulator) -> None:
    other = application_server_key(ec.generate_private_key(ec.SECP256R1()))
    result = await provider.send(_delivery(emulator.subscribe_webpush(other)))
    assert (result.outcome, result.provider_status, result.reason) == (Outcome.CREDENTIALS_REJECTED, 403, "VapidRejected")


async def test_an_unknown_subscription_is_token_invalid(provider, emulator) -> None:
    sub = emulator.subscribe_webpush()
    sub["endpoint"] = sub["endpoint"].rsplit("/", 1)[0] + "/never-minted"
    result = await provider.send(_delivery(sub))
    assert (result.outcome, result.provider_status) == (Outcome.TOKEN_INVALID, 404)


async def test_an_endpoint_off_the_allow_list_is_not_contacted(emulator, vapid_key) -> None:
    provider = _provider(emulator, vapid_key, allowed=("fcm.googleapis.com",))
    try:
        result = await provider.send(_delivery(emulator.subscribe_webpush()))
    finally:
        await provider.aclose()
    assert (result.outcome, result.reason, result.provider_status) == (Outcome.PERMANENT, "EndpointNotAllowed", 0)
    assert emulator.stats.webpush_requests == 0


async def test_a_stored_token_that_is_no_subscription_is_permanent(provider) -> None:
    rendered = render_webpush(models.Message(title="x"))
    result = await provider.send(Delivery(token='{"endpoint": "https://127.0.0.1/x"}', rendered=rendered))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "InvalidSubscription")


async def test_send_batch_gives_one_result_per_delivery_in_order(provider, emulator) -> None:
    subs = [emulator.subscribe_webpush(outcome=o) for o in ("", "410", "", "429", "")]
    results = await provider.send_batch([_delivery(s) for s in subs])
    assert [r.outcome for r in results] == [
        Outcome.DELIVERED, Outcome.TOKEN_INVALID, Outcome.DELIVERED, Outcome.RETRYABLE, Outcome.DELIVERED
    ]
    assert len(emulator.inbox.entries(platform="webpush")) == 3


async def test_a_connection_refused_is_retryable(vapid_key, emulator) -> None:
    provider = _provider(emulator, vapid_key)
    sub = emulator.subscribe_webpush()
    sub["endpoint"] = "https://127.0.0.1:1/wp/x"
    try:
        result = await provider.send(_delivery(sub))
    finally:
        await provider.aclose()
    assert result.outcome is Outcome.RETRYABLE and result.provider_status == 0


async def test_a_stored_key_off_the_curve_is_permanent_and_not_sent(provider, emulator) -> None:
    sub = emulator.subscribe_webpush()
    sub["keys"]["p256dh"] = "BA" + "A" * 85
    result = await provider.send(_delivery(sub))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "InvalidSubscription")
    assert emulator.stats.webpush_requests == 0


@pytest.mark.parametrize("cached", [0, 1, 100])
async def test_resends_to_the_same_subscriptions_are_each_decrypted(emulator, vapid_key, cached) -> None:
    # 0: nothing kept; 1: each send evicts the other subscription; 100: both kept.
    provider = _provider(emulator, vapid_key, max_cached_subscriptions=cached)
    first, second = emulator.subscribe_webpush(), emulator.subscribe_webpush()
    order = [first, second, first, first, second]
    try:
        for n, sub in enumerate(order):
            message = models.Message(title=f"send {n}")
            assert (await provider.send(_delivery(sub, message))).outcome is Outcome.DELIVERED
    finally:
        await provider.aclose()
    for sub in (first, second):
        titles = [e.payload["title"] for e in emulator.inbox.entries(platform="webpush", token=sub["endpoint"])]
        assert sorted(titles) == sorted(f"send {n}" for n, s in enumerate(order) if s is sub)


async def test_a_resent_key_off_the_curve_stays_permanent(provider, emulator) -> None:
    sub = emulator.subscribe_webpush()
    sub["keys"]["p256dh"] = "BA" + "A" * 85
    for _ in range(2):
        result = await provider.send(_delivery(sub))
        assert (result.outcome, result.reason) == (Outcome.PERMANENT, "InvalidSubscription")
    assert emulator.stats.webpush_requests == 0


async def test_a_batch_of_two_notifications_keeps_each_ones_payload_headers_and_ttl(provider, emulator) -> None:
    subs = [emulator.subscribe_webpush() for _ in range(4)]
    soon = SystemClock().now() + timedelta(seconds=120)
    urgent = models.Message(title="urgent", collapse_key="a", priority=models.Priority.HIGH)
    later = models.Message(title="later")
    # One rendered message per notification, shared by its deliveries, as the dispatcher hands them over.
    rendered = {id(urgent): render_webpush(urgent), id(later): render_webpush(later)}
    deliveries = [
        Delivery(token=json.dumps(sub), rendered=rendered[id(message)], expires_at=soon if message is urgent else None)
        for sub, message in zip(subs, (urgent, later, urgent, later), strict=True)
    ]
    assert [r.outcome for r in await provider.send_batch(deliveries)] == [Outcome.DELIVERED] * 4
    for sub, message in zip(subs, (urgent, later, urgent, later), strict=True):
        [entry] = emulator.inbox.entries(platform="webpush", token=sub["endpoint"])
        assert entry.payload == {"title": message.title, **({"tag": "a"} if message is urgent else {})}
        assert entry.headers["urgency"] == ("high" if message is urgent else "normal")
        assert entry.headers.get("topic") == ("a" if message is urgent else None)
        if message is urgent:
            assert 118 <= int(entry.headers["ttl"]) <= 120
        else:
            assert entry.headers["ttl"] == "3600"
