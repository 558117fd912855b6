"""Spans, through the real servers, collected by the SDK's in-memory exporter: one per RPC (gRPC and
Connect alike, the caller's traceparent as parent), one per fan-out batch (never per token), and
an OTLP export only when an endpoint is configured."""

from __future__ import annotations

import asyncio
import http.server
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pushsvc.bootstrap import Application, build_application, build_tracer
from pushsvc.config import DispatchSettings, Settings, TracingSettings
from pushsvc.devstack import demo_app_settings
from pushsvc.emulator import Emulator, EmulatorConfig, make_demo_credentials
from pushsvc.tracing import NULL_TRACER
from pushsvc.tracing.otel import OtelTracer
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.conftest import FAST_DISPATCH
from tests.connect.conftest import curl

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[Application, InMemorySpanExporter]]:
    emulator = Emulator(EmulatorConfig())
    await emulator.start()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        credentials, apns_key, fcm_account = make_demo_credentials(tmp_path, token_uri=emulator.token_uri, ca_pem=emulator.ca_pem)
        emulator.add_apns_key(apns_key)
        emulator.add_fcm_account(fcm_account)
        settings = Settings(
            store_url=f"mongomock://localhost/t{uuid.uuid4().hex[:12]}",
            host="127.0.0.1",
            port=0,
            apps={"demo": demo_app_settings("demo", emulator, credentials)},
            dispatch=DispatchSettings(**{**FAST_DISPATCH.model_dump(), "batch_size": 10}),
        )
        app = build_application(settings, connect=True, tracer=OtelTracer(provider))
        await app.start()
    except BaseException:
        await emulator.stop()
        raise
    try:
        yield app, exporter
    finally:
        await app.stop(0)
        await emulator.stop()
        provider.shutdown()


async def test_rpc_spans_and_one_span_per_batch(traced: tuple[Application, InMemorySpanExporter]) -> None:
    app, exporter = traced
    tokens = [f"tok-{i}-{uuid.uuid4().hex}" for i in range(35)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        await stub.RegisterTokens(
            pb.RegisterTokensRequest(app_id="demo", items=[pb.TokenRegistration(token=t, platform=pb.PLATFORM_FCM) for t in tokens]),
            timeout=10,
        )
        sent = await stub.Send(
            pb.SendRequest(app_id="demo", target=pb.Target(all=True), message=pb.Message(title="traced")),
            metadata=(("traceparent", CALLER),), timeout=10,
        )
        receipts = [r async for r in stub.StreamReceipts(pb.StreamReceiptsRequest(app_id="demo", notification_id=sent.notification_id), timeout=30)]
        assert len(receipts) == 35
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token="", platform=pb.PLATFORM_FCM), timeout=10)
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    over_connect = await asyncio.to_thread(
        curl, f"http://127.0.0.1:{app.connect_port}/pushsvc.v1.PushService/GetNotification",
        f'{{"appId":"demo","notificationId":"{sent.notification_id}"}}', headers=(f"traceparent: {CALLER}",),
    )
    assert over_connect.status == 200

    spans = exporter.get_finished_spans()
    rpc = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in rpc] == [
        "pushsvc.v1.PushService/RegisterTokens", "pushsvc.v1.PushService/Send", "pushsvc.v1.PushService/StreamReceipts",
        "pushsvc.v1.PushService/RegisterToken", "pushsvc.v1.PushService/GetNotification",
    ]
    by_name = {s.name.rpartition("/")[2]: s for s in rpc}
    for name in ("Send", "GetNotification"):  # gRPC metadata and a Connect header alike
        assert f"{by_name[name].context.trace_id:032x}" == TRACE_ID and by_name[name].parent is not None
        assert by_name[name].parent.span_id == 0x00F067AA0BA902B7
    assert by_name["RegisterTokens"].parent is None
    assert by_name["RegisterToken"].attributes["rpc.grpc.status_code"] == 3
    assert by_name["RegisterToken"].status.status_code is StatusCode.UNSET  # a caller's mistake is no server error
    assert by_name["Send"].attributes["rpc.grpc.status_code"] == 0
    assert by_name["GetNotification"].attributes["rpc.method"] == "GetNotification"

    batches = [s for s in spans if s.name == "pushsvc.fanout.batch"]
    assert sorted(s.attributes["pushsvc.batch_size"] for s in batches) == [5, 10, 10, 10]  # 35 tokens in batches of 10
    assert {s.attributes["pushsvc.notification_id"] for s in batches} == {sent.notification_id}
    assert all(s.status.status_code is StatusCode.UNSET for s in batches)
    assert len(spans) == len(rpc) + len(batches), "no span per token, nor any other"


