"""The APNs adapter: render once per notification, send per token, classify the answer.

Rendering (`render_apns`) builds the JSON payload and the static headers once;
`ApnsProvider.send` adds the per-send headers (authorization, apns-id,
apns-expiration), POSTs to `/3/device/<token>` and maps the answer onto an
`Outcome` through one table (`REASON_OUTCOMES`) that lists every reason Apple
documents (reference/protocols.md §A.9).

Decisions the table encodes, beyond Apple's own words:

- `ExpiredProviderToken` is retried once inside `send` with a freshly minted
  JWT (the only retry an adapter does); a second one is CREDENTIALS_REJECTED.
- `UnrelatedKeyIdInToken` means "this connection belongs to another key". The
  composition root gives each signing key its own `httpx.AsyncClient`, so it
  can only mean the key's relation changed on Apple's side: a credential
  problem, and retrying would hammer APNs with every token. CREDENTIALS_REJECTED.
- `Forbidden` is PERMANENT: Apple says don't retry, but it names an action, not
  the credentials, so it must not fail the whole notification.
- A reason missing from the table is classified by status: 5xx and 429
  RETRYABLE, 410 TOKEN_INVALID (the status alone says the token is dead),
  anything else PERMANENT.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import ssl
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pushsvc import models
from pushsvc.providers import apns_jwt, base, failures, rendering

PAYLOAD_LIMIT_BYTES = 4096
"""APNs payload limit for every push type except VoIP."""
VOIP_PAYLOAD_LIMIT_BYTES = 5120
"""APNs payload limit for VoIP pushes."""

TOPIC_SUFFIXES: Mapping[models.PushType, str] = {
    models.PushType.VOIP: ".voip",
    models.PushType.LIVEACTIVITY: ".push-type.liveactivity",
    models.PushType.COMPLICATION: ".complication",
    models.PushType.FILEPROVIDER: ".pushkit.fileprovider",
    models.PushType.LOCATION: ".location-query",
    models.PushType.PUSHTOTALK: ".voip-ptt",
    models.PushType.WIDGETS: ".push-type.widgets",
    models.PushType.CONTROLS: ".push-type.controls",
}
"""`apns-topic` suffix appended to the bundle id per push type (§A.3); others use the bare bundle id."""


class ApnsReason(enum.StrEnum):
    """Every `reason` string APNs documents for the device-push API (§A.9)."""

    BAD_COLLAPSE_ID = "BadCollapseId"
    BAD_DEVICE_TOKEN = "BadDeviceToken"
    BAD_EXPIRATION_DATE = "BadExpirationDate"
    BAD_MESSAGE_ID = "BadMessageId"
    BAD_PRIORITY = "BadPriority"
    BAD_TOPIC = "BadTopic"
    DEVICE_TOKEN_NOT_FOR_TOPIC = "DeviceTokenNotForTopic"
    DUPLICATE_HEADERS = "DuplicateHeaders"
    IDLE_TIMEOUT = "IdleTimeout"
    INVALID_PUSH_TYPE = "InvalidPushType"
    MISSING_DEVICE_TOKEN = "MissingDeviceToken"
    MISSING_TOPIC = "MissingTopic"
    PAYLOAD_EMPTY = "PayloadEmpty"
    TOPIC_DISALLOWED = "TopicDisallowed"
    BAD_CERTIFICATE = "BadCertificate"
    BAD_CERTIFICATE_ENVIRONMENT = "BadCertificateEnvironment"
    EXPIRED_PROVIDER_TOKEN = "ExpiredProviderToken"
    FORBIDDEN = "Forbidden"
    INVALID_PROVIDER_TOKEN = "InvalidProviderToken"
    MISSING_PROVIDER_TOKEN = "MissingProviderToken"
    UNRELATED_KEY_ID_IN_TOKEN = "UnrelatedKeyIdInToken"
    BAD_ENVIRONMENT_KEY_ID_IN_TOKEN = "BadEnvironmentKeyIdInToken"
    BAD_ENVIRONMENT_KEY_IN_TOKEN = "BadEnvironmentKeyInToken"
    """The spelling seen relayed through FCM; Apple's page says ...KeyIdInToken."""
    BAD_PATH = "BadPath"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    EXPIRED_TOKEN = "ExpiredToken"
    UNREGISTERED = "Unregistered"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    TOO_MANY_PROVIDER_TOKEN_UPDATES = "TooManyProviderTokenUpdates"
    TOO_MANY_REQUESTS = "TooManyRequests"
    INTERNAL_SERVER_ERROR = "InternalServerError"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    SHUTDOWN = "Shutdown"


