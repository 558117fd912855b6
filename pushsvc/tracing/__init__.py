"""Tracing: the spans pushsvc makes, behind a small port.

This package's root is the port: the `Tracer` Protocol and `NULL_TRACER`,
which makes nothing and costs one attribute lookup. The OpenTelemetry adapter
is `pushsvc.tracing.otel` (opentelemetry-api, in the base install); the OTLP
export is `pushsvc.tracing.otlp` (the SDK and exporter, in the `otel` extra),
built by the composition root only when `tracing.otlp_endpoint` is set. The
gRPC interceptor that makes the RPC spans is `pushsvc.rpc.tracing`, so this
package imports nothing of rpc/ (dispatch/ imports the port).

Spans: one per RPC (server side, the caller's `traceparent` as parent) and one
per batch of a fan-out, never one per token, linked to the Send that queued it
(the Send's traceparent, stored with the notification).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

_Batch = TypeVar("_Batch")


class RpcSpan(Protocol):
    """The span of one RPC, open while the call runs."""

    def finished(self, code: str) -> None:
        """The call ended with gRPC status `code` (e.g. "OK", "INVALID_ARGUMENT")."""
        ...


class Tracer(Protocol):
    """Everything pushsvc traces."""

    def rpc(self, path: str, traceparent: str) -> AbstractContextManager[RpcSpan]:
        """A server span for the call to `path` ("/pushsvc.v1.PushService/Send"), child of the caller's
        `traceparent` when it sent a valid one ("" when not)."""
        ...

    def batches(
        self, app_id: str, notification_id: str, batches: AsyncGenerator[tuple[list[_Batch], object], None], *, link: str = ""
    ) -> AsyncGenerator[tuple[list[_Batch], object], None]:
        """`batches` as they come, each with a span open from when it is handed out until the next is asked for.

        The dispatcher's fan-out loop runs its body (deliveries, receipts, checkpoint) while the span is
        open: one span per batch. `link` is the traceparent of the Send that queued the notification,
        when the notification carries one.
        """
        ...

    def current_traceparent(self) -> str:
        """The W3C traceparent of the span current in this context ("" when none, or when not tracing).

        Send stores it with the notification, so the fan-out's batch spans can link to the Send that queued them.
        """
        ...


class _NullSpan:
    __slots__ = ()

    def finished(self, code: str) -> None:
        pass

    def __enter__(self) -> _NullSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class NullTracer:
    """Makes no span."""

    _SPAN = _NullSpan()

    def rpc(self, path: str, traceparent: str) -> AbstractContextManager[RpcSpan]:
        """See `Tracer.rpc`."""
        return self._SPAN

    def batches(
        self, app_id: str, notification_id: str, batches: AsyncGenerator[tuple[list[_Batch], object], None], *, link: str = ""
    ) -> AsyncGenerator[tuple[list[_Batch], object], None]:
        """`batches` itself."""
        return batches

    def current_traceparent(self) -> str:
        """Nothing: no span, so nothing to link to."""
        return ""


NULL_TRACER: Tracer = NullTracer()
