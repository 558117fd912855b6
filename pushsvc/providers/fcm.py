"""The FCM HTTP v1 adapter: render once per notification, send a batch of tokens at once, classify each.

`render_fcm` builds the v1 `message` object without a target;
`FcmProvider.send_batch` serializes it once per notification and ttl second
around the token (each request's body is that text with the token spliced in),
adds the remaining ttl, POSTs the batch through the transport's `post_many` to
`/v1/projects/<id>/messages:send` and classifies the `google.rpc.Status` error
body (reference/protocols.md §B.4–B.6):

- `FcmError.errorCode` decides when present (`ERROR_CODE_OUTCOMES`);
- INVALID_ARGUMENT is TOKEN_INVALID only when it concerns the token: an
  `ApnsError` relaying a dead APNs token (410, BadDeviceToken, Unregistered...)
  or a message that mentions the registration token;
- without an FcmError the HTTP status decides: a 401 is an OAuth failure
  (refresh the access token and retry once, then CREDENTIALS_REJECTED), a 403
  an IAM failure (CREDENTIALS_REJECTED), 429 and 5xx RETRYABLE;
- a 404 *without* an FcmError is PERMANENT, not TOKEN_INVALID: it is what a
  wrong project id or URL produces, and reading it as "token dead" would delete
  every token of the app.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from typing import Any

import google.auth.exceptions

from pushsvc import models
from pushsvc.clock import Clock
from pushsvc.providers import aps, base, credentials, failures, fcm_auth, rendering
from pushsvc.providers.transport import NO_DEFAULT_HEADERS, Transport, TransportError

MESSAGE_LIMIT_BYTES = 4096
"""FCM's documented payload limit, applied to the whole message object."""
MAX_TTL_S = 2_419_200
"""FCM's largest ttl: four weeks."""

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
APNS_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.ApnsError"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"


class FcmErrorCode(enum.StrEnum):
    """Every `FcmError.errorCode` FCM documents (§B.5)."""

    UNSPECIFIED_ERROR = "UNSPECIFIED_ERROR"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNREGISTERED = "UNREGISTERED"
    SENDER_ID_MISMATCH = "SENDER_ID_MISMATCH"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"
    THIRD_PARTY_AUTH_ERROR = "THIRD_PARTY_AUTH_ERROR"
    APNS_AUTH_ERROR = "APNS_AUTH_ERROR"
    """Deprecated name of THIRD_PARTY_AUTH_ERROR; still seen."""


_O = base.Outcome
ERROR_CODE_OUTCOMES: Mapping[str, base.Outcome] = {
    FcmErrorCode.UNREGISTERED: _O.TOKEN_INVALID,
    # The token belongs to another Firebase project: it can never work here.
    FcmErrorCode.SENDER_ID_MISMATCH: _O.TOKEN_INVALID,
    # Refined by _concerns_token: only a bad token makes it TOKEN_INVALID.
    FcmErrorCode.INVALID_ARGUMENT: _O.PERMANENT,
    FcmErrorCode.QUOTA_EXCEEDED: _O.RETRYABLE,
    FcmErrorCode.UNAVAILABLE: _O.RETRYABLE,
    FcmErrorCode.INTERNAL: _O.RETRYABLE,
    # The project's APNs/Web Push credentials are rejected: stop the notification.
    FcmErrorCode.THIRD_PARTY_AUTH_ERROR: _O.CREDENTIALS_REJECTED,
    FcmErrorCode.APNS_AUTH_ERROR: _O.CREDENTIALS_REJECTED,
    FcmErrorCode.UNSPECIFIED_ERROR: _O.PERMANENT,
}
"""The outcome of every documented FCM error code."""

DEAD_APNS_TOKEN_REASONS = aps.DEAD_TOKEN_REASONS
"""APNs reasons relayed in an ApnsError that mean the token is dead."""

_TARGET_KEYS = ("token", "topic", "condition", "fid")

_STATIC_HEADERS = ("content-type: application/json", *NO_DEFAULT_HEADERS)

_NO_HEADERS: Mapping[str, str] = {}

_TEMPLATE_CACHE_SIZE = 64
"""Request bodies around the token kept: a few per notification in flight (the ttl changes every second)."""

_ANDROID_PRIORITY = {models.Priority.HIGH: "HIGH", models.Priority.NORMAL: "NORMAL"}