_O = base.Outcome
REASON_OUTCOMES: Mapping[str, base.Outcome] = {
    # The token is dead or belongs to another app: delete it.
    ApnsReason.UNREGISTERED: _O.TOKEN_INVALID,
    ApnsReason.EXPIRED_TOKEN: _O.TOKEN_INVALID,
    ApnsReason.BAD_DEVICE_TOKEN: _O.TOKEN_INVALID,
    ApnsReason.DEVICE_TOKEN_NOT_FOR_TOPIC: _O.TOKEN_INVALID,
    # Back off and retry; IdleTimeout and Shutdown just need a new connection.
    ApnsReason.TOO_MANY_REQUESTS: _O.RETRYABLE,
    ApnsReason.TOO_MANY_PROVIDER_TOKEN_UPDATES: _O.RETRYABLE,
    ApnsReason.INTERNAL_SERVER_ERROR: _O.RETRYABLE,
    ApnsReason.SERVICE_UNAVAILABLE: _O.RETRYABLE,
    ApnsReason.SHUTDOWN: _O.RETRYABLE,
    ApnsReason.IDLE_TIMEOUT: _O.RETRYABLE,
    # The app's credentials are wrong: stop the whole notification.
    ApnsReason.INVALID_PROVIDER_TOKEN: _O.CREDENTIALS_REJECTED,
    ApnsReason.MISSING_PROVIDER_TOKEN: _O.CREDENTIALS_REJECTED,
    ApnsReason.BAD_CERTIFICATE: _O.CREDENTIALS_REJECTED,
    ApnsReason.BAD_CERTIFICATE_ENVIRONMENT: _O.CREDENTIALS_REJECTED,
    ApnsReason.BAD_ENVIRONMENT_KEY_ID_IN_TOKEN: _O.CREDENTIALS_REJECTED,
    ApnsReason.BAD_ENVIRONMENT_KEY_IN_TOKEN: _O.CREDENTIALS_REJECTED,
    ApnsReason.UNRELATED_KEY_ID_IN_TOKEN: _O.CREDENTIALS_REJECTED,
    # Only reached after the one retry with a fresh JWT failed too.
    ApnsReason.EXPIRED_PROVIDER_TOKEN: _O.CREDENTIALS_REJECTED,
    # Request or payload bugs: retrying the same bytes cannot help.
    ApnsReason.FORBIDDEN: _O.PERMANENT,
    ApnsReason.PAYLOAD_TOO_LARGE: _O.PERMANENT,
    ApnsReason.BAD_COLLAPSE_ID: _O.PERMANENT,
    ApnsReason.BAD_EXPIRATION_DATE: _O.PERMANENT,
    ApnsReason.BAD_MESSAGE_ID: _O.PERMANENT,
    ApnsReason.BAD_PRIORITY: _O.PERMANENT,
    ApnsReason.BAD_TOPIC: _O.PERMANENT,
    ApnsReason.DUPLICATE_HEADERS: _O.PERMANENT,
    ApnsReason.INVALID_PUSH_TYPE: _O.PERMANENT,
    ApnsReason.MISSING_DEVICE_TOKEN: _O.PERMANENT,
    ApnsReason.MISSING_TOPIC: _O.PERMANENT,
    ApnsReason.PAYLOAD_EMPTY: _O.PERMANENT,
    ApnsReason.TOPIC_DISALLOWED: _O.PERMANENT,
    ApnsReason.BAD_PATH: _O.PERMANENT,
    ApnsReason.METHOD_NOT_ALLOWED: _O.PERMANENT,
}
"""The outcome of every documented APNs reason."""


