"""GrpcServer: grpc.aio server with PushService, health and reflection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from pushsvc.clock import Clock
from pushsvc.metrics import NULL_METRICS, Metrics
from pushsvc.rpc import methods
from pushsvc.rpc.servicers import PushServicer
from pushsvc.rpc.symbols import MethodSymbols
from pushsvc.service import PushService
from pushsvc.throttle import LogThrottle

log = logging.getLogger("pushsvc.rpc")

SERVICE_NAME = methods.SERVICE.full_name


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
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        credentials: grpc.ServerCredentials | None = None,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._draining = asyncio.Event()
        self._metrics = metrics
        self.health = HealthServicer()
        self._server = grpc.aio.server(
            options=[
                ("grpc.keepalive_time_ms", int(keepalive_time_s * 1000)),
                ("grpc.keepalive_timeout_ms", int(keepalive_timeout_s * 1000)),
                ("grpc.http2.min_ping_interval_without_data_ms", int(keepalive_min_ping_interval_s * 1000)),
                ("grpc.keepalive_permit_without_calls", 1),
                # Bounded connection age lets a mesh's load balancer rebalance.
                ("grpc.max_connection_age_ms", int(max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace_s * 1000)),
                ("grpc.so_reuseport", 0),
            ],
            # Telemetry (pushsvc.rpc.telemetry) first, so it sees every answer;
            # then auth (pushsvc.auth.AuthInterceptor) decides every call before a servicer runs.
            interceptors=interceptors,
        )
        self._credentials = credentials
        # Not the generated add_PushServiceServicer_to_server: its deserializer
        # turns a malformed request into UNKNOWN and a logged traceback.
        methods.add_to_server(
            PushServicer(service, self._draining), self._server, LogThrottle(log, clock, interval_s=1.0)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        # MethodSymbols: reflection resolves method names too, so grpcurl
        # describe and ghz work on methods without a proto file.
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server,
            pool=MethodSymbols(),  # type: ignore[arg-type]  # duck-typed: the pool's API plus method names
        )
        self._address = f"{host}:{port}"
        self.port = 0

    async def start(self) -> int:
        """Binds and starts serving; returns the bound port (useful with port 0)."""
        if self._credentials is not None:
            self.port = self._server.add_secure_port(self._address, self._credentials)
        else:
            self.port = self._server.add_insecure_port(self._address)
        if not self.port:
            raise OSError(f"cannot bind gRPC port {self._address}")
        await self._server.start()
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """Reports SERVING or NOT_SERVING for the overall server and PushService."""
        state = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.health.set(name, state)
        self._metrics.set_serving(serving)

    async def stop(self, grace_s: float) -> None:
        """Drains: NOT_SERVING, end streams with UNAVAILABLE, finish in-flight calls within the grace."""
        await self.health.enter_graceful_shutdown()
        self._metrics.set_serving(False)
        self._draining.set()
        await self._server.stop(grace_s)

    async def wait(self) -> None:
        """Returns when the server has stopped."""
        await self._server.wait_for_termination()