def render_fcm(message: models.Message, *, notification_id: str = "") -> base.RenderedMessage:
    """Renders a message as an FCM v1 `message` object without a target.

    Contains notification {title, body, image}, data, android {priority,
    collapse_key, notification {sound, tag, click_action}}, apns {headers,
    payload {aps}}, fcm_options {analytics_label}; then `message.fcm.android`,
    `.apns` and `.webpush` are deep-merged on top (their keys win). The ttl is
    not rendered: it is the *remaining* time, computed at send.

    The Android notification `tag` is the collapse key, so a newer notification
    replaces the displayed one as apns-collapse-id does on iOS.

    A non-empty `notification_id` goes into `data` under
    `rendering.NOTIFICATION_ID_KEY`, so the app (and the emulator's inbox) can
    tell which of pushsvc's notifications a message belongs to.
    """
    push_type = message.effective_push_type()
    body: dict[str, Any] = {}

    notification: dict[str, str] = {}
    if message.title:
        notification["title"] = message.title
    if message.body:
        notification["body"] = message.body
    if message.image_url:
        notification["image"] = message.image_url
    if notification:
        body["notification"] = notification
    if message.data:
        body["data"] = {str(key): str(value) for key, value in message.data.items()}
    if notification_id:
        body.setdefault("data", {})[rendering.NOTIFICATION_ID_KEY] = notification_id

    android: dict[str, Any] = {}
    if message.priority in _ANDROID_PRIORITY:
        android["priority"] = _ANDROID_PRIORITY[message.priority]
    if message.collapse_key:
        android["collapse_key"] = message.collapse_key
    android_notification: dict[str, Any] = {}
    if message.sound:
        android_notification["sound"] = message.sound
    if message.title_loc_key:
        android_notification["title_loc_key"] = message.title_loc_key
    if message.title_loc_args:
        android_notification["title_loc_args"] = list(message.title_loc_args)
    if message.body_loc_key:
        android_notification["body_loc_key"] = message.body_loc_key
    if message.body_loc_args:
        android_notification["body_loc_args"] = list(message.body_loc_args)
    if message.collapse_key:
        android_notification["tag"] = message.collapse_key
    if message.category:
        android_notification["click_action"] = message.category
    if android_notification:
        android["notification"] = android_notification
    if android:
        body["android"] = android

    apns_headers = {
        "apns-priority": aps.apns_priority(message.priority, push_type),
        "apns-push-type": push_type.value,
    }
    if message.collapse_key:
        apns_headers["apns-collapse-id"] = message.collapse_key
    body["apns"] = {
        "headers": apns_headers,
        # FCM builds alert.title/body from `notification`; only the subtitle goes here.
        "payload": {"aps": aps.aps_dictionary(message, push_type, with_alert=False)},
    }
    if message.fcm.analytics_label:
        body["fcm_options"] = {"analytics_label": message.fcm.analytics_label}

    for block, override in (
        ("android", message.fcm.android),
        ("apns", message.fcm.apns),
        ("webpush", message.fcm.webpush),
    ):
        if override:
            body[block] = rendering.deep_merge(body.get(block, {}), override)

    return rendered_from_body(body)


def rendered_from_body(body: Mapping[str, Any]) -> base.RenderedMessage:
    """The rendered message of an FCM body (`render_fcm`'s, or one stored with a notification): its size measured again."""
    return base.RenderedMessage(
        platform=models.Platform.FCM,
        body=body,
        size_bytes=rendering.utf8_len(rendering.compact_json(body)),
        limit_bytes=MESSAGE_LIMIT_BYTES,
    )