def render_apns(message: models.Message, *, bundle_id: str) -> base.RenderedMessage:
    """Renders a message for APNs once per notification.

    The payload is `aps` (alert, badge, sound, category, thread-id,
    content-available, mutable-content), then `message.data` as top-level
    custom keys, then `message.apns.payload` deep-merged on top (its keys win).
    The headers are apns-push-type, apns-priority, apns-topic and
    apns-collapse-id, then `message.apns.headers` (which win).

    A background push is always sent with priority 5 (priority 10 is an error
    for Apple) and always carries content-available: 1, without which iOS
    drops it.

    Args:
        message: The platform-neutral message.
        bundle_id: The app's bundle id; the topic is derived from it unless
            `message.apns.topic` is set.

    Returns:
        The rendered message; body is {"headers": {...}, "payload": "<json>"}.

    Raises:
        ValueError: `message.data` uses the reserved key "aps".
    """
    if "aps" in message.data:
        raise ValueError('"aps" is reserved in APNs payloads and cannot be a data key')
    push_type = message.effective_push_type()
    payload: dict[str, Any] = {"aps": aps_dictionary(message, push_type)}
    payload.update(message.data)
    if message.apns.payload:
        payload = rendering.deep_merge(payload, message.apns.payload)
    payload_text = rendering.compact_json(payload)

    headers: dict[str, str] = {
        "apns-push-type": push_type.value,
        "apns-priority": apns_priority(message.priority, push_type),
        "apns-topic": message.apns.topic or bundle_id + TOPIC_SUFFIXES.get(push_type, ""),
    }
    if message.collapse_key:
        headers["apns-collapse-id"] = message.collapse_key
    headers.update({name.lower(): str(value) for name, value in message.apns.headers.items()})
    if headers.get("apns-push-type") == models.PushType.BACKGROUND.value and headers.get("apns-priority") == "10":
        headers["apns-priority"] = "5"

    limit = VOIP_PAYLOAD_LIMIT_BYTES if headers.get("apns-push-type") == models.PushType.VOIP.value else PAYLOAD_LIMIT_BYTES
    return base.RenderedMessage(
        platform=models.Platform.APNS,
        body={"headers": headers, "payload": payload_text},
        size_bytes=rendering.utf8_len(payload_text),
        limit_bytes=limit,
    )


def apns_priority(priority: models.Priority, push_type: models.PushType) -> str:
    """The apns-priority header value: "10" or "5"; background pushes are always "5"."""
    if push_type is models.PushType.BACKGROUND:
        return "5"
    if priority is models.Priority.NORMAL:
        return "5"
    return "10"


def aps_dictionary(message: models.Message, push_type: models.PushType, *, with_alert: bool = True) -> dict[str, Any]:
    """The `aps` dictionary of a message, shared with the FCM renderer's apns block.

    Args:
        message: The message.
        push_type: Its effective push type.
        with_alert: Include title and body in `alert` (FCM fills those from its
            own `notification` block, so it passes False and keeps the subtitle).
    """
    aps: dict[str, Any] = {}
    alert: dict[str, str] = {}
    if with_alert and message.title:
        alert["title"] = message.title
    if message.subtitle:
        alert["subtitle"] = message.subtitle
    if with_alert and message.body:
        alert["body"] = message.body
    if alert:
        aps["alert"] = alert
    if message.badge is not None:
        aps["badge"] = message.badge
    if message.sound:
        aps["sound"] = message.sound
    if message.category:
        aps["category"] = message.category
    if message.thread_id:
        aps["thread-id"] = message.thread_id
    if message.content_available or push_type is models.PushType.BACKGROUND:
        aps["content-available"] = 1
    if message.mutable_content:
        aps["mutable-content"] = 1
    return aps


def classify_apns_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    apns_id: str = "",
) -> base.ProviderResult:
    """Maps one APNs response onto a `ProviderResult` (pure; no I/O).

    Args:
        status: The HTTP status.
        body: The response body ({"reason": ..., "timestamp": ...} on errors).
        headers: Response headers (lowercase names).
        now: Epoch seconds, for Retry-After dates.
        apns_id: The apns-id that was sent, used when the response lacks one.

    Returns:
        The classified result; reason is the APNs reason string.
    """
    message_id = headers.get("apns-id", apns_id)
    if status == 200:
        return base.ProviderResult(outcome=base.Outcome.DELIVERED, provider_status=200, provider_message_id=message_id)
    reason, timestamp_ms = _parse_error_body(body)
    outcome = REASON_OUTCOMES.get(reason)
    if outcome is None:
        if status >= 500 or status == 429:
            outcome = base.Outcome.RETRYABLE
        elif status == 410:
            outcome = base.Outcome.TOKEN_INVALID
        else:
            outcome = base.Outcome.PERMANENT
    invalid_since = None
    if status == 410 and timestamp_ms is not None:
        invalid_since = datetime.fromtimestamp(timestamp_ms / 1000, tz=timezone.utc)
    retry_after = None
    if outcome is base.Outcome.RETRYABLE:
        retry_after = failures.parse_retry_after(headers.get("retry-after"), now=now)
    return base.ProviderResult(
        outcome=outcome,
        provider_status=status,
        reason=reason,
        provider_message_id=message_id,
        retry_after_s=retry_after,
        invalid_since=invalid_since,
    )


def _parse_error_body(body: bytes) -> tuple[str, int | None]:
    try:
        parsed = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        return "", None
    if not isinstance(parsed, dict):
        return "", None
    reason = parsed.get("reason")
    timestamp = parsed.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        timestamp = None
    return (reason if isinstance(reason, str) else ""), (int(timestamp) if timestamp is not None else None)


