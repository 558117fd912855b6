"""ApnsProvider against the emulator over TLS + HTTP/2, through the real transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushsvc import models
from pushsvc.clock import SystemClock
from pushsvc.providers.apns import ApnsProvider, render_apns
from pushsvc.providers.apns_jwt import ApnsTokenSigner
from pushsvc.providers.base import Delivery, Outcome
from pushsvc.providers.transport import Http2Transport, TlsConfig

OK = "ab" * 32


def _hex(prefix: str, n: int = 0) -> str:
    return (prefix + f"{n:04x}" + "cd" * 32)[:64]


@pytest.fixture
def signer(demo, emu_clock) -> ApnsTokenSigner:
    return ApnsTokenSigner(demo.apns_key_file.read_bytes(), demo.apns_key_id, demo.apns_team_id, clock=emu_clock)


def _make(emulator, signer: ApnsTokenSigner | None, request_timeout_s: float = 5.0) -> ApnsProvider:
    return ApnsProvider(
        transport=Http2Transport(tls=TlsConfig(ca_pem=emulator.ca_pem), request_timeout_s=request_timeout_s),
        production_url=emulator.apns_url,
        sandbox_url=emulator.apns_sandbox_url,
        signer=signer,
        clock=SystemClock(),
    )


@pytest.fixture
async def provider(emulator, signer) -> AsyncIterator[ApnsProvider]:
    provider = _make(emulator, signer)
    yield provider
    await provider.aclose()


def _delivery(demo, token: str = OK, message: models.Message | None = None, **kwargs) -> Delivery:
    message = message or models.Message(title="Hello", body="World", badge=0, data={"k": "v"})
    return Delivery(token=token, rendered=render_apns(message, bundle_id=demo.apns_bundle_id), **kwargs)


async def test_delivered_and_in_the_inbox(provider, demo, emulator) -> None:
    result = await provider.send(_delivery(demo))
    assert (result.outcome, result.provider_status) == (Outcome.DELIVERED, 200)
    [entry] = emulator.inbox.entries(platform="apns", token=OK)
    assert entry.message_id == result.provider_message_id
    assert entry.environment == "production"
    assert entry.payload == {"aps": {"alert": {"title": "Hello", "body": "World"}, "badge": 0}, "k": "v"}
    assert entry.headers["apns-topic"] == demo.apns_bundle_id
    assert entry.headers["apns-push-type"] == "alert"


async def test_sandbox_environment(provider, demo, emulator) -> None:
    result = await provider.send(_delivery(demo, apns_environment=models.ApnsEnvironment.SANDBOX))
    assert result.outcome is Outcome.DELIVERED
    assert emulator.inbox.entries(platform="apns")[0].environment == "sandbox"


async def test_unregistered_410_carries_its_timestamp(provider, demo, emu_clock) -> None:
    result = await provider.send(_delivery(demo, _hex("0410")))
    assert (result.outcome, result.provider_status, result.reason) == (Outcome.TOKEN_INVALID, 410, "Unregistered")
    assert result.invalid_since is not None
    assert abs(result.invalid_since.timestamp() - emu_clock.now) < 0.002


@pytest.mark.parametrize(
    ("prefix", "outcome", "status", "reason"),
    [
        ("0400", Outcome.TOKEN_INVALID, 400, "BadDeviceToken"),
        ("0403", Outcome.PERMANENT, 403, "Forbidden"),
    ],
)
async def test_permanent_test_tokens(provider, demo, prefix, outcome, status, reason) -> None:
    result = await provider.send(_delivery(demo, _hex(prefix)))
    assert (result.outcome, result.provider_status, result.reason) == (outcome, status, reason)


@pytest.mark.parametrize(
    ("prefix", "status", "reason"),
    [("0429", 429, "TooManyRequests"), ("0503", 503, "ServiceUnavailable"), ("0500", 500, "InternalServerError")],
)
async def test_retryable_test_tokens_then_delivered(provider, demo, prefix, status, reason) -> None:
    token = _hex(prefix)
    first = await provider.send(_delivery(demo, token))
    assert (first.outcome, first.provider_status, first.reason) == (Outcome.RETRYABLE, status, reason)
    second = await provider.send(_delivery(demo, token))
    assert second.outcome is Outcome.DELIVERED


async def test_non_hex_token_is_bad_device_token(provider, demo) -> None:
    result = await provider.send(_delivery(demo, "not-a-hex-token"))
    assert (result.outcome, result.reason) == (Outcome.TOKEN_INVALID, "BadDeviceToken")


async def test_payload_limits_match_the_rendered_size(provider, demo) -> None:
    big = models.Message(body="x" * 4500)
    rendered = render_apns(big, bundle_id=demo.apns_bundle_id)
    assert rendered.size_bytes > rendered.limit_bytes
    result = await provider.send(Delivery(token=OK, rendered=rendered))
    assert (result.outcome, result.provider_status, result.reason) == (Outcome.PERMANENT, 413, "PayloadTooLarge")

    voip = models.Message(body="x" * 4500, push_type=models.PushType.VOIP)
    rendered = render_apns(voip, bundle_id=demo.apns_bundle_id)
    assert rendered.size_bytes <= rendered.limit_bytes == 5120
    result = await provider.send(Delivery(token=OK, rendered=rendered))
    assert result.outcome is Outcome.DELIVERED


@pytest.mark.parametrize("push_type", [t for t in models.PushType if t not in (models.PushType.UNSPECIFIED, models.PushType.MDM)])
async def test_every_push_type_topic_is_accepted(provider, demo, push_type) -> None:
    result = await provider.send(_delivery(demo, message=models.Message(title="x", push_type=push_type)))
    assert result.outcome is Outcome.DELIVERED, result


async def test_background_priority_is_accepted(provider, demo, emulator) -> None:
    message = models.Message(data={"sync": "1"}, priority=models.Priority.HIGH)
    result = await provider.send(_delivery(demo, message=message))
    assert result.outcome is Outcome.DELIVERED
    assert emulator.inbox.entries()[0].headers["apns-priority"] == "5"


async def test_unknown_key_is_credentials_rejected(emulator, demo) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = ApnsTokenSigner(stranger, demo.apns_key_id, demo.apns_team_id)
    async with _make(emulator, signer) as provider:
        result = await provider.send(_delivery(demo))
    assert (result.outcome, result.provider_status, result.reason) == (
        Outcome.CREDENTIALS_REJECTED, 403, "InvalidProviderToken"
    )


async def test_expired_provider_token_gets_a_fresh_jwt_and_one_retry(emulator, demo, emu_clock) -> None:
    # The signer's clock lags APNs's by 70 minutes until it is asked a third time:
    # the cached JWT looks fresh to the signer but is expired for APNs.
    start = emu_clock.now
    readings = iter([start, start])

    def lagging_clock() -> float:
        return next(readings, emu_clock.now)

    signer = ApnsTokenSigner(demo.apns_key_file.read_bytes(), demo.apns_key_id, demo.apns_team_id, clock=lagging_clock)
    async with _make(emulator, signer) as provider:
        assert (await provider.send(_delivery(demo))).outcome is Outcome.DELIVERED
        emu_clock.advance(70 * 60)
        result = await provider.send(_delivery(demo))
    assert result.outcome is Outcome.DELIVERED
    assert signer.mint_count == 2
    assert len(emulator.inbox.entries()) == 2
    # The second request went out twice: once rejected, once accepted.
    assert emulator.stats.apns_requests == 3


async def test_expired_provider_token_twice_is_credentials_rejected(emulator, demo, emu_clock) -> None:
    frozen = emu_clock.now
    signer = ApnsTokenSigner(demo.apns_key_file.read_bytes(), demo.apns_key_id, demo.apns_team_id, clock=lambda: frozen)
    async with _make(emulator, signer) as provider:
        emu_clock.advance(70 * 60)
        result = await provider.send(_delivery(demo))
    assert (result.outcome, result.reason) == (Outcome.CREDENTIALS_REJECTED, "ExpiredProviderToken")
    assert emulator.stats.apns_requests == 2


async def test_one_jwt_shared_by_concurrent_sends_on_both_hosts_and_refreshed_in_window(
    provider, signer, demo, emulator, emu_clock
) -> None:
    environments = [models.ApnsEnvironment.PRODUCTION, models.ApnsEnvironment.SANDBOX]
    deliveries = [_delivery(demo, _hex("ab", i), apns_environment=environments[i % 2]) for i in range(100)]
    results = await asyncio.gather(*(provider.send(d) for d in deliveries))
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert signer.mint_count == 1

    emu_clock.advance(21 * 60)  # past the 20-minute floor, before the refresh age
    results = await asyncio.gather(*(provider.send(d) for d in deliveries[:20]))
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert signer.mint_count == 1

    emu_clock.advance(30 * 60)  # 51 minutes: one new JWT, accepted on both existing connections
    results = await asyncio.gather(*(provider.send(d) for d in deliveries[:40]))
    assert {r.outcome for r in results} == {Outcome.DELIVERED}, {r.reason for r in results}
    assert signer.mint_count == 2


async def test_stream_limit_first_send_then_many_concurrent(provider, demo, emulator) -> None:
    # A fresh token-auth connection allows 1 stream until a valid JWT is seen;
    # 300 sends at once must queue for it, then use the raised limit.
    deliveries = [_delivery(demo, _hex("ab", i)) for i in range(300)]
    results = await asyncio.gather(*(provider.send(d) for d in deliveries))
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 300
    assert len(emulator.inbox.entries(platform="apns")) == 300


async def test_goaway_is_retryable_then_recovers_on_a_new_connection(provider, demo, emulator) -> None:
    emulator.faults.goaway_after = 3
    results = []
    for i in range(6):
        results.append(await provider.send(_delivery(demo, _hex("ab", i))))
    results += await asyncio.gather(*(provider.send(_delivery(demo, _hex("cd", i))) for i in range(30)))
    assert {r.outcome for r in results} <= {Outcome.DELIVERED, Outcome.RETRYABLE}
    assert all(r.provider_status == 0 for r in results if r.outcome is Outcome.RETRYABLE)
    # Sequential sends see each GOAWAY before sending again: none is lost.
    assert [r.outcome for r in results[:6]] == [Outcome.DELIVERED] * 6
    emulator.faults.goaway_after = 0
    assert (await provider.send(_delivery(demo))).outcome is Outcome.DELIVERED


async def test_connection_reset_is_retryable_then_recovers(provider, demo, emulator) -> None:
    # The emulator drops the connection when the 3rd request arrives, without
    # processing it: an unknown outcome for the client, retryable; the next
    # request goes out on a new connection.
    emulator.faults.reset_after = 2
    tokens = [_hex("ab", i) for i in range(4)]
    outcomes = [(await provider.send(_delivery(demo, token))) for token in tokens]
    assert [r.outcome for r in outcomes[:2]] == [Outcome.DELIVERED] * 2
    assert outcomes[2].outcome is Outcome.RETRYABLE and outcomes[2].provider_status == 0
    assert outcomes[2].reason == "ConnectionLost (outcome unknown)"
    assert outcomes[3].outcome is Outcome.DELIVERED  # a new connection
    assert sorted(entry.token for entry in emulator.inbox.entries(platform="apns")) == sorted(tokens[:2] + tokens[3:])


async def test_latency_beyond_the_deadline_is_retryable(emulator, signer, demo) -> None:
    emulator.faults.latency_s = 1.0
    provider = _make(emulator, signer, request_timeout_s=0.2)
    async with provider:
        result = await provider.send(_delivery(demo))
        assert (result.outcome, result.reason) == (Outcome.RETRYABLE, "Timeout (outcome unknown)")
        emulator.faults.latency_s = 0.0
        assert (await provider.send(_delivery(demo))).outcome is Outcome.DELIVERED
