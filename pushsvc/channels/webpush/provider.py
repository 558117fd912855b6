"""The Web Push adapter: render once per notification, encrypt and send per subscription, classify.

`render_webpush` builds the plaintext (a JSON object a service worker reads
with `event.data.json()`) and the RFC 8030 headers that do not change per
subscription: Urgency from the priority, Topic from the collapse key.
`WebPushProvider.send` encrypts for the subscription's keys, signs VAPID for
its origin (cached per origin) and POSTs to the endpoint, byte-exact. Answers
(reference/protocols-webpush-hms.md §1.3):

- 201/202 (any 2xx): DELIVERED; the `Location` header is the message id;
- 404, 410: the subscription is gone: TOKEN_INVALID (removed);
- 401, 403: VAPID rejected: CREDENTIALS_REJECTED. Apple is said to answer 403
  for a revoked subscription too, but 403 is also a key mismatch, and pruning
  on it could delete every subscription of the app;
- 413: PERMANENT (Send rejects it first when the encrypted record is over 4096 bytes);
- 429, 5xx: RETRYABLE with Retry-After;
- anything else (400: a malformed request): PERMANENT.
"""

from __future__ import annotations

import base64
import collections
import enum
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pushsvc import models
from pushsvc.channels.webpush import crypto, subscription
from pushsvc.channels.webpush.vapid import VapidSigner
from pushsvc.clock import Clock
from pushsvc.providers import base, failures, rendering
from pushsvc.providers.transport import Transport, TransportError

MAX_TOPIC_CHARS = 32
"""RFC 8030 §5.4: a Topic is at most 32 characters of the URL-safe base64 alphabet."""
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_CACHED_SUBSCRIPTIONS = 10_000
"""Parsed subscriptions (with their loaded keys) a provider keeps for the next send to them.

A resend to a cached subscription skips parsing the stored JSON and loading
its public key (8-11% of a delivery's CPU in bench/webpush.py --resend). An
entry holds about 3 KiB with its token, so the bound keeps the cache near
30 MiB per app that sends Web Push."""
_CONTENT_HEADERS = ("content-type: application/octet-stream", "content-encoding: aes128gcm")
_Parsed = tuple[subscription.Subscription, ec.EllipticCurvePublicKey]
_URGENCY = {models.Priority.HIGH: "high", models.Priority.NORMAL: "normal", models.Priority.UNSPECIFIED: "normal"}


class WebPushReason(enum.StrEnum):
    """The reasons the Web Push adapter gives (push services answer with statuses, not reason codes)."""

    SUBSCRIPTION_GONE = "SubscriptionGone"
    """410."""
    SUBSCRIPTION_NOT_FOUND = "SubscriptionNotFound"
    """404."""
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    """413."""
    TOO_MANY_REQUESTS = "TooManyRequests"
    """429."""
    SERVICE_UNAVAILABLE = "PushServiceError"
    """5xx."""
    VAPID_REJECTED = "VapidRejected"
    """401 or 403."""
    BAD_REQUEST = "BadRequest"
    """400: a request the push service finds malformed."""
    UNEXPECTED_STATUS = "UnexpectedStatus"
    """Any other status."""
    INVALID_SUBSCRIPTION = "InvalidSubscription"
    """The stored token is not a usable subscription (nothing was sent)."""
    ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed"
    """The endpoint's host is not on the app's allow-list (nothing was sent)."""


def topic_of(collapse_key: str) -> str:
    """The RFC 8030 Topic for a collapse key: itself when it fits, else 32 characters of its SHA-256 (stable)."""
    if _TOPIC.fullmatch(collapse_key):
        return collapse_key
    digest = base64.urlsafe_b64encode(hashlib.sha256(collapse_key.encode()).digest()).decode()
    return digest[:MAX_TOPIC_CHARS]


