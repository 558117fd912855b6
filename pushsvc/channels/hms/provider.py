"""The Huawei Push Kit adapter: render once, send up to 1,000 tokens per request, classify per token.

Result codes (reference/protocols-webpush-hms.md §2.3), as `HmsCode`:

- 80000000: every token DELIVERED;
- 80100000 (partial success): the tokens listed in `msg`'s `illegal_tokens`
  (a JSON string) are TOKEN_INVALID, the others DELIVERED and never resent
  (gorush resends the whole batch and duplicates them);
- 80300007 (all tokens invalid) is TOKEN_INVALID only once this provider has
  had a success: Huawei gives it for a wrong app id as well, and trusting it
  before the configuration is proven would prune every token of the app.
  Before that it is PERMANENT (`AllTokensInvalidUnconfirmed`);
- 80200001 and 80200003 (OAuth token rejected or expired): one new token and
  one resend, then CREDENTIALS_REJECTED; 80300002 and 80600003 are
  CREDENTIALS_REJECTED at once;
- 80100017, 81000001 and HTTP 429/5xx (503 is Huawei's flow control): RETRYABLE;
- anything else: PERMANENT.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pushsvc import models
from pushsvc.channels.hms.auth import HmsTokenSource, TokenUnavailable
from pushsvc.clock import Clock
from pushsvc.providers import base, failures, rendering
from pushsvc.providers.transport import Transport, TransportError

BODY_LIMIT_BYTES = 4096
"""Push Kit's limit on the request body, tokens excluded (80300008)."""
MAX_TOKENS_PER_REQUEST = 1000
MAX_TTL_S = 15 * 86400
"""Push Kit keeps a message at most 15 days."""


class HmsCode(enum.StrEnum):
    """Push Kit result codes pushsvc acts on, by the name receipts and metrics give them."""

    SUCCESS = "80000000"
    PARTIAL_SUCCESS = "80100000"
    PARAMETER_ERROR = "80100001"
    TOKEN_COUNT_MUST_BE_ONE = "80100002"
    BAD_MESSAGE_STRUCTURE = "80100003"
    TTL_IN_THE_PAST = "80100004"
    BAD_COLLAPSE_KEY = "80100013"
    SENSITIVE_CONTENT = "80100016"
    TOO_MANY_TOPIC_SENDS = "80100017"
    BODY_VERIFICATION_FAILED = "80100018"
    OAUTH_TOKEN_INVALID = "80200001"
    OAUTH_TOKEN_EXPIRED = "80200003"
    APP_NOT_ALLOWED = "80300002"
    ALL_TOKENS_INVALID = "80300007"
    BODY_TOO_LARGE = "80300008"
    TOKEN_COUNT_OUT_OF_RANGE = "80300010"
    NO_HIGH_PRIORITY_PERMISSION = "80300011"
    BAD_RECEIPT_URL = "80300013"
    OAUTH_SERVICE_FAILED = "80600003"
    INTERNAL_ERROR = "81000001"


REASONS = frozenset({
    *(f"Hms{c.name.title().replace('_', '')}" for c in HmsCode), "IllegalToken", "AllTokensInvalidUnconfirmed",
    *(f"HTTP_{status}" for status in (400, 401, 403, 404, 429, 500, 502, 503, 504)),
})
"""Every reason the adapter gives (`HmsAllTokensInvalid`, ...), the per-token `IllegalToken`, and the
statuses Push Kit documents, for an answer whose body holds no result code."""


def reason_of(code: str) -> str:
    """The receipt reason of a result code: its name, or `HMS_<code>` for an undocumented one."""
    try:
        return f"Hms{HmsCode(code).name.title().replace('_', '')}"
    except ValueError:
        return f"HMS_{code[:16]}"


_URGENCY = {models.Priority.HIGH: "HIGH", models.Priority.NORMAL: "NORMAL"}


