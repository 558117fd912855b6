"""Channels to pushsvc: TLS, credentials metadata, a retrying service config, deadlines."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import grpc

SERVICE = "pushsvc.v1.PushService"

# Calls that are safe to repeat: RegisterToken and RegisterTokens upsert, UnregisterToken and
# Prune converge on the same registry, GetNotification only reads. Send is not
# here: it is idempotent only with an idempotency_key, which a service config
# cannot see. StreamReceipts is resumed by ReceiptStream instead.
IDEMPOTENT_METHODS = (
    "RegisterToken", "RegisterTokens", "UnregisterToken", "GetNotification", "Prune",
    # Lookups only read; a repeated cancel answers with the notification as it is.
    "CancelNotification", "GetToken", "ListTokens", "ListNotifications",
)

DEFAULT_DEADLINE_S = 10.0


def default_service_config(deadline_s: float = DEFAULT_DEADLINE_S) -> dict[str, Any]:
    """The gRPC service config the channel helper installs.

    Idempotent calls are retried on UNAVAILABLE (up to 5 attempts, 0.1 s to 2 s
    apart); every unary call gets a deadline of `deadline_s`. StreamReceipts has
    no deadline: a stream follows a notification for as long as it runs.
    """
    timeout = f"{deadline_s:g}s"
    return {
        "methodConfig": [
            {
                "name": [{"service": SERVICE, "method": m} for m in IDEMPOTENT_METHODS],
                "timeout": timeout,
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            },
            {"name": [{"service": SERVICE, "method": "Send"}], "timeout": timeout},
        ]
    }


def credential_metadata(*, api_key: str | None = None, jwt: str | None = None) -> tuple[tuple[str, str], ...]:
    """The request metadata pushsvc reads caller credentials from.

    Both an API key and a JWT travel as `authorization: Bearer <credential>`; the server tells them apart.
    """
    if api_key and jwt:
        raise ValueError("give an API key or a JWT, not both")
    if api_key:
        return (("authorization", f"Bearer {api_key}"),)
    if jwt:
        return (("authorization", f"Bearer {jwt}"),)
    return ()


def channel_options(
    *, deadline_s: float = DEFAULT_DEADLINE_S, extra: Sequence[tuple[str, Any]] = ()
) -> list[tuple[str, Any]]:
    """Channel arguments: the service config, retries on, and a reconnect backoff
    short enough that a stream resumes within seconds of a replica restart."""
    return [
        ("grpc.service_config", json.dumps(default_service_config(deadline_s))),
        ("grpc.enable_retries", 1),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
        *extra,
    ]


def _channel_credentials(
    tls: bool, root_certificates: bytes | None
) -> grpc.ChannelCredentials | None:
    if not tls:
        return None
    return grpc.ssl_channel_credentials(root_certificates=root_certificates)


def connect(
    target: str,
    *,
    tls: bool = False,
    root_certificates: bytes | None = None,
    api_key: str | None = None,
    jwt: str | None = None,
    deadline_s: float = DEFAULT_DEADLINE_S,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A blocking channel to pushsvc at `target` ("host:port").

    With `tls`, the server is verified against `root_certificates` (PEM; the
    system roots when None). `api_key` or `jwt` is sent on every call.
    """
    creds = _channel_credentials(tls, root_certificates)
    opts = channel_options(deadline_s=deadline_s, extra=options)
    ch = grpc.secure_channel(target, creds, opts) if creds else grpc.insecure_channel(target, opts)
    metadata = credential_metadata(api_key=api_key, jwt=jwt)
    if metadata:
        ch = grpc.intercept_channel(ch, _MetadataInterceptor(metadata))
    return ch


def connect_aio(
    target: str,
    *,
    tls: bool = False,
    root_certificates: bytes | None = None,
    api_key: str | None = None,
    jwt: str | None = None,
    deadline_s: float = DEFAULT_DEADLINE_S,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """The asyncio counterpart of `connect`."""
    creds = _channel_credentials(tls, root_certificates)
    opts = channel_options(deadline_s=deadline_s, extra=options)
    metadata = credential_metadata(api_key=api_key, jwt=jwt)
    interceptors = [_AioMetadataInterceptor(metadata)] if metadata else None
    if creds:
        return grpc.aio.secure_channel(target, creds, opts, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, opts, interceptors=interceptors)


def _with_metadata(details: Any, metadata: tuple[tuple[str, str], ...]) -> Any:
    merged = grpc.aio.Metadata(*tuple(details.metadata or ()), *metadata)
    return details._replace(metadata=merged)


class _MetadataInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
):
    """Adds the caller's credentials to every call of a blocking channel."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(_ClientCallDetails.of(details, self._metadata), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(_ClientCallDetails.of(details, self._metadata), request)


class _ClientCallDetails(grpc.ClientCallDetails):
    def __init__(self, method: str, timeout: float | None, metadata: Any, credentials: Any,
                 wait_for_ready: bool | None, compression: Any) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression

    @classmethod
    def of(cls, details: grpc.ClientCallDetails, extra: tuple[tuple[str, str], ...]) -> _ClientCallDetails:
        return cls(
            details.method,
            details.timeout,
            tuple(details.metadata or ()) + extra,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )


class _AioMetadataInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Adds the caller's credentials to every call of an asyncio channel."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_with_metadata(details, self._metadata), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_with_metadata(details, self._metadata), request)
