"""The APNs adapter: render once per notification, send a batch of tokens at once, classify each answer.

Rendering (`render_apns`) builds the JSON payload and the static headers once;
`ApnsProvider.send_batch` formats them once per notification and expiry, adds
the per-request headers (authorization once per batch, an apns-id per request
from `ApnsIds`), POSTs the batch to `/3/device/<token>` through the
transport's `post_many` and maps each answer onto an
`Outcome` through one table (`REASON_OUTCOMES`) that lists every reason Apple
documents (reference/protocols.md §A.9).

Decisions the table encodes, beyond Apple's own words:

- `ExpiredProviderToken` is retried once inside `send_batch` with a freshly
  minted JWT (the only retry an adapter does; the batch's stale answers are
  resent together); a second one is CREDENTIALS_REJECTED.
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

import itertools
import json
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pushsvc import models
from pushsvc.clock import Clock
from pushsvc.providers import apns_jwt, base, credentials, failures, rendering
from pushsvc.providers.aps import ApnsReason, apns_priority, aps_dictionary
from pushsvc.providers.transport import NO_DEFAULT_HEADERS, TlsConfig, Transport, TransportError

__all__ = [
    "PAYLOAD_LIMIT_BYTES",
    "REASON_OUTCOMES",
    "TOPIC_SUFFIXES",
    "VOIP_PAYLOAD_LIMIT_BYTES",
    "ApnsProvider",
    "ApnsReason",
    "apns_client_tls",
    "apns_priority",
    "aps_dictionary",
    "classify_apns_response",
    "render_apns",
]

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

_RENDER_CACHE_SIZE = 64
"""Rendered messages whose encoded headers are kept: far more than the notifications in flight at once."""


_DELIVERED = base.Outcome.DELIVERED


class ApnsIds:
    """Unique apns-id values at the cost of a counter: a random UUID's first 80 bits, then a 48-bit count.

    `uuid.uuid4()` per request read the kernel's random source each time (3%
    of a fan-out's profile). The ids stay canonical version-4 UUIDs, unique
    per provider instance by the count and across instances and replicas by
    the random prefix.
    """

    def __init__(self) -> None:
        self._prefix = str(uuid.uuid4())[:24]
        self._count = itertools.count()

    def next(self) -> str:
        """The next id."""
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFF:012x}"


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


def render_apns(message: models.Message, *, bundle_id: str, notification_id: str = "") -> base.RenderedMessage:
    """Renders a message for APNs once per notification.

    The payload is `aps` (alert, badge, sound, category, thread-id,
    content-available, mutable-content), then `message.data` as top-level
    custom keys, then `message.apns.payload` deep-merged on top (its keys win),
    then the notification id as the custom key `rendering.NOTIFICATION_ID_KEY`.
    The headers are apns-push-type, apns-priority, apns-topic and
    apns-collapse-id, then `message.apns.headers` (which win).

    A background push is always sent with priority 5 (priority 10 is an error
    for Apple) and always carries content-available: 1, without which iOS
    drops it.

    Args:
        message: The platform-neutral message.
        bundle_id: The app's bundle id; the topic is derived from it unless
            `message.apns.topic` is set.
        notification_id: pushsvc's id of the notification ("" leaves it out).

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
    if notification_id:
        payload[rendering.NOTIFICATION_ID_KEY] = notification_id
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

    return rendered_from_body({"headers": headers, "payload": payload_text})