def render_hms(message: models.Message, *, notification_id: str = "") -> base.RenderedMessage:
    """The v2 `message` object without its tokens; `data` is a JSON string, as Push Kit requires.

    A non-empty `notification_id` goes into `data` under `rendering.NOTIFICATION_ID_KEY`.
    """
    body: dict[str, Any] = {}
    notification = {k: v for k, v in (("title", message.title), ("body", message.body), ("image", message.image_url)) if v}
    android: dict[str, Any] = {}
    if notification:
        body["notification"] = notification
        # An Android notification needs a click action; 3 opens the app.
        android_notification: dict[str, Any] = {"click_action": {"type": 3}}
        if message.collapse_key:
            android_notification["tag"] = message.collapse_key
        if message.sound:
            android_notification["sound"] = message.sound
        if message.badge is not None:
            android_notification["badge"] = {"set_num": message.badge}
        android["notification"] = android_notification
    data = {str(k): str(v) for k, v in message.data.items()}
    if notification_id:
        data[rendering.NOTIFICATION_ID_KEY] = notification_id
    if data:
        body["data"] = rendering.compact_json(data)
    if message.priority in _URGENCY:
        android["urgency"] = _URGENCY[message.priority]
    if android:
        body["android"] = android
    return rendered_from_body(body)


def rendered_from_body(body: Mapping[str, Any]) -> base.RenderedMessage:
    """The rendered message of a v2 `message` body (`render_hms`'s, or one stored with a notification)."""
    size = rendering.utf8_len(rendering.compact_json({"validate_only": False, "message": body}))
    return base.RenderedMessage(platform=models.Platform.HMS, body=body, size_bytes=size, limit_bytes=BODY_LIMIT_BYTES)


_O = base.Outcome