def render_webpush(message: models.Message, *, notification_id: str = "") -> base.RenderedMessage:
    """The plaintext a service worker receives and the per-notification headers.

    The plaintext is compact JSON: `title`, `body`, `image`, `tag` (the collapse
    key, so a newer notification replaces the shown one), `badge`, `sound`,
    `data` (with the notification id under `rendering.NOTIFICATION_ID_KEY`
    when given). Its size is measured as the encrypted record the push
    service limits to 4096 bytes.
    """
    payload: dict[str, Any] = {}
    for name, value in (
        ("title", message.title), ("body", message.body), ("image", message.image_url),
        ("tag", message.collapse_key), ("sound", message.sound),
    ):
        if value:
            payload[name] = value
    if message.badge is not None:
        payload["badge"] = message.badge
    if message.data:
        payload["data"] = {str(key): str(value) for key, value in message.data.items()}
    if notification_id:
        payload.setdefault("data", {})[rendering.NOTIFICATION_ID_KEY] = notification_id
    text = rendering.compact_json(payload)
    headers = {"urgency": _URGENCY.get(message.priority, "normal")}
    if message.collapse_key:
        headers["topic"] = topic_of(message.collapse_key)
    return rendered_from_body({"payload": text, "headers": headers})


def rendered_from_body(body: Mapping[str, Any]) -> base.RenderedMessage:
    """The rendered message of a Web Push body (`render_webpush`'s, or one stored with a notification).

    Its size is the encrypted record's: the plaintext plus the aes128gcm overhead.
    """
    return base.RenderedMessage(
        platform=models.Platform.WEBPUSH,
        body=body,
        size_bytes=rendering.utf8_len(str(body["payload"])) + crypto.OVERHEAD_BYTES,
        limit_bytes=crypto.MAX_RECORD_BYTES,
    )


_O = base.Outcome
_R = WebPushReason


def classify_webpush_response(status: int, headers: Mapping[str, str], *, now: float) -> base.ProviderResult:
    """Maps one push-service answer onto a `ProviderResult` (pure; no I/O)."""
    if 200 <= status < 300:
        return base.ProviderResult(outcome=_O.DELIVERED, provider_status=status, provider_message_id=headers.get("location", ""))
    if status in (404, 410):
        reason = _R.SUBSCRIPTION_GONE if status == 410 else _R.SUBSCRIPTION_NOT_FOUND
        return base.ProviderResult(outcome=_O.TOKEN_INVALID, provider_status=status, reason=reason)
    if status in (401, 403):
        return base.ProviderResult(outcome=_O.CREDENTIALS_REJECTED, provider_status=status, reason=_R.VAPID_REJECTED)
    if status == 429 or status >= 500:
        return base.ProviderResult(
            outcome=_O.RETRYABLE,
            provider_status=status,
            reason=_R.TOO_MANY_REQUESTS if status == 429 else _R.SERVICE_UNAVAILABLE,
            retry_after_s=failures.parse_retry_after(headers.get("retry-after"), now=now),
        )
    reason = {413: _R.PAYLOAD_TOO_LARGE, 400: _R.BAD_REQUEST}.get(status, _R.UNEXPECTED_STATUS)
    return base.ProviderResult(outcome=_O.PERMANENT, provider_status=status, reason=reason)


