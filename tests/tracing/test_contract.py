"""The Tracer port's contract, over every implementation: what the dispatcher and the RPC chain rely on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pushsvc.tracing import NULL_TRACER, Tracer
from pushsvc.tracing.otel import OtelTracer


@pytest.fixture(params=["null", "otel"])
def tracer(request: pytest.FixtureRequest) -> Tracer:
    if request.param == "null":
        return NULL_TRACER
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return OtelTracer(provider)


class _Source:
    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False

    async def batches(self) -> AsyncGenerator[tuple[list[int], object], None]:
        try:
            for i in range(self.n):
                yield [i] * 3, i
        finally:
            self.closed = True


async def test_batches_pass_through_unchanged(tracer: Tracer) -> None:
    source = _Source(4)
    seen = [item async for item in tracer.batches("app", "n1", source.batches())]
    assert seen == [([i] * 3, i) for i in range(4)] and source.closed


async def test_closing_early_closes_the_source(tracer: Tracer) -> None:
    source = _Source(10)
    async with contextlib.aclosing(tracer.batches("app", "n1", source.batches(), link="")) as batches:
        async for _, checkpoint in batches:
            if checkpoint == 2:
                break
    assert source.closed, "the store's cursor behind the batches is released"


async def test_an_error_in_the_loop_body_propagates(tracer: Tracer) -> None:
    source = _Source(10)
    with pytest.raises(RuntimeError, match="lease lost"):
        async with contextlib.aclosing(tracer.batches("app", "n1", source.batches())) as batches:
            async for _ in batches:
                raise RuntimeError("lease lost")
    assert source.closed


@pytest.mark.parametrize("traceparent", ["", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
def test_rpc_span_takes_any_code(tracer: Tracer, traceparent: str) -> None:
    for code in ("OK", "INVALID_ARGUMENT", "INTERNAL", "CANCELLED", "NOT_A_CODE"):
        with tracer.rpc("/pushsvc.v1.PushService/Send", traceparent) as span:
            span.finished(code)


def test_current_traceparent_is_the_open_rpc_span(tracer: Tracer) -> None:
    assert tracer.current_traceparent() == "", "outside any span there is nothing to link to"
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracer.rpc("/pushsvc.v1.PushService/Send", caller) as span:
        inside = tracer.current_traceparent()
        span.finished("OK")
    if tracer is NULL_TRACER:
        assert inside == ""
    else:
        version, trace_id, span_id, flags = inside.split("-")
        assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
        assert len(span_id) == 16 and span_id not in ("00f067aa0ba902b7", "0" * 16), "the server span's own id"
    assert tracer.current_traceparent() == ""
