"""ChainedServer through a real grpc.aio server: handlers wrapped once, at registration; unknown methods untouched."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from pushsvc.rpc.chain import ChainedServer, HandlerChain
from pushsvc.rpc.interception import Handler, MethodInterceptor

SERVICE = "pushsvc.test.Echo"


class Recording(MethodInterceptor):
    """Records the methods it wraps, and each call its wrapper runs (in `ran`, shared by the chain)."""

    def __init__(self, name: str, ran: list[str]) -> None:
        super().__init__()
        self.name = name
        self.ran = ran
        self.wrapped: list[str] = []

    def wrap(self, method: str, handler: Handler) -> Handler:
        self.wrapped.append(method)
        inner: Any = handler.unary_unary

        async def unary(request: bytes, context: Any) -> bytes:
            self.ran.append(self.name)
            return bytes(await inner(request, context))

        return grpc.unary_unary_rpc_method_handler(unary)


async def _echo(request: bytes, context: Any) -> bytes:
    return b"echo:" + request


def _handlers() -> dict[str, Handler]:
    return {"Say": grpc.unary_unary_rpc_method_handler(_echo)}


async def _call(port: int, method: str, body: bytes) -> bytes | grpc.StatusCode:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return bytes(await channel.unary_unary(method)(body, timeout=5))
        except grpc.aio.AioRpcError as exc:
            return exc.code()


@pytest.mark.parametrize("registration", ["registered", "generic", "both"])
async def test_each_method_is_wrapped_once_and_calls_run_the_chain_outermost_first(registration: str) -> None:
    ran: list[str] = []
    outer, inner = Recording("outer", ran), Recording("inner", ran)
    server = grpc.aio.server()
    registrar = ChainedServer(server, HandlerChain([outer, inner]))
    handlers = _handlers()
    # grpc's own add_*Servicer_to_server helpers make both calls, with the same handlers.
    if registration in ("generic", "both"):
        registrar.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if registration in ("registered", "both"):
        registrar.add_registered_method_handlers(SERVICE, handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        for body in (b"a", b"b", b"c"):
            assert await _call(port, f"/{SERVICE}/Say", body) == b"echo:" + body
        assert ran == ["outer", "inner"] * 3
        assert outer.wrapped == inner.wrapped == [f"/{SERVICE}/Say"]
        # Unknown methods, of a known service or not: UNIMPLEMENTED, and nothing of the chain runs or wraps.
        for method in (f"/{SERVICE}/Nope", "/pushsvc.test.Other/Say"):
            assert await _call(port, method, b"x") == grpc.StatusCode.UNIMPLEMENTED
        assert ran == ["outer", "inner"] * 3
        assert outer.wrapped == inner.wrapped == [f"/{SERVICE}/Say"]
    finally:
        await server.stop(0)
