"""The OTLP export: an SDK TracerProvider that batches spans to an OTLP/HTTP endpoint.

Needs the `otel` extra (opentelemetry-sdk and the OTLP/HTTP exporter); the
composition root imports this module only when `tracing.otlp_endpoint` is set.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio


def otlp_provider(endpoint: str, service_name: str, sample_ratio: float, timeout_s: float) -> TracerProvider:
    """A provider exporting to `endpoint` (e.g. http://collector:4318/v1/traces) in the background.

    Its owner calls `shutdown()` at exit, which flushes what is queued.
    """
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBasedTraceIdRatio(sample_ratio),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=timeout_s)))
    return provider
