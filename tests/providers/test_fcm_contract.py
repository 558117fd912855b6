"""FcmProvider and FcmAccessTokenSource against the emulator over TLS + HTTP/2, with both transports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from pushsvc import models
from pushsvc.clock import SystemClock
from pushsvc.providers.base import Delivery, Outcome
from pushsvc.providers.fcm import FcmProvider, render_fcm
from pushsvc.providers.fcm_auth import FcmAccessTokenSource
from pushsvc.providers.transport import Http2Transport, TlsConfig


def _source(demo, emulator, clock) -> FcmAccessTokenSource:
    return FcmAccessTokenSource.from_service_account_file(demo.fcm_service_account_file, ca_pem=emulator.ca_pem, clock=clock)


def _make(emulator, demo, source: FcmAccessTokenSource) -> FcmProvider:
    return FcmProvider(
        transport=Http2Transport(tls=TlsConfig(ca_pem=emulator.ca_pem), request_timeout_s=5.0),
        base_url=emulator.fcm_url,
        project_id=demo.fcm_project_id,
        token_source=source,
        clock=SystemClock(),
    )


@pytest.fixture
def source(demo, emulator, emu_clock) -> FcmAccessTokenSource:
    source = _source(demo, emulator, emu_clock)
    yield source
    source.close()


@pytest.fixture
async def provider(emulator, demo, source) -> AsyncIterator[FcmProvider]:
    provider = _make(emulator, demo, source)
    yield provider
    await provider.aclose()


def _delivery(token: str = "device-1", message: models.Message | None = None) -> Delivery:
    message = message or models.Message(title="Hi", body="there", data={"k": "v"}, badge=0)
    return Delivery(token=token, rendered=render_fcm(message))


async def test_delivered_and_in_the_inbox(provider, emulator, demo) -> None:
    result = await provider.send(_delivery())
    assert result.outcome is Outcome.DELIVERED
    assert result.provider_message_id.startswith(f"projects/{demo.fcm_project_id}/messages/")
    [entry] = emulator.inbox.entries(platform="fcm", token="device-1")
    assert entry.message_id == result.provider_message_id
    assert entry.payload["notification"] == {"title": "Hi", "body": "there"}
    assert entry.payload["data"] == {"k": "v"}
    assert entry.payload["apns"]["payload"]["aps"]["badge"] == 0


@pytest.mark.parametrize(
    ("token", "outcome", "status", "reason"),
    [
        ("unregistered-1", Outcome.TOKEN_INVALID, 404, "UNREGISTERED"),
        ("invalid-1", Outcome.TOKEN_INVALID, 400, "INVALID_ARGUMENT"),
        ("mismatch-1", Outcome.TOKEN_INVALID, 403, "SENDER_ID_MISMATCH"),
        ("apns-disabled-1", Outcome.TOKEN_INVALID, 400, "INVALID_ARGUMENT"),
        ("thirdparty-1", Outcome.CREDENTIALS_REJECTED, 401, "THIRD_PARTY_AUTH_ERROR"),
    ],
)
async def test_permanent_error_shapes(provider, source, token, outcome, status, reason) -> None:
    result = await provider.send(_delivery(token))
    assert (result.outcome, result.provider_status, result.reason) == (outcome, status, reason)
    # THIRD_PARTY_AUTH_ERROR is a 401 with an FcmError: not an OAuth failure, no token refresh.
    assert source.refresh_count == 1


@pytest.mark.parametrize(
    ("token", "status", "reason", "retry_after"),
    [
        ("quota-1", 429, "QUOTA_EXCEEDED", 1.0),
        ("ratelimit-1", 429, "RESOURCE_EXHAUSTED", 1.0),
        ("unavailable-1", 503, "UNAVAILABLE", 1.0),
        ("internal-1", 500, "INTERNAL", None),
    ],
)
async def test_retryable_error_shapes_then_delivered(provider, token, status, reason, retry_after) -> None:
    first = await provider.send(_delivery(token))
    assert (first.outcome, first.provider_status, first.reason, first.retry_after_s) == (
        Outcome.RETRYABLE, status, reason, retry_after
    )
    assert (await provider.send(_delivery(token))).outcome is Outcome.DELIVERED


async def test_size_limit_agrees_with_the_emulator(provider) -> None:
    def padded(total: int) -> models.Message:
        base = render_fcm(models.Message(title="x", data={"pad": ""})).size_bytes
        return models.Message(title="x", data={"pad": "p" * (total - base)})

    exact = render_fcm(padded(4096))
    assert exact.size_bytes == 4096 == exact.limit_bytes
    assert (await provider.send(Delivery(token="device-2", rendered=exact))).outcome is Outcome.DELIVERED
    over = render_fcm(padded(4097))
    assert over.size_bytes == 4097
    result = await provider.send(Delivery(token="device-2", rendered=over))
    assert (result.outcome, result.provider_status, result.reason) == (Outcome.PERMANENT, 400, "INVALID_ARGUMENT")


async def test_many_sends_one_access_token_then_refresh_before_expiry(
    provider, emulator, source, emu_clock, access_token_lifetime_s
) -> None:
    results = await asyncio.gather(*(provider.send(_delivery(f"device-{i}")) for i in range(100)))
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert emulator.stats.oauth_tokens_issued == 1
    # The token lives access_token_lifetime_s - 1 s; the source refreshes 300 s early.
    emu_clock.advance(access_token_lifetime_s - 1 - 300 - 5)
    await asyncio.gather(*(provider.send(_delivery(f"device-{i}")) for i in range(20)))
    assert emulator.stats.oauth_tokens_issued == 1
    emu_clock.advance(10)
    results = await asyncio.gather(*(provider.send(_delivery(f"device-{i}")) for i in range(20)))
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert emulator.stats.oauth_tokens_issued == 2


async def test_oauth_401_refreshes_and_retries_once(emulator, demo, emu_clock, FakeClock, access_token_lifetime_s) -> None:
    # The source's clock stands still, so it keeps serving a token the emulator has expired.
    source = _source(demo, emulator, FakeClock(now=emu_clock.now))
    async with _make(emulator, demo, source) as provider:
        assert (await provider.send(_delivery())).outcome is Outcome.DELIVERED
        emu_clock.advance(access_token_lifetime_s + 1)
        result = await provider.send(_delivery())
    source.close()
    assert result.outcome is Outcome.DELIVERED
    assert emulator.stats.oauth_tokens_issued == 2
    assert emulator.stats.fcm_requests == 3


async def test_oauth_401_that_persists_is_credentials_rejected(emulator, demo, emu_clock, FakeClock) -> None:
    source = _source(demo, emulator, FakeClock(now=emu_clock.now))
    async with _make(emulator, demo, source) as provider:
        await provider.send(_delivery())
        # A foreign project: the emulator answers 403 PERMISSION_DENIED without FcmError.
        foreign = FcmProvider(
            transport=Http2Transport(tls=TlsConfig(ca_pem=emulator.ca_pem), request_timeout_s=5.0),
            base_url=emulator.fcm_url,
            project_id="someone-else",
            token_source=source,
            clock=SystemClock(),
        )
        async with foreign:
            result = await foreign.send(_delivery())
    source.close()
    assert (result.outcome, result.provider_status, result.reason) == (
        Outcome.CREDENTIALS_REJECTED, 403, "PERMISSION_DENIED"
    )


async def test_unknown_service_account_is_credentials_rejected(emulator, demo, tmp_path) -> None:
    info = json.loads(demo.fcm_service_account_file.read_text())
    info["client_email"] = "stranger@elsewhere.iam.gserviceaccount.com"
    source = FcmAccessTokenSource.from_service_account_info(info, ca_pem=emulator.ca_pem)
    async with _make(emulator, demo, source) as provider:
        result = await provider.send(_delivery())
    source.close()
    assert (result.outcome, result.reason) == (Outcome.CREDENTIALS_REJECTED, "OAuthRefreshError")


async def test_many_concurrent_sends(provider, emulator) -> None:
    results = await asyncio.gather(*(provider.send(_delivery(f"device-{i}")) for i in range(300)))
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 300
    assert len(emulator.inbox.entries(platform="fcm")) == 300


async def test_connection_reset_is_retryable_then_recovers(provider, emulator) -> None:
    emulator.faults.reset_after = 2
    results = [await provider.send(_delivery(f"device-{i}")) for i in range(4)]
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.RETRYABLE, Outcome.DELIVERED]
    assert results[2].provider_status == 0
    assert results[2].reason == "ConnectionLost (outcome unknown)"
    assert sorted(entry.token for entry in emulator.inbox.entries(platform="fcm")) == ["device-0", "device-1", "device-3"]


async def test_goaway_then_recovery(provider, emulator) -> None:
    emulator.faults.goaway_after = 2
    results = [await provider.send(_delivery(f"device-{i}")) for i in range(5)]
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 5
    results = await asyncio.gather(*(provider.send(_delivery(f"device-{i}")) for i in range(20)))
    assert {r.outcome for r in results} <= {Outcome.DELIVERED, Outcome.RETRYABLE}
    emulator.faults.goaway_after = 0
    assert (await provider.send(_delivery())).outcome is Outcome.DELIVERED
