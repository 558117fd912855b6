"""The interceptor with handlers whose deserializer does not raise on bad bytes (it hands over a marker)."""

from __future__ import annotations

from typing import Any

import grpc

from pushsvc.access import Action, AppScope, Principal, hash_key, new_key
from pushsvc.auth.apikeys import ApiKey, ApiKeyRing
from pushsvc.auth.authenticator import CredentialAuthenticator
from pushsvc.rpc.auth import AuthInterceptor
from pushsvc.v1 import push_pb2 as pb


class Marker:
    """What a tolerant deserializer returns for bytes that are not a message."""


async def _send(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> pb.SendResponse:
    if isinstance(request, Marker):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a SendRequest")
    return pb.SendResponse(notification_id="n1")


def _tolerant(data: bytes) -> Any:
    try:
        return pb.SendRequest.FromString(data)
    except Exception:  # noqa: BLE001 - the point: never raise
        return Marker()


async def test_undecodable_requests_are_authenticated_then_left_to_the_handler() -> None:
    key = new_key()
    principal = Principal("key:t", AppScope.parse(["alpha"]), frozenset({Action.SEND}))
    server = grpc.aio.server(interceptors=[AuthInterceptor(CredentialAuthenticator(ApiKeyRing([ApiKey(hash_key(key), principal)])))])
    handler = grpc.unary_unary_rpc_method_handler(
        _send, request_deserializer=_tolerant, response_serializer=pb.SendResponse.SerializeToString
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("pushsvc.v1.PushService", {"Send": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            raw = channel.unary_unary("/pushsvc.v1.PushService/Send")  # bytes in, bytes out

            async def code(body: bytes, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
                try:
                    await raw(body, metadata=metadata, timeout=5)
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
                return grpc.StatusCode.OK

            auth = (("authorization", f"Bearer {key}"),)
            garbage = b"\x0a\xff\xff"
            assert await code(garbage, ()) == grpc.StatusCode.UNAUTHENTICATED
            assert await code(garbage, auth) == grpc.StatusCode.INVALID_ARGUMENT
            assert await code(pb.SendRequest(app_id="alpha").SerializeToString(), auth) == grpc.StatusCode.OK
            assert await code(pb.SendRequest(app_id="beta").SerializeToString(), auth) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(0)
