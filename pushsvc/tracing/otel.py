"""OtelTracer: the `Tracer` port over the OpenTelemetry API, with whatever TracerProvider it is given.

Span names and attributes follow OpenTelemetry's RPC conventions: a server
span named "pushsvc.v1.PushService/Send" with `rpc.system`, `rpc.service`,
`rpc.method` and `rpc.grpc.status_code`. A fan-out batch is an internal span
"pushsvc.fanout.batch" with the app, the notification and the batch size.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator

import grpc
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pushsvc.tracing import RpcSpan, _Batch

_PROPAGATOR = TraceContextTextMapPropagator()
_CODES = {c.name: c.value[0] for c in grpc.StatusCode}
_SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})
"""The codes that mark a server span as an error (OpenTelemetry's gRPC conventions); a caller's mistake does not."""


class _RpcSpan:
    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def finished(self, code: str) -> None:
        self._span.set_attribute("rpc.grpc.status_code", _CODES.get(code, 2))
        if code in _SERVER_ERRORS:
            self._span.set_status(Status(StatusCode.ERROR, code))


class OtelTracer:
    """See the module docstring."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._tracer = provider.get_tracer("pushsvc")

    @contextlib.contextmanager
    def rpc(self, path: str, traceparent: str) -> Iterator[RpcSpan]:
        """See `Tracer.rpc`."""
        service, _, method = path.lstrip("/").rpartition("/")
        parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        with self._tracer.start_as_current_span(
            f"{service}/{method}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
            record_exception=False,  # the code says what happened; tracebacks of callers' mistakes are noise
            set_status_on_exception=False,
        ) as span:
            yield _RpcSpan(span)

    def current_traceparent(self) -> str:
        """See `Tracer.current_traceparent`: the current span's context, formatted as W3C trace context (version 00)."""
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return ""
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"

    async def batches(
        self, app_id: str, notification_id: str, batches: AsyncGenerator[tuple[list[_Batch], object], None], *, link: str = ""
    ) -> AsyncGenerator[tuple[list[_Batch], object], None]:
        """See `Tracer.batches`. The span is not made current: nothing below it makes spans of its own."""
        links = []
        if link:
            context = trace.get_current_span(_PROPAGATOR.extract({"traceparent": link})).get_span_context()
            if context.is_valid:
                links.append(Link(context))
        attributes = {"pushsvc.app_id": app_id, "pushsvc.notification_id": notification_id}
        # Closing this closes the batches it reads (the store's cursor behind them).
        async with contextlib.aclosing(batches):
            async for batch, checkpoint in batches:
                span = self._tracer.start_span(
                    "pushsvc.fanout.batch", context=_ROOT, kind=SpanKind.INTERNAL, links=links, attributes=attributes
                )
                span.set_attribute("pushsvc.batch_size", len(batch))
                try:
                    yield batch, checkpoint
                except BaseException as exc:
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    raise
                finally:
                    span.end()


_ROOT = trace.set_span_in_context(trace.INVALID_SPAN)
"""A batch span starts its own trace: the fan-out runs long after, and apart from, the Send that queued it."""