def classify_fcm_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
) -> base.ProviderResult:
    """Maps one FCM response onto a `ProviderResult` (pure; no I/O).

    A 401 without an FcmError comes back as CREDENTIALS_REJECTED with reason
    UNAUTHENTICATED; `FcmProvider` refreshes its access token and retries once
    before accepting that.
    """
    parsed = _parse_json(body)
    if status == 200:
        name = parsed.get("name") if isinstance(parsed, dict) else None
        return base.ProviderResult(
            outcome=base.Outcome.DELIVERED,
            provider_status=200,
            provider_message_id=name if isinstance(name, str) else "",
        )
    error = parsed.get("error") if isinstance(parsed, dict) else None
    error = error if isinstance(error, dict) else {}
    rpc_status = _text(error.get("status"))
    message = _text(error.get("message"))
    error_code, apns_error, error_info_reason = _details(error.get("details"))

    if error_code:
        outcome = ERROR_CODE_OUTCOMES.get(error_code)
        if error_code == FcmErrorCode.INVALID_ARGUMENT and _concerns_token(message, apns_error):
            outcome = base.Outcome.TOKEN_INVALID
        if outcome is None:
            outcome = base.Outcome.RETRYABLE if status >= 500 or status == 429 else base.Outcome.PERMANENT
        reason = error_code
    else:
        reason = rpc_status or error_info_reason or f"HTTP_{status}"
        if status == 401 or status == 403:
            # OAuth (401) or IAM (403) failure of our own credentials; an OAuth
            # 401 may just be an access token revoked or expired early.
            outcome = base.Outcome.CREDENTIALS_REJECTED
        elif status == 429 or status >= 500:
            outcome = base.Outcome.RETRYABLE
        elif status == 400 and _concerns_token(message, apns_error):
            outcome = base.Outcome.TOKEN_INVALID
        else:
            outcome = base.Outcome.PERMANENT

    retry_after = None
    if outcome is base.Outcome.RETRYABLE:
        retry_after = failures.parse_retry_after(headers.get("retry-after"), now=now)
    return base.ProviderResult(
        outcome=outcome,
        provider_status=status,
        reason=reason,
        retry_after_s=retry_after,
        credential_stale=status == 401 and not error_code,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _parse_json(body: bytes) -> Any:
    if not body:
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}


def _details(details: Any) -> tuple[str, dict[str, Any] | None, str]:
    """Returns (FcmError.errorCode, ApnsError detail, ErrorInfo.reason) from google.rpc.Status details."""
    error_code = ""
    apns_error: dict[str, Any] | None = None
    error_info_reason = ""
    if not isinstance(details, list):
        return error_code, apns_error, error_info_reason
    for detail in details:
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        if kind == FCM_ERROR_TYPE and isinstance(detail.get("errorCode"), str):
            error_code = detail["errorCode"]
        elif kind == APNS_ERROR_TYPE:
            apns_error = detail
        elif kind == ERROR_INFO_TYPE and isinstance(detail.get("reason"), str):
            error_info_reason = detail["reason"]
    return error_code, apns_error, error_info_reason


def _concerns_token(message: str, apns_error: Mapping[str, Any] | None) -> bool:
    if apns_error is not None:
        # camelCase on the wire; the reference page shows snake_case, accept both.
        code = apns_error.get("statusCode", apns_error.get("status_code"))
        if code in (410, "410") or apns_error.get("reason") in DEAD_APNS_TOKEN_REASONS:
            return True
    return "registration token" in message.lower()


