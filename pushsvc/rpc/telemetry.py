"""TelemetryInterceptor: per-call request context for the logs, and the RPC metrics.

It is the outermost interceptor, so what it sees is what the caller got:
authentication failures, unparsable requests and drain answers included. Like
`AuthInterceptor`, it wraps each method's handler once (cached per method),
because only the wrapper sees the decoded request. For each call it:

1. sets the log context: the caller's `x-request-id` when it is a sensible
   one, else a fresh id; the caller's `traceparent` when it is well formed;
   and the request's `notification_id` when it names one (GetNotification,
   StreamReceipts; Send sets its new id itself);
2. counts the call by service, method and final status code, and observes
   its latency (a stream's when it ends);
3. logs one DEBUG line per call (`log_level = "DEBUG"` gives an access log),
   with `rpc`, `code`, `duration_ms`, and the request's `app` and `platform`
   when it names them, as fields of their own.

grpc.aio runs each call in a task of its own, so the context of one call never
leaks into another.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from pushsvc import logs
from pushsvc.clock import Clock
from pushsvc.metrics import Metrics, RpcMetrics
from pushsvc.rpc.interception import Handler, MethodInterceptor

log = logging.getLogger("pushsvc.rpc")

Ctx = grpc.aio.ServicerContext[Any, Any]


def _code(context: Ctx, default: grpc.StatusCode) -> str:
    # After context.abort() the context holds the code it ended with.
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int) and code != 0:
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), default.name)
    return default.name


def _request_fields(request: Any) -> dict[str, str]:
    """The app and platform a request names, for the access line (a request stream names none)."""
    out: dict[str, str] = {}
    app = getattr(request, "app_id", None)
    if isinstance(app, str) and app:
        out["app"] = app
    descriptor = getattr(request, "DESCRIPTOR", None)
    field = descriptor.fields_by_name.get("platform") if descriptor is not None else None
    if field is not None and field.enum_type is not None and not field.is_repeated:
        value = getattr(request, "platform", 0)
        if value:
            # "apns", as the dispatcher's lines and the metrics' labels name it.
            known = field.enum_type.values_by_number.get(value)
            prefix = field.enum_type.name.upper() + "_"
            out["platform"] = known.name.removeprefix(prefix).lower() if known is not None else str(value)
    return out


class _Call:
    """The context tokens of one call, to be reset when it ends."""

    __slots__ = ("request", "tokens")

    def __init__(self, context: Ctx, request: Any, fresh_id: Callable[[], str]) -> None:
        self.request = request
        rid = tp = ""
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id" and isinstance(value, str):
                rid = logs.valid_request_id(value)
            elif key == "traceparent" and isinstance(value, str):
                tp = logs.valid_traceparent(value)
        self.tokens: list[tuple[Any, Any]] = [(logs.request_id, logs.request_id.set(rid or fresh_id()))]
        # The others are set only when they differ from what the call's context
        # already holds (almost always ""): a set and a reset less per call.
        if tp != logs.traceparent.get():
            self.tokens.append((logs.traceparent, logs.traceparent.set(tp)))
        nid = getattr(request, "notification_id", "")
        nid = nid if isinstance(nid, str) else ""
        if nid != logs.notification_id.get():
            self.tokens.append((logs.notification_id, logs.notification_id.set(nid)))

    def reset(self) -> None:
        for var, token in reversed(self.tokens):
            try:
                var.reset(token)
            except ValueError:  # closed from another context (a stream torn down by grpc): nothing to restore
                pass


class _Counters:
    """A method's RPC metrics, bound at its first finished call.

    Handlers are wrapped when they are registered, but a method's series
    (its latency histogram is one per method) appear once it has been called,
    not for every method the server knows.
    """

    __slots__ = ("_bound", "_method", "_metrics", "_service")

    def __init__(self, metrics: Metrics, service: str, method: str) -> None:
        self._metrics = metrics
        self._service = service
        self._method = method
        self._bound: RpcMetrics | None = None

    def finished(self, code: str, seconds: float) -> None:
        bound = self._bound
        if bound is None:
            bound = self._bound = self._metrics.rpc(self._service, self._method)
        bound.finished(code, seconds)


class TelemetryInterceptor(MethodInterceptor):
    """Request context and RPC metrics for every call; see the module docstring."""

    def __init__(self, metrics: Metrics, clock: Clock) -> None:
        super().__init__()
        self._metrics = metrics
        self._clock = clock
        # A call without an x-request-id gets a fresh one: 32 hex digits, a
        # random prefix per process and a counter, so ids are unique across
        # replicas without uuid4's getrandom() system call on every call.
        prefix, counter = secrets.token_hex(8), itertools.count()
        self._fresh_id: Callable[[], str] = lambda: f"{prefix}{next(counter):016x}"

    def wrap(self, path: str, handler: Handler) -> Handler:
        service, _, name = path.lstrip("/").rpartition("/")
        counters = _Counters(self._metrics, service, name)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(path, counters, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(path, counters, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(path, counters, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(path, counters, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _finish(self, path: str, counters: RpcMetrics, started: float, code: str, call: _Call) -> None:
        elapsed = self._clock.monotonic() - started
        counters.finished(code, elapsed)
        if log.isEnabledFor(logging.DEBUG):
            fields = logs.fields(rpc=path, code=code, duration_ms=round(elapsed * 1000, 3), **_request_fields(call.request))
            log.debug("%s %s in %.1f ms", path, code, elapsed * 1000, extra=fields)

    def _unary(self, path: str, counters: RpcMetrics, inner: Any) -> Callable[..., Awaitable[Any]]:
        async def unary(request: Any, context: Ctx) -> Any:
            call = _Call(context, request, self._fresh_id)
            started = self._clock.monotonic()
            code = "UNKNOWN"
            try:
                response = await inner(request, context)
                code = _code(context, grpc.StatusCode.OK)
                return response
            except grpc.aio.AbortError:
                code = _code(context, grpc.StatusCode.UNKNOWN)
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            finally:
                self._finish(path, counters, started, code, call)
                call.reset()

        return unary

    def _streaming(self, path: str, counters: RpcMetrics, inner: Any) -> Callable[..., AsyncIterator[Any]]:
        async def streaming(request: Any, context: Ctx) -> AsyncIterator[Any]:
            call = _Call(context, request, self._fresh_id)
            started = self._clock.monotonic()
            code = "UNKNOWN"
            try:
                result = inner(request, context)
                if inspect.isawaitable(result):
                    # A handler that writes with context.write() (health Watch).
                    await result
                else:
                    async for item in result:
                        yield item
                code = _code(context, grpc.StatusCode.OK)
            except grpc.aio.AbortError:
                code = _code(context, grpc.StatusCode.UNKNOWN)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = "CANCELLED"
                raise
            finally:
                self._finish(path, counters, started, code, call)
                call.reset()

        return streaming