class WebPushProvider:
    """Sends deliveries to the subscriptions' push services over one shared transport.

    Args:
        transport: HTTP/2 where the push service offers it, HTTP/1.1 otherwise
            (`Http2Transport` negotiates per origin); one for every origin.
        signer: The app's VAPID signer.
        allowed_hosts: Push-service hosts an endpoint may name (checked again
            at send: the list may have changed since registration).
        default_ttl_s: The TTL header when the notification has no expiry.
        clock: The process clock; it drives the remaining TTL and Retry-After dates.
        max_cached_subscriptions: How many parsed subscriptions (with loaded
            keys) to keep for later sends; 0 keeps none.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        signer: VapidSigner,
        allowed_hosts: Iterable[str],
        default_ttl_s: int,
        clock: Clock,
        max_cached_subscriptions: int = MAX_CACHED_SUBSCRIPTIONS,
    ) -> None:
        self._transport = transport
        self._signer = signer
        self._allowed = tuple(allowed_hosts)
        self._default_ttl_s = default_ttl_s
        self._clock = clock
        self._max_cached = max_cached_subscriptions
        self._parsed: collections.OrderedDict[str, _Parsed] = collections.OrderedDict()
        """Stored token -> its parsed subscription and loaded key, least recently sent first."""

    @property
    def platform(self) -> models.Platform:
        """Always `Platform.WEBPUSH`."""
        return models.Platform.WEBPUSH

    async def send(self, delivery: base.Delivery) -> base.ProviderResult:
        """Encrypts and sends one delivery; never raises for provider, network or subscription errors."""
        return (await self.send_batch((delivery,)))[0]

    async def send_batch(self, deliveries: Sequence[base.Delivery]) -> list[base.ProviderResult]:
        """Encrypts a batch and sends it as one `post_many`; one result per delivery, in order.

        A subscription that cannot be used gets its PERMANENT result at once and
        never reaches the transport; the rest cross to it together, as the
        APNs and FCM batches do (no task per delivery).
        """
        results: list[base.ProviderResult | None] = [None] * len(deliveries)
        requests: list[tuple[str, list[str], bytes]] = []
        sent: list[int] = []
        # A batch is mostly one notification to one push service or a few: its
        # plaintext and its header lines (TTL and each origin's Authorization
        # included) are built once and shared by the requests that match.
        shared: dict[tuple[int, datetime | None, str], tuple[bytes, list[str]]] = {}
        for index, delivery in enumerate(deliveries):
            rendered = delivery.rendered
            if rendered.platform is not models.Platform.WEBPUSH:
                raise ValueError(f"WebPushProvider cannot send a message rendered for {rendered.platform.value}")
            parsed = self._parse(delivery.token)
            if isinstance(parsed, base.ProviderResult):
                results[index] = parsed
                continue
            sub, key = parsed
            if not subscription.host_allowed(sub.host, self._allowed):
                results[index] = base.ProviderResult(outcome=_O.PERMANENT, reason=_R.ENDPOINT_NOT_ALLOWED)
                continue
            request = shared.get((id(rendered), delivery.expires_at, sub.origin))
            if request is None:
                request = shared[id(rendered), delivery.expires_at, sub.origin] = (
                    str(rendered.body["payload"]).encode(),
                    [
                        *_CONTENT_HEADERS,
                        f"ttl: {self._ttl_s(delivery)}",
                        f"authorization: {self._signer.authorization(sub.origin)}",
                        *(f"{name}: {value}" for name, value in rendered.body.get("headers", {}).items()),
                    ],
                )
            try:
                body = crypto.encrypt(request[0], sub.p256dh, sub.auth, key)
            except ValueError:
                # Not expected once the key has loaded; never let one subscription fail the batch.
                results[index] = base.ProviderResult(outcome=_O.PERMANENT, reason=_R.INVALID_SUBSCRIPTION)
                continue
            requests.append((sub.endpoint, request[1], body))
            sent.append(index)
        if requests:
            now = self._clock.time
            for index, answer in zip(sent, await self._transport.post_many(requests), strict=True):
                if isinstance(answer, TransportError):
                    results[index] = failures.transport_failure(answer)
                else:
                    results[index] = classify_webpush_response(answer.status, answer.headers, now=now())
        return results  # type: ignore[return-value]  # every delivery has its result by now

    def _parse(self, token: str) -> _Parsed | base.ProviderResult:
        """The token's subscription and loaded `p256dh` key (cached per token), or why it cannot be sent."""
        parsed = self._parsed.get(token)
        if parsed is not None:
            self._parsed.move_to_end(token)
            return parsed
        try:
            sub = subscription.parse(token, max_chars=1 << 20)
            key = crypto.load_public_key(sub.p256dh)
        except ValueError:
            # SubscriptionError, or a p256dh that is 65 bytes but not a point on the curve.
            return base.ProviderResult(outcome=_O.PERMANENT, reason=_R.INVALID_SUBSCRIPTION)
        if self._max_cached > 0:
            self._parsed[token] = parsed = (sub, key)
            if len(self._parsed) > self._max_cached:
                self._parsed.popitem(last=False)
        return sub, key

    def _ttl_s(self, delivery: base.Delivery) -> int:
        if delivery.expires_at is None:
            return self._default_ttl_s
        return max(0, math.ceil(delivery.expires_at.timestamp() - self._clock.time()))

    async def aclose(self) -> None:
        """Closes the transport and its connections."""
        await self._transport.aclose()

    async def __aenter__(self) -> WebPushProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
