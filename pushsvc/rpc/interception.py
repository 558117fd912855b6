"""MethodInterceptor: the shared shape of pushsvc's server interceptors.

A grpc.aio interceptor sees the method name, not the decoded request, so each
of pushsvc's (telemetry, live calls, tracing, auth) wraps a method's handler
instead, once per method. pushsvc's servers apply them when handlers are
registered (`pushsvc.rpc.chain`), so no interceptor runs per call; each is
still a grpc.aio ServerInterceptor (`intercept_service`, wrapping at a
method's first call and keeping the result) for a server built with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

Handler = grpc.RpcMethodHandler


class MethodInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each known method's handler once (`wrap`) and reuses it; unknown methods pass through."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],  # type: ignore[override]  # types-grpcio types grpc.aio handlers as sync ones
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Returns the method's wrapped handler (built once per method)."""
        method: str = handler_call_details.method  # type: ignore[attr-defined]  # types-grpcio's HandlerCallDetails declares no fields
        wrapped = self._handlers.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None:
            # Unknown method: grpc answers UNIMPLEMENTED. Neither wrapped nor
            # cached, so random method names grow no table and no label.
            return handler
        wrapped = self.wrap(method, handler)
        self._handlers[method] = wrapped
        return wrapped

    def wrap(self, method: str, handler: Handler) -> Handler:
        """The handler to serve `method` with (may be `handler` itself)."""
        raise NotImplementedError
