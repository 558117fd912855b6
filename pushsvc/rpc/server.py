"""GrpcServer: grpc.aio server with PushService, health and reflection.

Two health answers, for two questions. `liveness` (LIVENESS_SERVICE) says
whether the process works: SERVING from the moment the port is bound, whatever
the store does, until the drain; an event loop that hangs does not answer at
all. A store outage is not the process's fault and a restart would not end it,
so Kubernetes' liveness and startup probes ask this name.

Readiness (`grpc.health.v1`, for "" and pushsvc.v1.PushService) says NOT_SERVING
from before the port binds until the application calls `set_serving(True)`,
whenever it calls `set_serving(False)` (the store is unreachable), and from the
start of the drain to the end. The drain, `stop(grace_s)`:

1. health turns NOT_SERVING (and stays so: later `set_serving` calls are ignored);
2. new PushService calls get UNAVAILABLE (health and reflection still answer);
3. receipt streams waiting for their next receipt end with UNAVAILABLE;
4. unary calls in flight finish and their answers go out (within the grace);
5. health Watch streams end with UNAVAILABLE;
6. grpc's graceful shutdown stops the server. Streams still open then get
   `_STREAMS_END_S`, and calls still running then get as long; then grpc
   cancels them with UNAVAILABLE. Unary calls are waited for only so long
   that this last step still ends within the grace. A stream whose client
   stopped reading cannot end by itself (its writes, the final status
   included, wait on HTTP/2 flow control), so it cannot hold the drain.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from pushsvc.clock import Clock
from pushsvc.metrics import NULL_METRICS, Metrics
from pushsvc.rpc import methods
from pushsvc.rpc.calls import LiveCalls
from pushsvc.rpc.chain import ChainedServer, HandlerChain
from pushsvc.rpc.interception import MethodInterceptor
from pushsvc.rpc.servicers import PushServicer
from pushsvc.rpc.symbols import MethodSymbols
from pushsvc.service import PushService
from pushsvc.throttle import LogThrottle

log = logging.getLogger("pushsvc.rpc")

SERVICE_NAME = methods.SERVICE.full_name
LIVENESS_SERVICE = "liveness"
"""The health service name that is SERVING while the process runs (the liveness probe's); see the module docstring."""


@dataclasses.dataclass(frozen=True)
class ServerDrain:
    """What the drain found and what it had to cut short, for its log lines."""

    unary_in_flight: int
    """Unary calls in flight when the drain began."""
    unary_cancelled: int
    """Of those and later ones, calls still running when the grace ran out (grpc cancelled them)."""
    streams_cancelled: int
    """Receipt streams still open at the end, cancelled with UNAVAILABLE."""


class GrpcServer:
    """Owns the grpc.aio server. `start()` binds and returns; `stop(grace_s)` drains."""

    def __init__(
        self,
        service: PushService,
        *,
        clock: Clock,
        host: str = "0.0.0.0",
        port: int = 50051,
        keepalive_time_s: float = 60.0,
        keepalive_timeout_s: float = 20.0,
        keepalive_min_ping_interval_s: float = 30.0,
        max_connection_age_s: float = 300.0,
        max_connection_age_grace_s: float = 30.0,
        interceptors: Sequence[MethodInterceptor] = (),
        credentials: grpc.ServerCredentials | None = None,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._draining = asyncio.Event()
        self._metrics = metrics
        self.health = HealthServicer()
        self.calls = LiveCalls()
        """The PushService calls in flight; refuses new ones while starting and draining."""
        self._server = grpc.aio.server(
            options=[
                # The server pings an idle connection every keepalive_time_s and
                # closes it when no answer comes within keepalive_timeout_s, so
                # peers that vanished without a FIN are found.
                ("grpc.keepalive_time_ms", _ms(keepalive_time_s)),
                ("grpc.keepalive_timeout_ms", _ms(keepalive_timeout_s)),
                # Clients may ping this often, with or without calls in flight,
                # before the server answers GOAWAY too_many_pings (grpc's own
                # default is 5 minutes, which punishes common client keepalives).
                # This is GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS.
                ("grpc.http2.min_ping_interval_without_data_ms", _ms(keepalive_min_ping_interval_s)),
                ("grpc.keepalive_permit_without_calls", 1),
                # Bounded connection age lets a mesh's load balancer rebalance.
                ("grpc.max_connection_age_ms", _ms(max_connection_age_s)),
                ("grpc.max_connection_age_grace_ms", _ms(max_connection_age_grace_s)),
                ("grpc.so_reuseport", 0),
            ],
            # No grpc.aio interceptors: they would run on every call. The chain is
            # applied to each handler once, at registration (pushsvc.rpc.chain).
        )
        # Telemetry (pushsvc.rpc.telemetry, first of `interceptors`) sees every
        # answer; then LiveCalls, so a call refused while starting or draining
        # costs no auth work; then auth (pushsvc.auth.AuthInterceptor) decides
        # every call before a servicer runs. Every service goes through it.
        registrar = ChainedServer(self._server, HandlerChain([*interceptors[:1], self.calls, *interceptors[1:]]))
        self._credentials = credentials
        # Not the generated add_PushServiceServicer_to_server: its deserializer
        # turns a malformed request into UNKNOWN and a logged traceback.
        methods.add_to_server(
            PushServicer(service, self._draining), registrar, LogThrottle(log, clock, interval_s=1.0)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, registrar)
        # What reflection.enable_server_reflection does for a grpc.aio server
        # (it picks the asyncio servicer only for a grpc.aio.Server, which the
        # registrar is not). MethodSymbols: reflection resolves method names
        # too, so grpcurl describe and ghz work on methods without a proto file.
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(
                (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
                pool=MethodSymbols(),
            ),
            registrar,
        )
        self._address = f"{host}:{port}"
        self.port = 0

    async def start(self) -> int:
        """Binds and starts serving; returns the bound port (useful with port 0).

        Health says NOT_SERVING, and PushService calls get UNAVAILABLE, until `set_serving(True)`.
        """
        # The servicer starts with "" SERVING and PushService unknown: both say
        # NOT_SERVING before the port is bound, so no probe sees a false SERVING.
        await self.set_serving(False)
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        if self._credentials is not None:
            self.port = self._server.add_secure_port(self._address, self._credentials)
        else:
            self.port = self._server.add_insecure_port(self._address)
        if not self.port:
            raise OSError(f"cannot bind gRPC port {self._address}")
        await self._server.start()
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """Reports SERVING or NOT_SERVING for the overall server and PushService.

        The first SERVING also opens PushService to calls. Ignored once the drain has begun.
        """
        state = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.health.set(name, state)
        self._metrics.set_serving(serving)
        if serving:
            self.calls.serve()

    async def begin_drain(self) -> None:
        """Steps 1-3 of the drain (see the module docstring); returns at once. Idempotent."""
        await self.health.enter_graceful_shutdown()
        self._metrics.set_serving(False)
        self.calls.drain()
        self._draining.set()

    async def stop(self, grace_s: float) -> ServerDrain:
        """Drains (see the module docstring) and stops, within `grace_s` seconds; says what it cut short."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        await self.begin_drain()
        in_flight = self.calls.unary_in_flight
        # Keep the streams' last moment inside the grace: unary calls wait that much less.
        streams_end_s = min(_STREAMS_END_S, grace_s / 2)
        settled = await self.calls.settled(deadline - streams_end_s - loop.time())
        unary_left, streams_left = self.calls.unary_in_flight, self.calls.streams
        if not settled:
            log.warning(
                "drain: the %.1f s the grace leaves for calls ran out with %d unary call(s) in flight and %d stream(s) open; cancelling them",
                grace_s, unary_left, streams_left,
            )
        self.calls.close()
        if not settled or self.calls.streams:
            # Streams were told to end when the drain began; one whose client
            # stopped reading cannot, so what is left after a short while is
            # cancelled (UNAVAILABLE to each caller) rather than waited for.
            await self._server.stop(max(0.0, min(streams_end_s, deadline - loop.time())))
        else:
            # Nothing of ours is left: grpc's graceful shutdown; only a stray
            # untracked call could hold it.
            await self._server.stop(max(0.0, deadline - loop.time()))
        return ServerDrain(in_flight, 0 if settled else unary_left, streams_left)

    async def wait(self) -> None:
        """Returns when the server has stopped."""
        await self._server.wait_for_termination()


_STREAMS_END_S = 0.5
"""How long streams still open get, once no unary call is left, before grpc
cancels them. grpc's graceful GOAWAY goes out at its start: grpc-js destroys a
connection whose first GOAWAY carries an error code (what a bare cancel
sends), and with it the receipts and the UNAVAILABLE its caller had not read
yet; after a graceful GOAWAY it reads them, then UNAVAILABLE."""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
