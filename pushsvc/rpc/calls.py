"""LiveCalls: the PushService calls in flight, and the gate that refuses new ones.

A `MethodInterceptor`, right inside telemetry, so it sees every PushService
call before auth and the servicer. It exists for the drain (see `GrpcServer.stop`):

- while the replica is starting or draining, a new call is answered
  UNAVAILABLE at once, so the caller retries on another replica, while health
  and reflection stay reachable (grpc's own shutdown would refuse those too);
- it knows when the unary calls in flight have finished (their answer sent);
- it counts the receipt streams still open. A client that stops reading
  leaves the server's writes waiting on HTTP/2 flow control, its messages and
  its final status alike (`context.abort` queues behind the same blocked
  data), so such a stream may never end by itself. Only the server's
  cancellation of its remaining calls ends it (with UNAVAILABLE), which the
  drain does shortly after the unary calls are done instead of waiting out
  the grace period;
- it ends health Watch streams (which never end by themselves) with
  UNAVAILABLE when the drain closes, so they do not hold the server's own
  graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from pushsvc import errors
from pushsvc.rpc import status
from pushsvc.rpc.interception import Handler, MethodInterceptor

SERVICE_PREFIX = "/pushsvc.v1.PushService/"
WATCH = "/grpc.health.v1.Health/Watch"

Ctx = grpc.aio.ServicerContext[Any, Any]


class Phase(enum.Enum):
    """Whether PushService calls are taken."""

    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"


class LiveCalls(MethodInterceptor):
    """Tracks PushService calls and refuses new ones unless SERVING; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = Phase.STARTING
        self._unary: set[object] = set()
        self._streams: set[object] = set()
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()

    @property
    def unary_in_flight(self) -> int:
        """Unary calls started and not yet answered."""
        return len(self._unary)

    @property
    def streams(self) -> int:
        """Receipt streams still open."""
        return len(self._streams)

    def serve(self) -> None:
        """Takes new calls (after start-up)."""
        if self.phase is Phase.STARTING:
            self.phase = Phase.SERVING

    def drain(self) -> None:
        """Refuses new calls from now on."""
        self.phase = Phase.DRAINING

    def close(self) -> None:
        """Ends the health Watch streams (UNAVAILABLE): the last step before the server stops."""
        self._closed.set()

    async def settled(self, timeout_s: float) -> bool:
        """Waits until no unary call is in flight; False when `timeout_s` ran out first."""
        try:
            async with asyncio.timeout(max(0.0, timeout_s)):
                while self._unary:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    def wrap(self, method: str, handler: Handler) -> Handler:
        """PushService methods and health Watch are wrapped; other services pass through."""
        if method == WATCH and handler.unary_stream is not None:
            return self._wrap_watch(handler)
        if method.startswith(SERVICE_PREFIX):
            return self._wrap(handler)
        return handler

    async def _admit(self, context: Ctx) -> None:
        if self.phase is Phase.SERVING:
            return
        reason = "starting" if self.phase is Phase.STARTING else "draining"
        await status.abort(context, errors.ShuttingDown(f"this replica is {reason}; retry on another"))

    def _done(self, key: object) -> None:
        self._unary.discard(key)
        self._streams.discard(key)
        self._changed.set()

    def _wrap(self, handler: Handler) -> Handler:
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: Ctx) -> Any:
                if self.phase is not Phase.SERVING:  # checked here first: no coroutine per call to admit it
                    await self._admit(context)
                key = object()
                self._unary.add(key)
                # Done when the answer has gone out, not when the handler returns.
                context.add_done_callback(lambda _ctx: self._done(key))  # type: ignore[arg-type]  # types-grpcio types the callback as a class, not a callable
                return await inner_unary(request, context)  # type: ignore[arg-type]  # types-grpcio types grpc.aio handlers as sync ones

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: Ctx) -> AsyncIterator[Any]:
                await self._admit(context)
                key = object()
                self._streams.add(key)
                context.add_done_callback(lambda _ctx: self._done(key))  # type: ignore[arg-type]  # types-grpcio types the callback as a class, not a callable
                async for item in inner_stream(request, context):  # type: ignore[attr-defined,arg-type]  # types-grpcio types grpc.aio handlers as sync ones
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
            )
        return handler

    def _wrap_watch(self, handler: Handler) -> Handler:
        # types-grpcio types grpc.aio handlers as sync ones; this one is a coroutine function.
        inner_watch: Callable[[Any, Ctx], Awaitable[None]] = handler.unary_stream  # type: ignore[assignment]  # health's aio Watch is a coroutine writing with context.write(), not an iterator

        async def watch(request: Any, context: Ctx) -> None:
            # The health servicer's Watch writes through the context until the
            # call ends; it runs beside the drain's close signal.
            watching = asyncio.ensure_future(inner_watch(request, context))
            closing = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait({watching, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
                if not watching.done():
                    watching.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watching
            if not watching.cancelled():
                watching.result()  # the Watch ended by itself (or failed): as it did
                return
            await status.abort(context, errors.ShuttingDown("server is shutting down"))

        return grpc.unary_stream_rpc_method_handler(
            watch, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
