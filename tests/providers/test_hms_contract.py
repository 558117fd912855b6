"""HmsProvider against the emulator's Push Kit over TLS: batches, partial success, the 80300007 guard, OAuth."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from pushsvc import models
from pushsvc.channels.hms.auth import HmsTokenSource
from pushsvc.channels.hms.provider import HmsProvider, render_hms
from pushsvc.clock import SystemClock
from pushsvc.emulator.hms import HmsClient
from pushsvc.providers.base import Delivery, Outcome
from pushsvc.providers.transport import Http2Transport, TlsConfig

CLIENT = HmsClient(client_id="103456789", client_secret="s3cret", project_id="736430079244623135")


def _provider(emulator, *, secret: str = CLIENT.client_secret) -> tuple[HmsProvider, HmsTokenSource]:
    transport = Http2Transport(tls=TlsConfig(ca_pem=emulator.ca_pem), request_timeout_s=5.0)
    tokens = HmsTokenSource(transport=transport, token_url=f"{emulator.hms_url}/oauth2/v3/token",
                            client_id=CLIENT.client_id, client_secret=secret, clock=SystemClock())
    provider = HmsProvider(transport=transport, base_url=emulator.hms_url, project_id=CLIENT.project_id,
                           token_source=tokens, clock=SystemClock())
    return provider, tokens


@pytest.fixture
async def hms(emulator) -> AsyncIterator[tuple[HmsProvider, HmsTokenSource]]:
    emulator.add_hms_client(CLIENT)
    provider, tokens = _provider(emulator)
    yield provider, tokens
    await provider.aclose()


MESSAGE = render_hms(models.Message(title="Hi", body="there", data={"k": "v"}, priority=models.Priority.HIGH, collapse_key="c"))


def _batch(*tokens: str) -> list[Delivery]:
    return [Delivery(token=t, rendered=MESSAGE) for t in tokens]


async def test_a_batch_is_one_request_and_every_token_is_delivered(hms, emulator) -> None:
    provider, tokens = hms
    results = await provider.send_batch(_batch("tok/1+a==", "tok-2", "tok-3"))
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3
    assert len({r.provider_message_id for r in results}) == 1 and results[0].provider_message_id
    entries = emulator.inbox.entries(platform="hms")
    assert sorted(e.token for e in entries) == ["tok-2", "tok-3", "tok/1+a=="]
    payload = entries[0].payload
    assert payload["notification"] == {"title": "Hi", "body": "there"} and json.loads(payload["data"]) == {"k": "v"}
    assert payload["android"]["urgency"] == "HIGH" and payload["android"]["notification"]["tag"] == "c"
    assert emulator.stats.hms_requests == 2 and tokens.fetches == 1  # one token fetch, one send


async def test_partial_success_marks_only_the_illegal_tokens_and_resends_nothing(hms, emulator) -> None:
    provider, _ = hms
    results = await provider.send_batch(_batch("good-1", "invalid-1", "good-2"))
    assert [(r.outcome, r.reason) for r in results] == [
        (Outcome.DELIVERED, ""), (Outcome.TOKEN_INVALID, "IllegalToken"), (Outcome.DELIVERED, "")
    ]
    assert sorted(e.token for e in emulator.inbox.entries(platform="hms")) == ["good-1", "good-2"]
    assert emulator.stats.hms_requests == 2


async def test_all_tokens_invalid_prunes_only_once_the_configuration_is_proven(hms) -> None:
    provider, _ = hms
    [before] = await provider.send_batch(_batch("invalid-a"))
    assert (before.outcome, before.reason) == (Outcome.PERMANENT, "AllTokensInvalidUnconfirmed")
    assert (await provider.send(_batch("fine")[0])).outcome is Outcome.DELIVERED
    [after] = await provider.send_batch(_batch("invalid-b"))
    assert (after.outcome, after.reason) == (Outcome.TOKEN_INVALID, "HmsAllTokensInvalid")


async def test_an_expired_access_token_is_refreshed_once(hms, emulator) -> None:
    provider, tokens = hms
    assert (await provider.send(_batch("a")[0])).outcome is Outcome.DELIVERED
    emulator.hms.expire_tokens()
    assert (await provider.send(_batch("b")[0])).outcome is Outcome.DELIVERED
    assert tokens.fetches == 2


async def test_a_wrong_secret_is_credentials_rejected(emulator) -> None:
    emulator.add_hms_client(CLIENT)
    provider, _ = _provider(emulator, secret="wrong")
    try:
        result = await provider.send(_batch("a")[0])
    finally:
        await provider.aclose()
    assert (result.outcome, result.provider_status, result.reason) == (Outcome.CREDENTIALS_REJECTED, 400, "OAuthRefreshError")


@pytest.mark.parametrize(("token", "status", "reason"), [("ratelimit-1", 503, "HTTP_503"), ("internal-1", 500, "HmsInternalError")])
async def test_flow_control_and_internal_errors_are_retryable(hms, token, status, reason) -> None:
    provider, _ = hms
    result = await provider.send(_batch(token)[0])
    assert (result.outcome, result.provider_status, result.reason) == (Outcome.RETRYABLE, status, reason)
    assert (await provider.send(_batch(token)[0])).outcome is Outcome.DELIVERED


async def test_more_than_1000_tokens_go_in_requests_of_1000(hms, emulator) -> None:
    provider, _ = hms
    results = await provider.send_batch(_batch(*(f"t{i}" for i in range(2100))))
    assert all(r.outcome is Outcome.DELIVERED for r in results) and len(results) == 2100
    assert emulator.stats.hms_requests == 1 + 3


async def test_retry_after_is_honoured(hms) -> None:
    provider, _ = hms
    result = await provider.send(_batch("ratelimit-2")[0])
    assert result.retry_after_s == 1.0


def test_the_rendered_body_counts_what_push_kit_limits() -> None:
    small = render_hms(models.Message(title="t"))
    assert small.limit_bytes == 4096
    assert small.size_bytes == len(json.dumps({"validate_only": False, "message": small.body}, separators=(",", ":")))
    big = render_hms(models.Message(body="x" * 4096))
    assert big.size_bytes > big.limit_bytes


async def test_results_stay_in_order_across_requests_of_1000(hms, emulator) -> None:
    provider, _ = hms
    tokens = [f"invalid-{i}" if i in (3, 1500, 2099) else f"t{i}" for i in range(2100)]
    results = await provider.send_batch(_batch(*tokens))
    assert [i for i, r in enumerate(results) if r.outcome is Outcome.TOKEN_INVALID] == [3, 1500, 2099]
    assert sum(r.outcome is Outcome.DELIVERED for r in results) == 2097
    assert emulator.stats.hms_requests == 1 + 3


async def test_a_batch_of_two_notifications_is_one_request_each_with_results_in_order(hms, emulator) -> None:
    provider, _ = hms
    other = render_hms(models.Message(title="Other"))
    soon = SystemClock().now() + timedelta(seconds=300)
    batch = [Delivery(token="good-1", rendered=MESSAGE), Delivery(token="invalid-1", rendered=other),
             Delivery(token="invalid-2", rendered=MESSAGE), Delivery(token="good-2", rendered=other),
             Delivery(token="good-3", rendered=MESSAGE, expires_at=soon)]
    results = await provider.send_batch(batch)
    assert [r.outcome for r in results] == [
        Outcome.DELIVERED, Outcome.TOKEN_INVALID, Outcome.TOKEN_INVALID, Outcome.DELIVERED, Outcome.DELIVERED
    ]
    entries = {e.token: e.payload for e in emulator.inbox.entries(platform="hms")}
    assert sorted(entries) == ["good-1", "good-2", "good-3"]
    assert entries["good-1"]["notification"]["title"] == "Hi" and entries["good-2"]["notification"]["title"] == "Other"
    assert "ttl" not in entries["good-1"]["android"] and entries["good-3"]["android"]["ttl"] in ("299s", "300s")
    assert emulator.stats.hms_requests == 1 + 3  # one token fetch; one request per (message, expiry)
