"""The composition root: Settings in, a running Application out.

Nothing else in pushsvc builds concrete adapters. Every background task
created here has an owner (`Application`) that stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pushsvc import models
from pushsvc.apps import AppProfile, Renderer
from pushsvc.auth.build import build_authenticator, build_tls
from pushsvc.channels import registry, secrets
from pushsvc.channels.base import BuildContext
from pushsvc.clock import Clock, SystemClock
from pushsvc.config import ConfigError, Settings, TracingSettings
from pushsvc.dispatch import Dispatcher
from pushsvc.metrics import NULL_METRICS, Metrics
from pushsvc.prometheus import MetricsServer, PrometheusMetrics
from pushsvc.providers.base import Provider
from pushsvc.receipts import ReceiptFeed, ReceiptSignal
from pushsvc.rpc.auth import AuthInterceptor
from pushsvc.rpc.interception import MethodInterceptor
from pushsvc.rpc.server import GrpcServer
from pushsvc.rpc.telemetry import TelemetryInterceptor
from pushsvc.rpc.tracing import TracingInterceptor
from pushsvc.service import PushService
from pushsvc.storage import Stores, open_stores
from pushsvc.storage.watch import StoreCalls
from pushsvc.tracing import NULL_TRACER, Tracer
from pushsvc.tracing.otel import OtelTracer
from pushsvc.webhooks import signing
from pushsvc.webhooks.httpclient import TransportPoster
from pushsvc.webhooks.poster import WebhookPoster
from pushsvc.webhooks.sender import Endpoint, WebhookSenders, build_senders

if TYPE_CHECKING:
    from pushsvc.connect import ConnectServer

log = logging.getLogger("pushsvc")


@dataclasses.dataclass
class Application:
    """Everything one replica runs, with start and stop."""

    settings: Settings
    stores: Stores
    service: PushService
    server: GrpcServer
    dispatcher: Dispatcher
    providers: Mapping[tuple[str, models.Platform], Provider]
    clock: Clock
    store_calls: StoreCalls
    """The components' store calls in flight (the health watcher counts a hung one as a failure)."""
    closers: list[Callable[[], None]] = dataclasses.field(default_factory=list)
    """Release what providers share (OAuth token sources) after they are closed."""
    owns_stores: bool = True
    """False when the stores were handed in (shared with another Application)."""
    metrics: Metrics = NULL_METRICS
    """What the components count (no-op when the endpoint is off)."""
    metrics_server: MetricsServer | None = None
    """Serves `metrics` at /metrics; None when the endpoint is off."""
    webhooks: WebhookSenders | None = None
    """The receipt webhook senders (one task per configured endpoint); None when none is configured."""
    connect: ConnectServer | None = None
    """PushService over Connect and gRPC-web; None when `connect_port` is off."""
    _tasks: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)
    _store_ok: bool = True

    @property
    def port(self) -> int:
        """The bound gRPC port."""
        return self.server.port

    @property
    def connect_port(self) -> int:
        """The bound Connect port (0 when it is off)."""
        return self.connect.port if self.connect is not None else 0

    @property
    def metrics_port(self) -> int:
        """The bound metrics port (0 when the endpoint is off)."""
        return self.metrics_server.port if self.metrics_server is not None else 0

    async def start(self) -> int:
        """Creates indexes, binds the gRPC port, starts the dispatcher; returns the port.

        The server reports SERVING only once the store has answered.
        """
        port = await self.server.start()  # NOT_SERVING, and PushService refused, until the store is prepared
        try:
            if self.connect is not None:
                # Refused (UNAVAILABLE) like the gRPC port's calls until SERVING: the two share one gate.
                await self.connect.start()
            if self.metrics_server is not None:
                # Scrapable while starting: serving 0 says why traffic waits.
                self.metrics_server.start()
            await self.stores.prepare()
        except BaseException:
            await self.server.stop(0)
            if self.connect is not None:
                await self.connect.stop(0)
            if self.metrics_server is not None:
                await self.metrics_server.stop()
            raise
        self.metrics.set_store_up(True)
        await self.server.set_serving(True)
        await self.dispatcher.reclaim()
        self.dispatcher.start()
        if self.webhooks is not None:
            self.webhooks.start()
        self._tasks.append(asyncio.create_task(self._watch_store(), name="pushsvc-store-health"))
        if self.metrics_server is not None:
            self._tasks.append(asyncio.create_task(self._sample_queue(), name="pushsvc-queue-depth"))
        if self.stores.needs_sweep:
            log.info("receipts past retention are removed by a sweep every %.0f s", self.settings.sweep_interval_s)
            self._tasks.append(asyncio.create_task(self._sweep(), name="pushsvc-receipt-sweep"))
        return port

    async def _watch_store(self) -> None:
        # NOT_SERVING while the store is unreachable, so probes and load
        # balancers route around this replica: at once when a store call
        # fails, when a store call has waited `store_stall_s` for its answer
        # (a store can hang without failing, and still answer pings), or when
        # the ping fails or does not answer within `store_stall_s`.
        failed = asyncio.Event()
        self.stores.on_failure(failed.set)
        calls, stall_s = self.store_calls, self.settings.store_stall_s
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self.settings.health_interval_s
        # After a stall, the store is back once a call is answered again, not
        # at the first ping: FerretDB answered pings while every call to the
        # database hung, and SERVING came back each time the driver gave up on one.
        answered_at_stall: int | None = None
        while True:
            # Waking at least every `stall_s`, then exactly when the oldest call
            # would pass it, sees a hung call `stall_s` after it started.
            wake_s = next_ping - loop.time()
            if calls.oldest_s() < stall_s:
                wake_s = min(wake_s, stall_s - calls.oldest_s())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(failed.wait(), max(wake_s, 0.0))
            if calls.oldest_s() >= stall_s:
                ok = False
                if answered_at_stall is None:
                    answered_at_stall = calls.answered
                if loop.time() >= next_ping:
                    # No ping while a call hangs, and no waking before the next one is due.
                    next_ping = loop.time() + self.settings.health_interval_s
            elif failed.is_set():
                ok = False
            elif loop.time() >= next_ping:
                ok = await self._ping(stall_s) and (answered_at_stall is None or calls.answered > answered_at_stall)
                next_ping = loop.time() + self.settings.health_interval_s
            else:
                continue  # woke for the oldest call, which was answered in time
            if ok:
                answered_at_stall = None
            failed.clear()
            if ok != self._store_ok:
                self._store_ok = ok
                self.metrics.set_store_up(ok)
                log.warning("store is %s", "reachable again" if ok else "unreachable")
                await self.server.set_serving(ok)

    async def _ping(self, timeout_s: float) -> bool:
        # A ping that does not answer is a failed one (a serialised store
        # queues it behind the call that hangs).
        try:
            return await asyncio.wait_for(self.stores.ping(), timeout_s)
        except TimeoutError:
            return False

    async def _sample_queue(self) -> None:
        # A count in the store: sampled on the health watcher's interval, not per scrape,
        # so scrapes never reach the store.
        while True:
            with contextlib.suppress(Exception):
                self.metrics.set_queue_depth(await self.stores.notifications.queue_depth())
            await asyncio.sleep(self.settings.health_interval_s)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            with contextlib.suppress(Exception):
                await self.stores.sweep_expired(self.clock.now())

    async def stop(self, grace_s: float | None = None) -> None:
        """The drain: everything below happens within `grace_s` (default `settings.grace_s`).

        1. health turns NOT_SERVING, new RPCs get UNAVAILABLE, and the
           dispatcher claims no new partition (all at once);
        2. unary calls in flight finish; receipt streams end with UNAVAILABLE
           (`GrpcServer.stop`);
        3. each fan-out batch in flight finishes and is checkpointed, and its
           partition is given back at once; a batch still running when the
           grace ends is cancelled and its partition resumes elsewhere from the
           last checkpoint (at most that batch is sent twice; the receipt log
           keeps one receipt per token);
        4. the remaining leases are released, providers and the store closed.

        Every step that waits on the store or a provider is bounded by what is
        left of the grace, so a store that hangs cannot hold the exit. Each
        step logs one line with its counts.
        """
        grace = self.settings.grace_s if grace_s is None else grace_s
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + grace
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.webhooks is not None:
            # First, and briefly: a POST cut short is offered again under its id by whoever sends next.
            await self.webhooks.stop(min(_WEBHOOK_RELEASE_S, grace / 4))
        await self.server.begin_drain()
        if self.connect is not None:
            self.connect.begin_drain()
        self.dispatcher.drain()
        log.info(
            "drain: health NOT_SERVING, new calls refused; %d unary call(s) in flight, %d receipt stream(s) open, "
            "%d partition(s) being sent; grace %.1f s",
            self.server.calls.unary_in_flight, self.server.calls.streams, self.dispatcher.working, grace,
        )
        # The dispatcher's batches run meanwhile; the server's share leaves it time to give its leases back.
        served = await self.server.stop(max(0.0, deadline - loop.time() - min(_DISPATCH_RESERVE_S, grace / 4)))
        log.info(
            "drain: calls done after %.1f s: %d unary call(s) finished, %d cancelled at the grace; %d receipt stream(s) ended with UNAVAILABLE",
            loop.time() - started, served.unary_in_flight - min(served.unary_in_flight, served.unary_cancelled),
            served.unary_cancelled, served.streams_cancelled,
        )
        if self.connect is not None:
            # Its unary calls were waited for with the gRPC ones (one LiveCalls); this closes its port.
            await self.connect.stop(max(0.0, deadline - loop.time() - min(_DISPATCH_RESERVE_S, grace / 4)))
        dispatched = await self.dispatcher.stop(grace_s=max(0.0, deadline - loop.time()))
        log.info(
            "drain: dispatcher stopped after %.1f s: %d partition(s) were being sent, %d batch(es) cancelled; %s",
            loop.time() - started, dispatched.partitions_in_flight, dispatched.batches_cancelled,
            f"{dispatched.released} lease(s) released" if dispatched.released is not None else "leases left to expire",
        )
        # Closing sends GOAWAY and waits for nothing the peer owes us; bounded all the same.
        closing = [asyncio.ensure_future(provider.aclose()) for provider in self.providers.values()]
        if closing:
            _, unclosed = await asyncio.wait(closing, timeout=max(_CLOSE_MIN_S, deadline - loop.time()))
            for task in unclosed:
                task.cancel()
            for task in closing:
                with contextlib.suppress(BaseException):
                    await task
        for close in self.closers:
            with contextlib.suppress(Exception):
                close()
        if self.owns_stores:
            self.stores.close()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        log.info("drain: done in %.1f s (grace %.1f s)", loop.time() - started, grace)


