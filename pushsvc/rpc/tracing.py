"""TracingInterceptor: a server span around each RPC, the caller's `traceparent` as its parent.

It sits inside the telemetry interceptor and the live-call gate (calls refused
while starting or draining get no span) and outside auth, so a refused
credential is a span with its code. The Connect port runs the same chain, so
its calls get the same spans.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from pushsvc import logs
from pushsvc.rpc.interception import Handler, MethodInterceptor
from pushsvc.tracing import Tracer

Ctx = grpc.aio.ServicerContext[Any, Any]
_SERVICE_PREFIX = "/pushsvc.v1.PushService/"


def _traceparent(context: Ctx) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent" and isinstance(value, str):
            return logs.valid_traceparent(value)
    return ""


def _code(context: Ctx, default: str) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else default


class TracingInterceptor(MethodInterceptor):
    """See the module docstring."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self._tracer = tracer

    def wrap(self, path: str, handler: Handler) -> Handler:
        """PushService's methods get a span; health checks and reflection pass through (probes would flood traces)."""
        if not path.startswith(_SERVICE_PREFIX):
            return handler
        tracer = self._tracer
        if handler.unary_unary is not None:
            inner_unary: Any = handler.unary_unary

            async def unary(request: Any, context: Ctx) -> Any:
                with tracer.rpc(path, _traceparent(context)) as span:
                    code = "UNKNOWN"
                    try:
                        response = await inner_unary(request, context)
                        code = _code(context, "OK")
                        return response
                    except grpc.aio.AbortError:
                        code = _code(context, "UNKNOWN")
                        raise
                    except BaseException:
                        code = "CANCELLED"
                        raise
                    finally:
                        span.finished(code)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream: Any = handler.unary_stream

            async def stream(request: Any, context: Ctx) -> AsyncIterator[Any]:
                with tracer.rpc(path, _traceparent(context)) as span:
                    code = "UNKNOWN"
                    try:
                        async for item in inner_stream(request, context):
                            yield item
                        code = _code(context, "OK")
                    except grpc.aio.AbortError:
                        code = _code(context, "UNKNOWN")
                        raise
                    except BaseException:
                        code = "CANCELLED"
                        raise
                    finally:
                        span.finished(code)

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
            )
        return handler