async def test_batch_spans_link_to_the_send_that_queued_them(traced: tuple[Application, InMemorySpanExporter]) -> None:
    """Send stores its server span's context with the notification; every batch span of the fan-out links to it."""
    app, exporter = traced
    tokens = [f"tok-{i}-{uuid.uuid4().hex}" for i in range(25)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        await stub.RegisterTokens(
            pb.RegisterTokensRequest(app_id="demo", items=[pb.TokenRegistration(token=t, platform=pb.PLATFORM_FCM) for t in tokens]),
            timeout=10,
        )
        sent = {}
        for caller in (CALLER, ""):  # inside the client's trace, and a Send that starts a trace of its own
            metadata = (("traceparent", caller),) if caller else ()
            reply = await stub.Send(
                pb.SendRequest(app_id="demo", target=pb.Target(all=True), message=pb.Message(title="linked")),
                metadata=metadata, timeout=10,
            )
            receipts = [r async for r in stub.StreamReceipts(
                pb.StreamReceiptsRequest(app_id="demo", notification_id=reply.notification_id), timeout=30)]
            assert len(receipts) == 25
            sent[caller] = reply.notification_id

    spans = exporter.get_finished_spans()
    sends = [s for s in spans if s.name == "pushsvc.v1.PushService/Send"]
    assert len(sends) == 2
    for caller, send in zip((CALLER, ""), sends, strict=True):
        if caller:
            assert f"{send.context.trace_id:032x}" == TRACE_ID
        else:
            assert send.parent is None and f"{send.context.trace_id:032x}" != TRACE_ID
        batches = [s for s in spans if s.name == "pushsvc.fanout.batch" and s.attributes["pushsvc.notification_id"] == sent[caller]]
        assert sorted(s.attributes["pushsvc.batch_size"] for s in batches) == [5, 10, 10]
        for batch in batches:
            assert batch.parent is None and batch.context.trace_id != send.context.trace_id  # a trace of its own
            [link] = batch.links
            assert link.context.trace_id == send.context.trace_id
            assert link.context.span_id == send.context.span_id
            assert link.context.trace_flags.sampled


def test_nothing_is_traced_or_exported_by_default() -> None:
    tracer, flush = build_tracer(TracingSettings())
    assert tracer is NULL_TRACER and flush is None
    assert Settings().tracing.otlp_endpoint == ""


class _Collector(http.server.BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_otlp_export_when_configured() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        tracer, flush = build_tracer(TracingSettings(otlp_endpoint=endpoint, service_name="pushsvc-test"))
        assert flush is not None
        with tracer.rpc("/pushsvc.v1.PushService/Send", CALLER) as span:
            span.finished("OK")
        await asyncio.to_thread(flush)  # the owner's shutdown flushes the batch processor
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert [path for path, _ in _Collector.bodies] == ["/v1/traces"]
    request = ExportTraceServiceRequest.FromString(_Collector.bodies[0][1])
    [resource] = request.resource_spans
    assert {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"] == "pushsvc-test"
    [span_out] = [s for scope in resource.scope_spans for s in scope.spans]
    assert span_out.name == "pushsvc.v1.PushService/Send" and span_out.trace_id.hex() == TRACE_ID


async def test_a_batch_span_links_to_the_send_it_is_given() -> None:
    """The port carries the Send's traceparent to the batch span as a link."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def one() -> AsyncGenerator[tuple[list[int], object], None]:
        yield [1, 2], 1

    async for _ in OtelTracer(provider).batches("demo", "n1", one(), link=CALLER):
        pass
    [span] = exporter.get_finished_spans()
    assert span.parent is None and f"{span.links[0].context.trace_id:032x}" == TRACE_ID
    assert span.attributes["pushsvc.batch_size"] == 2