_DISPATCH_RESERVE_S = 1.0
"""The least part of the grace the dispatcher gets after the server's share (its batches run during both)."""
_WEBHOOK_RELEASE_S = 1.0
"""The most of the grace that giving the webhook leases back may take."""
_CLOSE_MIN_S = 0.2
"""What closing the providers gets even when the grace has run out."""

GC_GEN0_THRESHOLD = 20_000
"""Allocations between young collections for a server process (Python's default is 700)."""


def tune_garbage_collector() -> None:
    """Sets the cyclic collector's thresholds for a long-running server process; `pushsvc dev` and `serve` call it.

    The registry's dicts and sets count as one tracked object each however
    many entries they hold, so with the default thresholds a full collection
    comes every few thousand surviving objects and then walks every entry.
    A 1,000,000-token import into memory:// (bench/tokens_import.py) cost the
    gateway 44 s of CPU with the defaults and 22 to 25 s with this. Fewer young collections mean
    fewer survivors promoted, and so fewer full ones; the garbage a young
    collection finds is the same, found later.
    """
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def freeze_startup_heap() -> int:
    """Takes what is alive once the application has started out of the collector's walks (`gc.freeze`); returns how many objects.

    `serve` and `pushsvc dev` call it after `Application.start`. By then the
    process holds some 62,000 tracked objects (modules, classes, gRPC,
    pydantic models, the settings) that live as long as it does, and every
    full collection walked them all: 30 to 37 ms each, 37 of them (1.4 s) in
    a 1,000,000-token fan-out on memory://. Frozen, a full collection walks
    only what came after. The garbage bootstrap left is collected first;
    a frozen object that later becomes part of an unreachable cycle is never
    freed, which for what startup builds (and keeps) is nothing.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def build_app_profiles(settings: Settings) -> dict[str, AppProfile]:
    """Which platforms each app can send to, and how to render for them."""
    profiles = {}
    for app_id, app in settings.apps.items():
        renderers: dict[models.Platform, Renderer] = {}
        checks: dict[models.Platform, Callable[[str], str]] = {}
        for channel in registry.CHANNELS:
            section = getattr(app, channel.settings_key)
            if section is not None:
                renderers[channel.platform] = channel.renderer(section)
            if channel.app_token_check is not None:
                checks[channel.platform] = channel.app_token_check(section)
        profiles[app_id] = AppProfile(
            app_id=app_id, renderers=renderers, token_checks=checks, default_max_per_second=app.default_max_per_second
        )
    return profiles


def build_providers(
    settings: Settings, clock: Clock | None = None, metrics: Metrics = NULL_METRICS
) -> tuple[dict[tuple[str, models.Platform], Provider], list[Callable[[], None]]]:
    """One provider per app and channel, each with its own HTTP/2 transport; what a channel shares is its own (one JWT signer per APNs key).

    Returns the providers and the closers of what they share (OAuth token sources).
    `clock` is the process clock (the system clock when omitted); `metrics`
    counts JWT mints and OAuth fetches.
    """
    context = BuildContext(dispatch=settings.dispatch, clock=clock or SystemClock(), metrics=metrics, closers=[])
    providers: dict[tuple[str, models.Platform], Provider] = {}
    problems: list[str] = []
    for app_id, app in settings.apps.items():
        # Every app and platform is tried, so one run names every bad credential.
        for channel in registry.CHANNELS:
            section = getattr(app, channel.settings_key)
            if section is None:
                continue
            try:
                providers[(app_id, channel.platform)] = channel.build_provider(
                    section, f"apps.{app_id}.{channel.settings_key}", context
                )
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        for close in context.closers:
            close()
        raise ConfigError(*problems)
    return providers, context.closers


def check_credentials(settings: Settings) -> None:
    """Reads and parses every secret `serve` would (files, and variables in os.environ), and connects to nothing.

    Provider keys, certificates, service accounts and CA files, the auth
    principals' hashes, keys and JWKS, and the gRPC port's TLS pair:
    `check-config` passes only what `serve` can start with.

    Raises:
        ConfigError: every problem found, each naming its setting.
    """
    problems: list[str] = []
    try:
        _, closers = build_providers(settings)
    except ConfigError as exc:
        problems.extend(exc.problems)
    else:
        for close in closers:
            close()
    clock = SystemClock()
    if settings.auth.configured:
        try:
            build_authenticator(settings.auth, clock)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if settings.tls is not None:
        try:
            build_tls(settings.tls, clock)
        except ConfigError as exc:
            problems.extend(exc.problems)
    try:
        build_webhook_endpoints(settings)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if settings.connect_port:
        try:
            connect_server_class()
        except ConfigError as exc:
            problems.extend(exc.problems)
    try:
        _, flush = build_tracer(settings.tracing)
    except ConfigError as exc:
        problems.extend(exc.problems)
    else:
        if flush is not None:
            flush()
    if problems:
        raise ConfigError(*problems)


def build_webhook_endpoints(settings: Settings) -> list[tuple[Endpoint, bytes | None]]:
    """Every app's webhook endpoints, secrets read and CA files parsed; each with its extra CA's PEM (or None).

    Raises:
        ConfigError: every problem found, each naming its setting.
    """
    endpoints: list[tuple[Endpoint, bytes | None]] = []
    problems: list[str] = []
    for app_id, app in settings.apps.items():
        for i, hook in enumerate(app.webhooks):
            where = f"apps.{app_id}.webhooks[{i}]"
            source = f"{where}.secret_file" if hook.secret_file else f"{where}.secret_env"
            try:
                ca = secrets.ca(hook.ca_file, f"{where}.ca_file")
                raw = secrets.secret(hook.secret_file, hook.secret_env, source)
                with secrets.credential(source):
                    key = signing.signing_key(raw)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            endpoint = Endpoint(
                app_id=app_id, name=hook.endpoint, url=hook.url, key=key, max_batch=hook.max_batch,
                max_delay_s=hook.max_delay_ms / 1000, initial_backoff_s=hook.initial_backoff_s,
                max_backoff_s=hook.max_backoff_s, pause_after_s=hook.pause_after_s,
            )
            endpoints.append((endpoint, ca))
    if problems:
        raise ConfigError(*problems)
    return endpoints


def connect_server_class() -> type[ConnectServer]:
    """The Connect server, from the `connect` extra (connectrpc and uvicorn), imported only when the port is on."""
    try:
        from pushsvc.connect import ConnectServer
    except ImportError:
        raise ConfigError("connect_port: serving Connect and gRPC-web needs the connect extra: pip install 'pushsvc[connect]'") from None
    return ConnectServer


def build_tracer(settings: TracingSettings) -> tuple[Tracer, Callable[[], None] | None]:
    """The tracer `settings` ask for, and the closer that flushes its exports; NULL_TRACER when no endpoint is set."""
    if not settings.otlp_endpoint:
        return NULL_TRACER, None
    try:
        # The SDK and exporter are the `otel` extra: imported only when an endpoint is configured.
        from pushsvc.tracing.otlp import otlp_provider
    except ImportError:
        raise ConfigError("tracing.otlp_endpoint: exporting traces needs the otel extra: pip install 'pushsvc[otel]'") from None
    provider = otlp_provider(settings.otlp_endpoint, settings.service_name, settings.sample_ratio, settings.export_timeout_s)
    return OtelTracer(provider), provider.shutdown


def build_application(
    settings: Settings,
    *,
    clock: Clock | None = None,
    providers: Mapping[tuple[str, models.Platform], Provider] | None = None,
    owner: str | None = None,
    stores: Stores | None = None,
    metrics: bool | None = None,
    connect: bool | None = None,
    tracer: Tracer | None = None,
) -> Application:
    """Wires every component from settings. Connects to nothing until `start()`.

    Passing `stores` shares one store between Applications (several replicas
    in one process, as tests do with the embedded backend); the caller then
    closes it. The Prometheus endpoint is on when `settings.metrics_port` is
    not 0, or when `metrics` is True, which with port 0 binds a free port
    (tests); `metrics=False` turns it off whatever the port. `connect` does
    the same for the Connect port (`settings.connect_port`). `tracer` replaces
    the one `settings.tracing` asks for (tests hand in one over an in-memory exporter).
    """
    clock = clock or SystemClock()
    serve_metrics = settings.metrics_port != 0 if metrics is None else metrics
    counters: Metrics = NULL_METRICS
    metrics_server = None
    if serve_metrics:
        prometheus = PrometheusMetrics()
        counters = prometheus
        metrics_server = MetricsServer(prometheus.registry, host=settings.metrics_host, port=settings.metrics_port)
    owns_stores = stores is None
    if stores is None:
        stores = open_stores(settings.store_url, clock=clock, timeout_ms=settings.store_timeout_ms)
    # The components reach the store through `store_calls`, so health sees a call that hangs.
    store_calls = StoreCalls(clock)
    tokens = store_calls.watch(stores.tokens)
    notifications = store_calls.watch(stores.notifications)
    receipts = store_calls.watch(stores.receipts)
    signal = ReceiptSignal()
    feed = ReceiptFeed(
        receipts,
        notifications,
        signal,
        poll_interval_s=settings.dispatch.poll_interval_s,
        gap_grace_s=settings.dispatch.receipt_gap_grace_s,
        clock=clock,
    )
    closers: list[Callable[[], None]] = []
    if providers is None:
        providers, closers = build_providers(settings, clock, counters)
    replica_id = settings.dispatch.replica_id or socket.gethostname()
    if tracer is None:
        tracer, flush = build_tracer(settings.tracing)
        if flush is not None:
            closers.append(flush)
    dispatcher = Dispatcher(
        tokens=tokens,
        notifications=notifications,
        receipts=receipts,
        providers=providers,
        clock=clock,
        settings=settings.dispatch,
        signal=signal,
        owner=owner,
        replica_id=replica_id,
        metrics=counters,
        tracer=tracer,
    )
    webhooks = None
    endpoints = build_webhook_endpoints(settings)
    if endpoints:
        timeouts = {(app_id, hook.endpoint): hook.timeout_s for app_id, app in settings.apps.items() for hook in app.webhooks}
        posted: list[tuple[Endpoint, WebhookPoster]] = [
            (e, TransportPoster(timeout_s=timeouts[(e.app_id, e.name)], clock=clock, ca_pem=ca)) for e, ca in endpoints
        ]
        webhooks = build_senders(
            posted,
            cursors=store_calls.watch(stores.webhooks),
            receipts=receipts,
            signal=signal,
            clock=clock,
            # The replica id, stable across restarts: a restarted replica takes its endpoints back at once.
            owner=replica_id,
            # A lease outlives a POST that runs to its deadline.
            lease_s=max(settings.dispatch.lease_s, 3 * max(timeouts.values())),
            poll_interval_s=settings.dispatch.poll_interval_s,
            gap_grace_s=settings.dispatch.receipt_gap_grace_s,
            log_interval_s=settings.dispatch.fault_log_interval_s,
            metrics=counters,
        )
    service = PushService(
        tokens=tokens,
        notifications=notifications,
        feed=feed,
        apps=build_app_profiles(settings),
        clock=clock,
        dispatch=settings.dispatch,
        stale_after_days=settings.stale_after_days,
        on_queued=dispatcher.wake,
        tracer=tracer,
    )
    authenticator = build_authenticator(settings.auth, clock)
    interceptors: list[MethodInterceptor] = [TelemetryInterceptor(counters, clock)]
    if tracer is not NULL_TRACER:
        # After telemetry (and so after the live-call gate), before auth: refused credentials are spans too.
        interceptors.append(TracingInterceptor(tracer))
    if authenticator is not None:
        interceptors.append(AuthInterceptor(authenticator))
    server = GrpcServer(
        service,
        clock=clock,
        host=settings.host,
        port=settings.port,
        keepalive_time_s=settings.keepalive_time_s,
        keepalive_timeout_s=settings.keepalive_timeout_s,
        keepalive_min_ping_interval_s=settings.keepalive_min_ping_interval_s,
        max_connection_age_s=settings.max_connection_age_s,
        max_connection_age_grace_s=settings.max_connection_age_grace_s,
        interceptors=interceptors,
        credentials=build_tls(settings.tls, clock).credentials() if settings.tls is not None else None,
        metrics=counters,
    )
    connect_server = None
    if (settings.connect_port != 0 if connect is None else connect):
        # The gRPC server's chain, its LiveCalls included, so both ports share one gate and one drain.
        connect_server = connect_server_class()(
            service,
            clock=clock,
            interceptors=[interceptors[0], server.calls, *interceptors[1:]],
            host=settings.host,
            port=settings.connect_port,
        )
    return Application(
        settings=settings,
        stores=stores,
        service=service,
        server=server,
        dispatcher=dispatcher,
        providers=providers,
        clock=clock,
        store_calls=store_calls,
        owns_stores=owns_stores,
        closers=closers,
        metrics=counters,
        metrics_server=metrics_server,
        webhooks=webhooks,
        connect=connect_server,
    )