class FcmProvider:
    """Sends deliveries to FCM HTTP v1 over an injected HTTP/2 transport.

    Args:
        transport: The HTTP/2 transport (`Http2Transport`).
        base_url: e.g. https://fcm.googleapis.com (or the emulator's URL).
        project_id: The Firebase project id.
        token_source: The project's shared access-token cache.
        clock: The process clock; it drives the remaining ttl and Retry-After dates.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        base_url: str,
        project_id: str,
        token_source: fcm_auth.FcmAccessTokenSource,
        clock: Clock,
    ) -> None:
        self._transport = transport
        self._url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._token_source = token_source
        self._clock = clock
        self._templates: dict[tuple[int, datetime | None, int | None], tuple[Mapping[str, Any], str, str]] = {}
        """The body around the token per rendered message, expiry and ttl; keyed by id() and checked by identity."""

    @property
    def platform(self) -> models.Platform:
        """Always `Platform.FCM`."""
        return models.Platform.FCM

    async def send(self, delivery: base.Delivery) -> base.ProviderResult:
        """Sends one delivery (a batch of one; see `send_batch`)."""
        return (await self.send_batch((delivery,)))[0]

    async def send_batch(self, deliveries: Sequence[base.Delivery]) -> list[base.ProviderResult]:
        """Sends every delivery as one batch; never raises for provider or network errors.

        Retries once, with a newly fetched access token, the requests answered
        with an OAuth 401 (together, as one smaller batch).
        """
        now = self._clock.time()
        bodies: list[bytes] = []
        last: tuple[object, datetime | None] | None = None
        head = tail = ""
        for delivery in deliveries:
            rendered = delivery.rendered
            if rendered.platform is not models.Platform.FCM:
                raise ValueError(f"FcmProvider cannot send a message rendered for {rendered.platform.value}")
            if last is None or last[0] is not rendered.body or last[1] != delivery.expires_at:
                # The message around the token is serialized once per notification (and ttl second).
                head, tail = self._template(rendered, delivery.expires_at, now)
                last = (rendered.body, delivery.expires_at)
            token = delivery.token
            if not (token.isascii() and token.isprintable() and '"' not in token and "\\" not in token):
                token = json.dumps(token, ensure_ascii=False)[1:-1]
            bodies.append((head + token + tail).encode())
        url = self._url

        async def send(access_token: str | None, indices: Sequence[int]) -> list[base.ProviderResult]:
            headers = [*_STATIC_HEADERS, f"authorization: Bearer {access_token}"]
            answers = await self._transport.post_many([(url, headers, bodies[i]) for i in indices])
            out: list[base.ProviderResult] = []
            for answer in answers:
                if isinstance(answer, TransportError):
                    out.append(failures.transport_failure(answer))
                else:
                    # Only a retryable answer's Retry-After is read from the headers: parse them for errors only.
                    found = answer.headers if answer.status != 200 else _NO_HEADERS
                    out.append(classify_fcm_response(answer.status, answer.body, found, now=self._clock.time()))
            return out

        return await credentials.send_batch_authorized(send, self._authorize, self._reject, len(bodies))

    def _template(self, rendered: base.RenderedMessage, expires_at: datetime | None, now: float) -> tuple[str, str]:
        """The request body around the token, as text: `{"message":{...,"token":"` and `"}}`."""
        ttl_s = None if expires_at is None else min(MAX_TTL_S, max(0, math.ceil(expires_at.timestamp() - now)))
        key = (id(rendered.body), expires_at, ttl_s)
        cached = self._templates.get(key)
        if cached is not None and cached[0] is rendered.body:
            return cached[1], cached[2]
        message = self._message(rendered.body, expires_at, ttl_s)
        message["token"] = ""
        text = json.dumps({"message": message}, separators=(",", ":"), ensure_ascii=False)
        assert text.endswith('"token":""}}')
        head, tail = text[:-3], text[-3:]
        if len(self._templates) >= _TEMPLATE_CACHE_SIZE:
            self._templates.pop(next(iter(self._templates)))
        self._templates[key] = (rendered.body, head, tail)
        return head, tail

    def _authorize(self) -> str | Awaitable[str]:
        cached = self._token_source.cached()
        return cached if cached is not None else self._fetch()

    async def _fetch(self) -> str:
        try:
            return await self._token_source.access_token()
        except google.auth.exceptions.RefreshError as exc:
            # retryable: the token endpoint was busy (5xx/429); otherwise it
            # refused the service account itself.
            outcome = base.Outcome.RETRYABLE if exc.retryable else base.Outcome.CREDENTIALS_REJECTED
            raise credentials.CredentialUnavailable(base.ProviderResult(outcome=outcome, reason="OAuthRefreshError")) from None
        except google.auth.exceptions.TransportError:
            raise credentials.CredentialUnavailable(
                base.ProviderResult(outcome=base.Outcome.RETRYABLE, reason="OAuthTransportError")
            ) from None
        except TimeoutError:
            raise credentials.CredentialUnavailable(
                base.ProviderResult(outcome=base.Outcome.RETRYABLE, reason="OAuthTimeout")
            ) from None

    def _reject(self, access_token: str) -> None:
        self._token_source.invalidate(rejected=access_token)

    @staticmethod
    def _message(body: Mapping[str, Any], expires_at: datetime | None, ttl_s: int | None) -> dict[str, Any]:
        message = {key: value for key, value in body.items() if key not in _TARGET_KEYS and key != "token"}
        if expires_at is not None and ttl_s is not None:
            message["android"] = {**message.get("android", {}), "ttl": f"{ttl_s}s"}
            apns_block = dict(message.get("apns", {}))
            apns_block["headers"] = {
                **apns_block.get("headers", {}),
                "apns-expiration": str(max(0, int(expires_at.timestamp()))),
            }
            message["apns"] = apns_block
        return message

    async def aclose(self) -> None:
        """Closes the transport and its connections (the token source is shared and stays open)."""
        await self._transport.aclose()

    async def __aenter__(self) -> FcmProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