class HmsProvider:
    """Sends deliveries to Push Kit's v2 API for one app.

    Args:
        transport: The HTTP/2 transport (HTTP/1.1 where h2 is not offered).
        base_url: e.g. https://push-api.cloud.huawei.com (or the emulator's URL).
        project_id: The AppGallery Connect project id.
        token_source: The app's access-token cache.
        clock: The process clock; it drives the remaining ttl and Retry-After dates.
    """

    def __init__(self, *, transport: Transport, base_url: str, project_id: str, token_source: HmsTokenSource, clock: Clock) -> None:
        self._transport = transport
        self._url = f"{base_url.rstrip('/')}/v2/{project_id}/messages:send"
        self._tokens = token_source
        self._clock = clock
        self._confirmed = False
        """A send succeeded: the app id and credentials are proven, so 80300007 can be believed."""

    @property
    def platform(self) -> models.Platform:
        """Always `Platform.HMS`."""
        return models.Platform.HMS

    async def send(self, delivery: base.Delivery) -> base.ProviderResult:
        """Sends one delivery (a batch of one)."""
        return (await self.send_batch([delivery]))[0]

    async def send_batch(self, deliveries: Sequence[base.Delivery]) -> list[base.ProviderResult]:
        """One request per 1,000 deliveries of the same rendered message; one result per delivery, in order."""
        if not deliveries:
            return []
        first = deliveries[0]
        rendered, expires_at = first.rendered, first.expires_at
        if all(d.rendered is rendered and d.expires_at == expires_at for d in deliveries):
            # The usual batch: one notification's deliveries. Its requests are
            # slices of the batch, and its results concatenate in order, with
            # no per-token grouping or index bookkeeping.
            if rendered.platform is not models.Platform.HMS:
                raise ValueError(f"HmsProvider cannot send a message rendered for {rendered.platform.value}")
            sent: list[base.ProviderResult] = []
            for start in range(0, len(deliveries), MAX_TOKENS_PER_REQUEST):
                sent += await self._send_chunk(deliveries[start : start + MAX_TOKENS_PER_REQUEST])
            return sent
        results: list[base.ProviderResult | None] = [None] * len(deliveries)
        groups: dict[tuple[int, float | None], list[int]] = {}
        for i, delivery in enumerate(deliveries):
            if delivery.rendered.platform is not models.Platform.HMS:
                raise ValueError(f"HmsProvider cannot send a message rendered for {delivery.rendered.platform.value}")
            expires = delivery.expires_at.timestamp() if delivery.expires_at is not None else None
            groups.setdefault((id(delivery.rendered), expires), []).append(i)
        for indexes in groups.values():
            for start in range(0, len(indexes), MAX_TOKENS_PER_REQUEST):
                chunk = indexes[start : start + MAX_TOKENS_PER_REQUEST]
                answers = await self._send_chunk([deliveries[i] for i in chunk])
                for i, result in zip(chunk, answers, strict=True):
                    results[i] = result
        return [r for r in results if r is not None]

    async def _send_chunk(self, chunk: Sequence[base.Delivery]) -> list[base.ProviderResult]:
        first = chunk[0]
        message = dict(first.rendered.body)
        message["token"] = [d.token for d in chunk]
        if first.expires_at is not None:
            ttl_s = min(MAX_TTL_S, max(1, math.ceil(first.expires_at.timestamp() - self._clock.time())))
            message["android"] = {**message.get("android", {}), "ttl": f"{ttl_s}s"}
        content = json.dumps({"validate_only": False, "message": message}, separators=(",", ":"), ensure_ascii=False).encode()
        for attempt in (1, 2):
            try:
                access_token = await self._tokens.access_token()
            except TokenUnavailable as exc:
                return [exc.result] * len(chunk)
            headers = ["content-type: application/json;charset=utf-8", f"authorization: Bearer {access_token}"]
            try:
                response = await self._transport.post(self._url, headers, content)
            except TransportError as exc:
                return [failures.transport_failure(exc)] * len(chunk)
            code, msg, request_id = _parse(response.body)
            if code in (HmsCode.OAUTH_TOKEN_INVALID, HmsCode.OAUTH_TOKEN_EXPIRED) and attempt == 1:
                self._tokens.invalidate(access_token)
                continue
            return self._classify(chunk, response.status, response.headers, code, msg, request_id)
        raise AssertionError("unreachable: the second attempt always returns")

    def _classify(
        self, chunk: Sequence[base.Delivery], status: int, headers: Mapping[str, str], code: str, msg: str, request_id: str
    ) -> list[base.ProviderResult]:
        n = len(chunk)
        if code == HmsCode.SUCCESS:
            self._confirmed = True
            return [base.ProviderResult(outcome=_O.DELIVERED, provider_status=status, provider_message_id=request_id)] * n
        if code == HmsCode.PARTIAL_SUCCESS:
            self._confirmed = True
            illegal = _illegal_tokens(msg)
            return [
                base.ProviderResult(outcome=_O.TOKEN_INVALID, provider_status=status, reason="IllegalToken")
                if d.token in illegal
                else base.ProviderResult(outcome=_O.DELIVERED, provider_status=status, provider_message_id=request_id)
                for d in chunk
            ]
        if code == HmsCode.ALL_TOKENS_INVALID:
            if self._confirmed:
                return [base.ProviderResult(outcome=_O.TOKEN_INVALID, provider_status=status, reason=reason_of(code))] * n
            return [base.ProviderResult(outcome=_O.PERMANENT, provider_status=status, reason="AllTokensInvalidUnconfirmed")] * n
        reason = reason_of(code) if code else f"HTTP_{status}"
        if code in (HmsCode.OAUTH_TOKEN_INVALID, HmsCode.OAUTH_TOKEN_EXPIRED, HmsCode.APP_NOT_ALLOWED, HmsCode.OAUTH_SERVICE_FAILED) or (
            not code and status in (401, 403)
        ):
            outcome = _O.CREDENTIALS_REJECTED
        elif code in (HmsCode.TOO_MANY_TOPIC_SENDS, HmsCode.INTERNAL_ERROR) or status == 429 or status >= 500:
            outcome = _O.RETRYABLE
        else:
            outcome = _O.PERMANENT
        retry_after = failures.parse_retry_after(headers.get("retry-after"), now=self._clock.time()) if outcome is _O.RETRYABLE else None
        return [base.ProviderResult(outcome=outcome, provider_status=status, reason=reason, retry_after_s=retry_after)] * n

    async def aclose(self) -> None:
        """Closes the transport (shared with the token source)."""
        await self._transport.aclose()


def _parse(body: bytes) -> tuple[str, str, str]:
    # Parsed whatever the status: which status carries which code is undocumented.
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", "", ""
    if not isinstance(value, dict):
        return "", "", ""
    code, msg, request_id = value.get("code"), value.get("msg"), value.get("requestId")
    return (str(code) if isinstance(code, str | int) else "", msg if isinstance(msg, str) else "",
            request_id if isinstance(request_id, str) else "")


def _illegal_tokens(msg: str) -> frozenset[str]:
    # 80100000's msg is a JSON *string*: {"success":3,"failure":1,"illegal_tokens":[...]}.
    try:
        value = json.loads(msg)
    except (ValueError, TypeError):
        return frozenset()
    tokens = value.get("illegal_tokens") if isinstance(value, dict) else None
    return frozenset(t for t in tokens if isinstance(t, str)) if isinstance(tokens, list) else frozenset()