def rendered_from_body(body: Mapping[str, Any]) -> base.RenderedMessage:
    """The rendered message of an APNs body (`render_apns`'s, or one stored with a notification): size and limit from it."""
    push_type = body["headers"].get("apns-push-type")
    limit = VOIP_PAYLOAD_LIMIT_BYTES if push_type == models.PushType.VOIP.value else PAYLOAD_LIMIT_BYTES
    return base.RenderedMessage(
        platform=models.Platform.APNS,
        body=body,
        size_bytes=rendering.utf8_len(str(body["payload"])),
        limit_bytes=limit,
    )


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
        invalid_since = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
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
        credential_stale=reason == ApnsReason.EXPIRED_PROVIDER_TOKEN,
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
    """Sends deliveries to APNs over an injected HTTP/2 transport.

    One instance serves one app (one signing key or one client certificate).
    Give each instance its own transport: APNs binds a connection to the team
    and key of its first push (UnrelatedKeyIdInToken otherwise), and a
    certificate lives in the transport's TLS settings.

    Args:
        transport: The HTTP/2 transport (`Http2Transport`); for certificate
            auth its `TlsConfig` carries the certificate (`apns_client_tls`).
        production_url: Base URL for production tokens, e.g. https://api.push.apple.com.
        sandbox_url: Base URL for sandbox tokens.
        signer: The key's shared JWT signer, or None for certificate auth.
        clock: The process clock; Retry-After dates are read against it.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        production_url: str,
        sandbox_url: str,
        signer: apns_jwt.ApnsTokenSigner | None,
        clock: Clock,
    ) -> None:
        self._transport = transport
        self._urls = {
            models.ApnsEnvironment.PRODUCTION: production_url.rstrip("/") + "/3/device/",
            models.ApnsEnvironment.SANDBOX: sandbox_url.rstrip("/") + "/3/device/",
        }
        self._signer = signer
        self._clock = clock
        self._rendered: dict[tuple[int, datetime | None], tuple[Mapping[str, Any], list[str], bytes]] = {}
        """Header lines and payload bytes per rendered message and expiry, keyed by id() and checked by identity."""
        self._ids = ApnsIds()

    @property
    def platform(self) -> models.Platform:
        """Always `Platform.APNS`."""
        return models.Platform.APNS

    async def send(self, delivery: base.Delivery) -> base.ProviderResult:
        """Sends one delivery (a batch of one; see `send_batch`)."""
        return (await self.send_batch((delivery,)))[0]

    async def send_batch(self, deliveries: Sequence[base.Delivery]) -> list[base.ProviderResult]:
        """Sends every delivery as one batch; never raises for provider or network errors.

        Retries once, with a freshly minted JWT, the requests answered 403
        ExpiredProviderToken (together, as one smaller batch).
        """
        urls = self._urls
        requests: list[tuple[str, list[str], bytes, str]] = []
        """url, the lines besides authorization (static + apns-id), payload, apns-id."""
        ids = self._ids
        for delivery in deliveries:
            rendered = delivery.rendered
            if rendered.platform is not models.Platform.APNS:
                raise ValueError(f"ApnsProvider cannot send a message rendered for {rendered.platform.value}")
            static_headers, payload = self._static(rendered, delivery.expires_at)
            apns_id = ids.next()
            token = delivery.token
            # Registered APNs tokens are hex; only a stateless send may need escaping.
            path_token = token if token.isascii() and token.isalnum() else urllib.parse.quote(token, safe="")
            requests.append(
                (urls[delivery.apns_environment] + path_token, [*static_headers, "apns-id: " + apns_id], payload, apns_id)
            )

        async def send(authorization: str | None, indices: Sequence[int]) -> list[base.ProviderResult]:
            if authorization is None:
                batch = [(url, lines, payload) for url, lines, payload, _ in (requests[i] for i in indices)]
            else:
                auth = "authorization: " + authorization
                batch = [(url, [*lines, auth], payload) for url, lines, payload, _ in (requests[i] for i in indices)]
            answers = await self._transport.post_many(batch)
            out: list[base.ProviderResult] = []
            for index, answer in zip(indices, answers, strict=True):
                apns_id = requests[index][3]
                if isinstance(answer, TransportError):
                    out.append(failures.transport_failure(answer))
                elif answer.status == 200:
                    # APNs answers with the apns-id the request carried: ours.
                    out.append(base.ProviderResult(_DELIVERED, 200, provider_message_id=apns_id))
                else:
                    out.append(classify_apns_response(
                        answer.status, answer.body, answer.headers, now=self._clock.time(), apns_id=apns_id
                    ))
            return out

        return await credentials.send_batch_authorized(send, self._authorize, self._reject, len(requests))

    def _authorize(self) -> str | None:
        return self._signer.authorization() if self._signer is not None else None

    def _reject(self, authorization: str) -> None:
        if self._signer is not None:
            # Apple: regenerate the token and resend. Other sends that got the
            # same 403 reuse the token minted by the first one.
            self._signer.force_refresh(rejected=authorization)

    def _static(self, rendered: base.RenderedMessage, expires_at: datetime | None) -> tuple[list[str], bytes]:
        # A notification's rendered message is shared by all its deliveries:
        # format its headers and encode its payload once, not per token.
        key = (id(rendered.body), expires_at)
        cached = self._rendered.get(key)
        if cached is not None and cached[0] is rendered.body:
            return cached[1], cached[2]
        lines = [f"{name}: {value}" for name, value in rendered.body["headers"].items()]
        if expires_at is not None:
            lines.append(f"apns-expiration: {max(0, int(expires_at.timestamp()))}")
        lines += NO_DEFAULT_HEADERS
        payload = str(rendered.body["payload"]).encode("utf-8")
        if len(self._rendered) >= _RENDER_CACHE_SIZE:
            self._rendered.pop(next(iter(self._rendered)))
        self._rendered[key] = (rendered.body, lines, payload)
        return lines, payload

    async def aclose(self) -> None:
        """Closes the transport and its connections."""
        await self._transport.aclose()

    async def __aenter__(self) -> ApnsProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _source(cert: Path | bytes) -> str:
    return "the certificate" if isinstance(cert, bytes) else str(cert)


def apns_client_tls(
    cert_file: Path | bytes,
    key_file: Path | None = None,
    password: bytes | None = None,
    ca_pem: bytes | None = None,
) -> TlsConfig:
    """Reads a client certificate for APNs certificate auth (PEM or PKCS#12) into a `TlsConfig`.

    Args:
        cert_file: The client certificate: PEM (optionally with its key) or a
            PKCS#12 bundle (.p12/.pfx, or any file that is not PEM); or the
            certificate's bytes themselves (from `cert_env`).
        key_file: The PEM private key when it is not inside `cert_file`.
        password: The key's or bundle's password.
        ca_pem: CA certificates to trust instead of the system store (the
            emulator's CA in tests and development).

    Returns:
        TLS settings holding the certificate chain and the decrypted key in memory.

    Raises:
        ValueError: The files hold no usable key and certificate.
    """
    data = cert_file if isinstance(cert_file, bytes) else cert_file.read_bytes()
    if b"-----BEGIN" in data:
        certs = x509.load_pem_x509_certificates(data)
        key_data = key_file.read_bytes() if key_file is not None else data
        key = serialization.load_pem_private_key(key_data, password)
    else:
        loaded_key, cert, extra = pkcs12.load_key_and_certificates(data, password)
        if loaded_key is None or cert is None:
            raise ValueError(f"{_source(cert_file)} holds no private key and certificate")
        key, certs = loaded_key, [cert, *(extra or [])]
    if not certs:
        raise ValueError(f"{_source(cert_file)} holds no certificate")
    return TlsConfig(
        ca_pem=ca_pem,
        client_cert_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs),
        client_key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
