"""The PushService method handlers, built from the service descriptor.

The generated `add_PushServiceServicer_to_server` deserializes with
`FromString`, and when that raises (bytes that are not a message, invalid
UTF-8 in a string, nesting past the decoder's depth limit) grpc answers
UNKNOWN and logs a full traceback, so every 2-byte request from anyone costs
a kilobyte of log. Here the deserializer never raises: it hands the handler an
`Unparsable` marker, and the handler answers INVALID_ARGUMENT through the one
error-to-status mapping, with one throttled WARNING line.

Why INVALID_ARGUMENT: grpc's status-code guide (doc/statuscodes.md) lists
"error parsing request proto" as INTERNAL when the *library* fails to parse.
The parse failure is the caller's, though, and pushsvc's contract is that no
input yields INTERNAL or UNKNOWN; the same guide reserves INVALID_ARGUMENT for
applications, which is what this module makes the parse step part of.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol

import grpc
from google.protobuf import message, message_factory

from pushsvc import errors
from pushsvc.errors import FieldViolation
from pushsvc.rpc import status, wire
from pushsvc.throttle import LogThrottle
from pushsvc.v1 import push_pb2

SERVICE = push_pb2.DESCRIPTOR.services_by_name["PushService"]
_DECODER_MAX_DEPTH = 100
"""upb's default message nesting limit (upb_DecodeOptions_MaxDepth)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Unparsable:
    """A request whose bytes are not a valid message of the method's input type."""

    type_name: str
    reason: str
    """The decoder's own fixed text (never the request's bytes)."""
    field: str = ""
    """The path of the offending field, when `wire.bad_field` could tell; "" names the whole request."""

    def error(self) -> errors.InvalidArgument:
        """The caller-facing error."""
        return errors.InvalidArgument(
            FieldViolation(self.field, f"the request is not a valid serialized {self.type_name}: {self.reason}")
        )


def _deserializer(cls: type[message.Message]) -> Callable[[bytes], message.Message | Unparsable]:
    type_name = cls.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> message.Message | Unparsable:
        try:
            return cls.FromString(data)
        except message.DecodeError as exc:
            # upb says e.g. "Error parsing message with type 'X': String field had bad UTF-8".
            reason = str(exc).rpartition(": ")[2] if ": " in str(exc) else "malformed"
            too_deep = "MaxDepth" in reason
            if too_deep:
                reason = f"nesting exceeds the decoder's limit of {_DECODER_MAX_DEPTH} levels"
            try:
                field = wire.bad_field(cls.DESCRIPTOR, data, too_deep=too_deep)  # type: ignore[arg-type]  # upb's Descriptor is the same type at run time
            except Exception:  # noqa: BLE001 - naming the field is a courtesy; tests/fuzz checks it never raises
                field = ""
            return Unparsable(type_name, reason[:80], field)
        except Exception as exc:  # noqa: BLE001 - a raising deserializer becomes UNKNOWN with a traceback
            return Unparsable(type_name, type(exc).__name__)

    return deserialize


class Registrar(Protocol):
    """What handlers are registered on: a grpc.aio.Server's two registration calls."""

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        """Registers handlers found per call by method name."""
        ...

    def add_registered_method_handlers(self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        """Registers the methods of `service_name`, by method name."""
        ...


def add_to_server(servicer: Any, server: Registrar, throttle: LogThrottle) -> None:
    """Registers every PushService method of `servicer` on `server`.

    Unparsable requests get INVALID_ARGUMENT and at most one WARNING line per
    method per throttle interval; errors the servicer raises become statuses
    through `pushsvc.rpc.status` (the servicer's methods map none themselves).
    """
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        if method.client_streaming:
            raise TypeError(f"{method.full_name}: client-streaming methods need their own handler here")
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        fn = getattr(servicer, method.name)
        path = f"/{SERVICE.full_name}/{method.name}"
        make = _streaming if method.server_streaming else _unary
        factory = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = factory(
            make(fn, path, throttle),
            request_deserializer=_deserializer(request_cls),
            response_serializer=response_cls.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)


async def _reject(context: grpc.aio.ServicerContext[Any, Any], path: str, request: Unparsable, throttle: LogThrottle) -> None:
    # Field paths come from the descriptors and the reason from the decoder: no request bytes reach the log.
    where = f" (at {request.field[:80]})" if request.field else ""
    throttle.warning(path, "rejected an unparsable request to %s: %s%s", path, request.reason, where)
    await status.abort(context, request.error())


# One coroutine per call for both steps (the unparsable check, then the
# servicer with its errors mapped), not a layer each: every awaited layer
# costs each call CPU.


def _unary(fn: Callable[..., Any], path: str, throttle: LogThrottle) -> Callable[..., Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, Unparsable):
            await _reject(context, path, request, throttle)
        try:
            return await fn(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await status.abort(context, exc)
            raise AssertionError("unreachable") from exc

    return handle


def _streaming(fn: Callable[..., AsyncIterator[Any]], path: str, throttle: LogThrottle) -> Callable[..., AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        if isinstance(request, Unparsable):
            await _reject(context, path, request, throttle)
        try:
            async with contextlib.aclosing(fn(request, context)) as items:  # type: ignore[type-var]  # an async generator has aclose(); the annotation is the looser AsyncIterator
                async for item in items:
                    yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await status.abort(context, exc)

    return handle