class ApnsProvider:
    """Sends deliveries to APNs over an injected HTTP/2 client.

    One instance serves one app (one signing key or one client certificate).
    Give each instance its own `httpx.AsyncClient`: APNs binds a connection to
    the team and key of its first push (UnrelatedKeyIdInToken otherwise), and a
    certificate lives in the client's TLS context.

    Args:
        client: An HTTP/2 client (see `make_http_client`); for certificate
            auth it must have been built with `apns_client_tls_context`.
        production_url: Base URL for production tokens, e.g. https://api.push.apple.com.
        sandbox_url: Base URL for sandbox tokens.
        signer: The key's shared JWT signer, or None for certificate auth.
        request_timeout_s: Deadline for one request, including its one
            ExpiredProviderToken retry each.
        clock: Epoch seconds; used for Retry-After dates.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        production_url: str,
        sandbox_url: str,
        signer: apns_jwt.ApnsTokenSigner | None,
        request_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._urls = {
            models.ApnsEnvironment.PRODUCTION: production_url.rstrip("/"),
            models.ApnsEnvironment.SANDBOX: sandbox_url.rstrip("/"),
        }
        self._signer = signer
        self._timeout_s = request_timeout_s
        self._clock = clock

    @property
    def platform(self) -> models.Platform:
        """Always `Platform.APNS`."""
        return models.Platform.APNS

    async def send(self, delivery: base.Delivery) -> base.ProviderResult:
        """Sends one delivery; never raises for provider or network errors.

        Retries once, with a freshly minted JWT, on 403 ExpiredProviderToken.
        """
        rendered = delivery.rendered
        if rendered.platform is not models.Platform.APNS:
            raise ValueError(f"ApnsProvider cannot send a message rendered for {rendered.platform.value}")
        apns_id = str(uuid.uuid4())
        headers = dict(rendered.body["headers"])
        headers["apns-id"] = apns_id
        if delivery.expires_at is not None:
            headers["apns-expiration"] = str(max(0, int(delivery.expires_at.timestamp())))
        payload = str(rendered.body["payload"]).encode("utf-8")
        url = f"{self._urls[delivery.apns_environment]}/3/device/{urllib.parse.quote(delivery.token, safe='')}"

        authorization = self._signer.authorization() if self._signer is not None else None
        result = await self._post(url, headers, payload, authorization, apns_id)
        if result.reason == ApnsReason.EXPIRED_PROVIDER_TOKEN and self._signer is not None:
            # Apple: regenerate the token and resend. Other tasks that got the
            # same 403 reuse the token minted by the first one.
            authorization = self._signer.force_refresh(rejected=authorization)
            result = await self._post(url, headers, payload, authorization, apns_id)
        return result

    async def _post(
        self,
        url: str,
        headers: dict[str, str],
        payload: bytes,
        authorization: str | None,
        apns_id: str,
    ) -> base.ProviderResult:
        if authorization is not None:
            headers = {**headers, "authorization": authorization}
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.post(url, content=payload, headers=headers)
        except failures.TRANSPORT_ERRORS as exc:
            return failures.transport_failure(exc)
        return classify_apns_response(
            response.status_code, response.content, response.headers, now=self._clock(), apns_id=apns_id
        )

    async def aclose(self) -> None:
        """Closes the client and its connections."""
        await self._client.aclose()

    async def __aenter__(self) -> ApnsProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def apns_client_tls_context(
    cert_file: Path,
    key_file: Path | None = None,
    password: bytes | None = None,
    ca_pem: bytes | None = None,
) -> ssl.SSLContext:
    """Builds a client TLS context for APNs certificate auth (PEM or PKCS#12).

    Args:
        cert_file: The client certificate: PEM (optionally with its key) or a
            PKCS#12 bundle (.p12/.pfx, or any file that is not PEM).
        key_file: The PEM private key when it is not inside `cert_file`.
        password: The key's or bundle's password.
        ca_pem: CA certificates to trust instead of the system store (the
            emulator's CA in tests and development).

    Returns:
        A context that verifies the server, presents the certificate and offers ALPN h2.
    """
    context = ssl.create_default_context(cadata=ca_pem.decode("ascii") if ca_pem is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    data = cert_file.read_bytes()
    if b"-----BEGIN" in data:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None, password=password)
        return context
    key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    if key is None or cert is None:
        raise ValueError(f"{cert_file} holds no private key and certificate")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *(extra or [])])
    # ssl can only load a chain from a file; the unencrypted key lives in a
    # private (0600) temporary file for the duration of this call only.
    with _private_temp_file(pem) as path:
        context.load_cert_chain(path)
    return context


@contextlib.contextmanager
def _private_temp_file(content: bytes) -> Iterator[str]:
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        yield path
    finally:
        os.unlink(path)
