"""ConnectServer: PushService over Connect and gRPC-web, on a port of its own, served by uvicorn.

Its own port, not the gRPC one: grpcio's server owns its listening socket and
speaks only gRPC over HTTP/2, so sharing it would take a proxy in front of
both or replacing grpcio's server, the part every gRPC client depends on.
A second port costs nothing to the gRPC callers and can stay closed
(`connect_port = 0`, serve's default).

uvicorn speaks HTTP/1.1, which is what curl, browsers (gRPC-web) and Connect
clients use by default; gRPC proper, which needs HTTP/2 trailers, stays on the
gRPC port. The port is plaintext, like the gRPC port without `[tls]`; the
settings refuse it together with `[tls]`.

The drain: `begin_drain` ends receipt streams with UNAVAILABLE (new calls are
already refused by the LiveCalls gate, shared with the gRPC server); `stop`
then closes the listener and waits, within its grace, for the responses in
flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from typing import Any

import uvicorn
from connectrpc.server import ConnectASGIApplication

from pushsvc.clock import Clock
from pushsvc.connect.codecs import BinaryCodec, JsonCodec
from pushsvc.connect.endpoints import deserializers, endpoints, handler_chain
from pushsvc.rpc import methods
from pushsvc.rpc.interception import MethodInterceptor
from pushsvc.rpc.servicers import PushServicer
from pushsvc.service import PushService
from pushsvc.throttle import LogThrottle

log = logging.getLogger("pushsvc.connect")

READ_MAX_BYTES = 4 * 1024 * 1024
"""The largest request message, as grpc's default receive limit on the gRPC port."""


class _PushServiceApp(ConnectASGIApplication[Any]):
    @property
    def path(self) -> str:
        return f"/{methods.SERVICE.full_name}"


class _Uvicorn(uvicorn.Server):
    """uvicorn's server without its signal handlers: pushsvc's CLI owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class ConnectServer:
    """Owns the uvicorn server. `start()` binds and returns the port; `stop(grace_s)` drains."""

    def __init__(
        self,
        service: PushService,
        *,
        clock: Clock,
        interceptors: Sequence[MethodInterceptor],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`interceptors`: the gRPC server's chain, outermost first (telemetry, its LiveCalls, auth)."""
        self._draining = asyncio.Event()
        chain = handler_chain(
            PushServicer(service, self._draining), interceptors, LogThrottle(log, clock, interval_s=1.0)
        )
        app = _PushServiceApp(
            service=None,
            endpoints=lambda _service: endpoints(chain),
            read_max_bytes=READ_MAX_BYTES,
            codecs=[BinaryCodec(deserializers(chain)), JsonCodec()],
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # pushsvc's telemetry logs each call; uvicorn's own lines stay at WARNING.
            log_level="warning",
        )
        self._server = _Uvicorn(config)
        self._address = (host, port)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> int:
        """Binds and serves; returns the bound port (useful with port 0)."""
        # Bound here, so a taken port is an OSError (uvicorn's own bind calls sys.exit).
        family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self._address)
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="pushsvc-connect")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # the bind failed: raise its error
                raise OSError("the Connect server stopped while starting")
            await asyncio.sleep(0.01)
        return self.port

    def begin_drain(self) -> None:
        """Ends receipt streams with UNAVAILABLE; returns at once."""
        self._draining.set()

    async def stop(self, grace_s: float) -> None:
        """Closes the port and waits up to `grace_s` for responses in flight, then cancels them."""
        self.begin_drain()
        if self._task is None:
            return
        self._server.config.timeout_graceful_shutdown = max(1, round(grace_s))  # whole seconds, as uvicorn types it
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s + 1.0)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
