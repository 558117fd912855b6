"""Connect endpoints that run the gRPC port's handler chain (see pushsvc.connect)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import grpc
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import Endpoint
from google.protobuf import message_factory

from pushsvc.connect.call import ConnectCall
from pushsvc.rpc import methods
from pushsvc.rpc.chain import HandlerChain
from pushsvc.rpc.interception import MethodInterceptor
from pushsvc.throttle import LogThrottle

log = logging.getLogger("pushsvc.connect")

Handler = grpc.RpcMethodHandler


class _Registrar:
    """Takes the handlers `methods.add_to_server` registers, in place of a grpc server."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """The same handlers again, in grpc's generic form: not needed here."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Handler]) -> None:
        """Keeps the handlers by method name."""
        self.handlers.update(handlers)


def handler_chain(
    servicer: Any, interceptors: Sequence[MethodInterceptor], throttle: LogThrottle
) -> dict[str, Handler]:
    """Each PushService method's handler, wrapped by `interceptors` (outermost first), as the gRPC port wraps them."""
    registrar = _Registrar()
    methods.add_to_server(servicer, registrar, throttle)
    chain = HandlerChain(interceptors)
    wrapped: dict[str, Handler] = {}
    for name, handler in registrar.handlers.items():
        path = f"/{methods.SERVICE.full_name}/{name}"
        wrapped[path] = chain.wrap(path, handler)
    return wrapped


def endpoints(chain: Mapping[str, Handler]) -> dict[str, Any]:
    """A Connect endpoint per path of `chain` (connectrpc exports the endpoint kinds' base class only, hence Any)."""
    out: dict[str, Any] = {}
    for method in methods.SERVICE.methods:
        path = f"/{methods.SERVICE.full_name}/{method.name}"
        info: MethodInfo[Any, Any] = MethodInfo(
            name=method.name,
            service_name=methods.SERVICE.full_name,
            input=message_factory.GetMessageClass(method.input_type),
            output=message_factory.GetMessageClass(method.output_type),
            idempotency_level=IdempotencyLevel.UNKNOWN,
            stream_type=StreamType.SERVER_STREAM if method.server_streaming else StreamType.UNARY,
        )
        handler = chain[path]
        if method.server_streaming:
            out[path] = Endpoint.server_stream(info, _streaming(handler.unary_stream))
        else:
            out[path] = Endpoint.unary(info, _unary(handler.unary_unary))
    return out


def deserializers(chain: Mapping[str, Handler]) -> dict[type[Any], Callable[[bytes], Any]]:
    """The gRPC port's request deserializer of each request type."""
    out = {}
    for method in methods.SERVICE.methods:
        handler = chain[f"/{methods.SERVICE.full_name}/{method.name}"]
        deserialize = handler.request_deserializer
        assert deserialize is not None, method.name  # methods.add_to_server gives every method one
        out[message_factory.GetMessageClass(method.input_type)] = deserialize
    return out


def _internal(exc: Exception) -> ConnectError:
    # As pushsvc.rpc.status does for gRPC: an error that reached here unmapped is a bug, logged with its traceback.
    log.exception("unexpected error", exc_info=exc)
    return ConnectError(Code.INTERNAL, "internal error")


def _unary(inner: Any) -> Callable[[Any, RequestContext[Any, Any]], Any]:
    async def call(request: Any, ctx: RequestContext[Any, Any]) -> Any:
        context = ConnectCall(ctx)
        try:
            return await inner(request, context)
        except grpc.aio.AbortError:
            raise context.error() from None
        except Exception as exc:  # noqa: BLE001 - see _internal
            raise _internal(exc) from None
        finally:
            context.finish()

    return call


def _streaming(inner: Any) -> Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]]:
    async def stream(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        context = ConnectCall(ctx)
        try:
            async for item in inner(request, context):
                yield item
        except grpc.aio.AbortError:
            raise context.error() from None
        except Exception as exc:  # noqa: BLE001 - see _internal
            raise _internal(exc) from None
        finally:
            context.finish()

    return stream
