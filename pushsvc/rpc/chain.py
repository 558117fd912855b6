"""HandlerChain: pushsvc's interceptors, applied to each method's handler once, when it is registered.

grpc.aio runs a server's interceptors on every call: an awaited
`intercept_service` per interceptor, only to find the handler. pushsvc's
interceptors (`MethodInterceptor`) never need that: each wraps a method's
handler once and reuses it. So `GrpcServer` builds its grpc.aio server with
no interceptors and registers every service (PushService, health,
reflection) through a `ChainedServer`, which hands grpc the handlers already
wrapped; a call then costs only the wrappers themselves. The Connect port
wraps its handlers with the same chain.

Unknown methods are neither wrapped nor counted: no registered handler and no
generic handler knows them, so grpc answers UNIMPLEMENTED before any of
pushsvc's code runs (telemetry, the live-call gate, auth), as it did when the
interceptors ran per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import grpc

from pushsvc.rpc.interception import Handler, MethodInterceptor


class HandlerChain:
    """Interceptors, outermost first: `wrap` gives the handler a call runs through."""

    def __init__(self, interceptors: Sequence[MethodInterceptor]) -> None:
        # The innermost wraps first, so the first interceptor's wrapper runs first.
        self._inner_first = tuple(reversed(interceptors))

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` of `method` ("/pkg.Service/Method") wrapped by every interceptor."""
        for interceptor in self._inner_first:
            handler = interceptor.wrap(method, handler)
        return handler


class ChainedServer:
    """Takes a service's handlers as a grpc.aio.Server does and registers them on `server`, wrapped by `chain`.

    grpc's own registration helpers (`add_*Servicer_to_server`) call both
    methods with the same handlers: each handler is wrapped once and the
    wrapped one is given to grpc both times.
    """

    def __init__(self, server: grpc.aio.Server, chain: HandlerChain) -> None:
        self._server = server
        self._chain = chain
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}
        """Method -> (the handler registered, its wrapped form)."""

    def wrap(self, method: str, handler: Handler) -> Handler:
        """The chain's handler for `handler` of `method`, built once."""
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._chain.wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        """As grpc.aio.Server's, each handler wrapped."""
        self._server.add_generic_rpc_handlers(tuple(_ChainedGeneric(self, handler) for handler in generic_rpc_handlers))

    def add_registered_method_handlers(self, service_name: str, method_handlers: Mapping[str, Handler]) -> None:
        """As grpc.aio.Server's, each handler wrapped."""
        self._server.add_registered_method_handlers(
            service_name,
            {name: self.wrap(f"/{service_name}/{name}", handler) for name, handler in method_handlers.items()},
        )


class _ChainedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose answers are wrapped (once per method, by the `ChainedServer`)."""

    def __init__(self, server: ChainedServer, inner: grpc.GenericRpcHandler) -> None:
        self._server = server
        self._inner = inner

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            # Unknown here: grpc asks the next generic handler, or answers UNIMPLEMENTED.
            return None
        method: str = handler_call_details.method  # type: ignore[attr-defined]  # types-grpcio's HandlerCallDetails declares no fields
        return self._server.wrap(method, handler)
