"""AuthInterceptor: the one place that decides every RPC.

A `grpc.aio.ServerInterceptor` sees the method and metadata but not the
decoded request, and authorization needs the request's `app_id`. So the
interceptor wraps each method's handler once (cached per method) and the
wrapper, which gets the decoded request, does all of it before the servicer
runs:

1. authenticate: metadata / TLS peer -> Principal, else UNAUTHENTICATED;
2. authorize: Principal x app_id x action, else PERMISSION_DENIED. Nothing
   has touched the store yet, so the answer and its timing are the same
   whether or not the named object exists;
3. call the servicer (for StreamReceipts, before its first message);
4. write the audit line for Send, UnregisterToken and Prune (denied
   attempts included).

Health checks stay open (kubelet's gRPC probes send no credentials);
reflection and anything else needs an authenticated caller. A PushService
method missing from `ACTIONS` needs `admin`, so a new RPC fails closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import message

from pushsvc import errors
from pushsvc.access import Action, Principal
from pushsvc.auth import audit
from pushsvc.auth.authenticator import Authenticator
from pushsvc.rpc import status
from pushsvc.rpc.interception import Handler, MethodInterceptor

SERVICE_PREFIX = "/pushsvc.v1.PushService/"
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)

ACTIONS: dict[str, Action] = {
    "RegisterToken": Action.REGISTER,
    "RegisterTokens": Action.REGISTER,
    "UnregisterToken": Action.REGISTER,
    "Send": Action.SEND,
    "GetNotification": Action.READ,
    "StreamReceipts": Action.READ,
    "Prune": Action.PRUNE,
}
"""The action each PushService RPC needs on its request's app."""

Ctx = grpc.aio.ServicerContext[Any, Any]


class AuthInterceptor(MethodInterceptor):
    """Authenticates and authorizes every call; see the module docstring."""

    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._authenticator = authenticator

    async def _authenticate(self, context: Ctx) -> Principal:
        try:
            return self._authenticator.authenticate(context)  # type: ignore[arg-type]
        except Exception as exc:  # Unauthenticated; anything else is a bug, and INTERNAL
            await status.abort(context, exc)
            raise AssertionError("unreachable") from exc

    def wrap(self, method: str, handler: Handler) -> Handler:
        if method.startswith(OPEN_PREFIXES):
            return handler
        if method.startswith(SERVICE_PREFIX):
            rpc = method[len(SERVICE_PREFIX) :]
            return self._wrap_push(rpc, ACTIONS.get(rpc, Action.ADMIN), handler)
        return self._gate(handler)

    async def _authorize(self, context: Ctx, request: Any, action: Action, rpc: str) -> Principal:
        principal = await self._authenticate(context)
        if not isinstance(request, message.Message):
            # Bytes that did not decode: the method's own handler answers
            # INVALID_ARGUMENT for them, before any servicer or store is reached.
            return principal
        app_id = getattr(request, "app_id", "")
        if not app_id:
            await status.abort(context, errors.InvalidArgument(errors.FieldViolation("app_id", "required")))
        if not principal.may(action, app_id):
            if rpc in audit.AUDITED:
                audit.record(rpc, principal, request, None, "denied")
            await status.abort(
                context, errors.PermissionDenied(f"{principal.name} may not {action.value} on app {app_id!r}")
            )
        return principal

    def _wrap_push(self, rpc: str, action: Action, handler: Handler) -> Handler:
        audited = rpc in audit.AUDITED
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: Ctx) -> Any:
                principal = await self._authorize(context, request, action, rpc)
                if not audited or not isinstance(request, message.Message):
                    return await inner_unary(request, context)  # type: ignore[arg-type]  # types-grpcio types grpc.aio handlers as sync ones
                try:
                    response = await inner_unary(request, context)  # type: ignore[arg-type]  # types-grpcio types grpc.aio handlers as sync ones
                except BaseException:
                    audit.record(rpc, principal, request, None, "failed")
                    raise
                audit.record(rpc, principal, request, response, "ok")
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: Ctx) -> AsyncIterator[Any]:
                await self._authorize(context, request, action, rpc)
                async for item in inner_stream(request, context):  # type: ignore[attr-defined,arg-type]  # types-grpcio types grpc.aio handlers as sync ones
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
            )
        # Client- or bidi-streaming PushService methods would carry app_id per
        # message; there are none, so such a method is refused outright.
        return self._gate(handler, deny=True)

    def _gate(self, handler: Handler, *, deny: bool = False) -> Handler:
        """Authentication only (or, with `deny`, authentication then PERMISSION_DENIED)."""
        kinds = {
            "unary_unary": grpc.unary_unary_rpc_method_handler,
            "unary_stream": grpc.unary_stream_rpc_method_handler,
            "stream_unary": grpc.stream_unary_rpc_method_handler,
            "stream_stream": grpc.stream_stream_rpc_method_handler,
        }
        for kind, make in kinds.items():
            inner = getattr(handler, kind)
            if inner is None:
                continue
            if kind.endswith("_stream"):

                async def streaming(request: Any, context: Ctx, inner: Any = inner) -> AsyncIterator[Any]:
                    await self._check(context, deny)
                    async for item in inner(request, context):
                        yield item

                behavior: Any = streaming
            else:

                async def single(request: Any, context: Ctx, inner: Any = inner) -> Any:
                    await self._check(context, deny)
                    return await inner(request, context)

                behavior = single
            return make(  # type: ignore[no-any-return]
                behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
            )
        return handler

    async def _check(self, context: Ctx, deny: bool) -> None:
        await self._authenticate(context)
        if deny:
            await status.abort(context, errors.PermissionDenied("this method is not open to any caller"))
