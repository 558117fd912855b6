"""The Prometheus adapter of the metrics port.

The composition root builds one `PrometheusMetrics` on its own
`CollectorRegistry` (never prometheus-client's global one) and hands it to the
components that count; with the endpoint off they get `NULL_METRICS`, which
does nothing. Unit tests read a `PrometheusMetrics` registry directly
(`registry.get_sample_value`), which makes it the in-memory fake as well.

The per-delivery calls go through objects bound to one app and platform
(`Metrics.provider`) that keep plain counters, exported at scrape time by a
collector, so a delivery costs a few dictionary updates (see
`_ProviderCounters`). RPCs use prometheus-client's metric objects, with their
label children looked up once per method and code.

`MetricsServer` serves `/metrics` over HTTP with prometheus-client's own server,
in a thread of its own; the Application starts and stops it.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import platform
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from pushsvc import __version__
from pushsvc.channels import reasons
from pushsvc.metrics import PROVIDER_BUCKETS_S, RPC_BUCKETS_S, ProviderMetrics, RpcMetrics, WebhookMetrics

_M = TypeVar("_M", bound=MetricWrapperBase)


class _Children(Generic[_M]):
    """Label children of one metric, looked up once per label set and cached.

    The keys come from bounded vocabularies, so the cache stays small.
    """

    __slots__ = ("_metric", "_fixed", "_cache")

    def __init__(self, metric: _M, *fixed: str) -> None:
        self._metric = metric
        self._fixed = fixed
        self._cache: dict[tuple[str, ...], _M] = {}

    def get(self, *values: str) -> _M:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._metric.labels(*self._fixed, *values)
        return child


class _PrometheusRpc:
    __slots__ = ("_calls", "_latency")

    def __init__(self, calls: Counter, latency: Histogram, service: str, method: str) -> None:
        self._calls = _Children(calls, service, method)
        self._latency = latency.labels(service, method)

    def finished(self, code: str, seconds: float) -> None:
        self._calls.get(code).inc()
        self._latency.observe(seconds)


class _Buckets:
    """One histogram series as plain numbers: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(PROVIDER_BUCKETS_S) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # Prometheus buckets are "less or equal": the first bound not below the value.
        self.counts[bisect.bisect_left(PROVIDER_BUCKETS_S, seconds)] += 1
        self.total += seconds


class _ProviderCounters:
    """The delivery counters of one app and platform, as plain integers.

    prometheus-client's own metric objects take a lock per update, and a
    delivery makes five of them: 16 µs per delivery measured on the shared
    2-core machine, about a tenth of a delivery's cost. These are only ever
    written from the event loop, one thread, and `_DeliveryCollector` reads
    them at scrape time, so plain ints and dicts suffice: 4 µs measured.
    """

    __slots__ = ("app_id", "platform", "in_flight", "latency", "retries", "deliveries", "_label")

    def __init__(self, app_id: str, platform: str, label: Callable[[str], str]) -> None:
        self.app_id = app_id
        self.platform = platform
        self.in_flight = 0
        self.latency: dict[str, _Buckets] = {}
        self.retries: dict[str, int] = {}
        self.deliveries: dict[tuple[str, str], int] = {}
        self._label = label

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self, outcome: str, seconds: float) -> None:
        self.in_flight -= 1
        buckets = self.latency.get(outcome)
        if buckets is None:
            buckets = self.latency[outcome] = _Buckets()
        buckets.observe(seconds)

    def retried(self, reason: str) -> None:
        key = self._label(reason)
        self.retries[key] = self.retries.get(key, 0) + 1

    def delivered(self, status: str, reason: str) -> None:
        key = (status, self._label(reason))
        self.deliveries[key] = self.deliveries.get(key, 0) + 1


_LE = [floatToGoString(b) for b in PROVIDER_BUCKETS_S] + ["+Inf"]


class _DeliveryCollector(Collector):
    """Exports every `_ProviderCounters` at scrape time (from the scraping thread: it only reads)."""

    def __init__(self, providers: Mapping[tuple[str, str], _ProviderCounters]) -> None:
        self._providers = providers

    def describe(self) -> Iterable[Metric]:
        """The families, empty: lets the registry check names without collecting."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """The families with a sample per series."""
        deliveries, retries, latency, in_flight = families = self._families()
        # list() copies under the GIL, so a key the event loop adds meanwhile cannot break the iteration.
        for p in list(self._providers.values()):
            base = [p.app_id, p.platform]
            for (status, reason), n in list(p.deliveries.items()):
                deliveries.add_metric([*base, status, reason], n)
            for reason, n in list(p.retries.items()):
                retries.add_metric([*base, reason], n)
            for outcome, b in list(p.latency.items()):
                counts, total = list(b.counts), b.total
                cumulative = list(itertools.accumulate(counts))
                latency.add_metric([*base, outcome], list(zip(_LE, cumulative, strict=True)), total)
            in_flight.add_metric(base, p.in_flight)
        return families

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily, HistogramMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(
                "pushsvc_deliveries", "Deliveries finished (one per receipt), by app, platform, status and reason.",
                labels=["app", "platform", "status", "reason"],
            ),
            CounterMetricFamily(
                "pushsvc_delivery_retries", "Provider answers that made a delivery try again, by reason.",
                labels=["app", "platform", "reason"],
            ),
            HistogramMetricFamily(
                "pushsvc_provider_request_duration_seconds",
                "Provider request latency (credential refresh included), by app, platform and outcome.",
                labels=["app", "platform", "outcome"],
            ),
            GaugeMetricFamily("pushsvc_deliveries_in_flight", "Provider requests in flight.", labels=["app", "platform"]),
        )


class PrometheusMetrics:
    """`Metrics` on a prometheus-client `CollectorRegistry` of its own.

    Args:
        registry: Where the metrics are registered; a fresh one when omitted.
    """

    enabled = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.reason_label = reasons.label
        """Maps a provider reason to its bounded label."""
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.rpcs = Counter(
            "pushsvc_rpcs", "RPCs handled, by method and gRPC status code (streams count when they end).",
            ["service", "method", "code"], registry=r,
        )
        self.rpc_latency = Histogram(
            "pushsvc_rpc_duration_seconds", "RPC latency by method (for streams: how long they lasted).",
            ["service", "method"], buckets=RPC_BUCKETS_S, registry=r,
        )
        self._providers: dict[tuple[str, str], _ProviderCounters] = {}
        r.register(_DeliveryCollector(self._providers))
        self.queue_depth = Gauge(
            "pushsvc_queue_depth", "Unfinished notifications (queued, scheduled or running), sampled.", registry=r,
        )
        self.credential_refreshes = Counter(
            "pushsvc_credential_refreshes", "APNs provider tokens minted and FCM access tokens fetched.",
            ["kind", "result"], registry=r,
        )
        self.webhook_posts = Counter(
            "pushsvc_webhook_posts", "Receipt webhook POSTs, by endpoint and result (ok, http_4xx, http_5xx, timeout, connect, protocol).",
            ["app", "endpoint", "result"], registry=r,
        )
        self.webhook_receipts = Counter(
            "pushsvc_webhook_receipts", "Receipts acknowledged by a webhook endpoint (a 2xx to their batch).",
            ["app", "endpoint"], registry=r,
        )
        self.webhook_paused = Gauge(
            "pushsvc_webhook_paused", "1 while a webhook endpoint has failed for longer than its pause_after_s, else 0.",
            ["app", "endpoint"], registry=r,
        )
        self.store_up = Gauge("pushsvc_store_up", "1 while the store answers, 0 while it is unreachable.", registry=r)
        self.serving = Gauge("pushsvc_serving", "1 while gRPC health says SERVING, else 0.", registry=r)
        build = Gauge("pushsvc_build_info", "Always 1; the labels say which pushsvc and which Python run.",
                      ["version", "python"], registry=r)
        build.labels(version=__version__, python=platform.python_version()).set(1)
        # The standard process_* (CPU, memory, file descriptors, start time) and
        # python_* (interpreter, garbage collector) metrics, which prometheus-client
        # puts only on its global registry: dashboards and alerts expect them.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._lock = threading.Lock()

    def rpc(self, service: str, method: str) -> RpcMetrics:
        """See `Metrics.rpc`."""
        return _PrometheusRpc(self.rpcs, self.rpc_latency, service, method)

    def provider(self, app_id: str, platform: str) -> ProviderMetrics:
        """See `Metrics.provider`; one shared object per app and platform."""
        with self._lock:
            bound = self._providers.get((app_id, platform))
            if bound is None:
                bound = self._providers[(app_id, platform)] = _ProviderCounters(app_id, platform, self.reason_label)
            return bound

    def webhook(self, app_id: str, endpoint: str) -> WebhookMetrics:
        """See `Metrics.webhook`."""
        return _PrometheusWebhook(self, app_id, endpoint)

    def credential_refreshed(self, kind: str, ok: bool) -> None:
        """See `Metrics.credential_refreshed`."""
        self.credential_refreshes.labels(kind, "ok" if ok else "error").inc()

    def set_store_up(self, up: bool) -> None:
        """See `Metrics.set_store_up`."""
        self.store_up.set(1 if up else 0)

    def set_serving(self, serving: bool) -> None:
        """See `Metrics.set_serving`."""
        self.serving.set(1 if serving else 0)

    def set_queue_depth(self, depth: int) -> None:
        """See `Metrics.set_queue_depth`."""
        self.queue_depth.set(depth)


class _PrometheusWebhook:
    def __init__(self, metrics: PrometheusMetrics, app_id: str, endpoint: str) -> None:
        self._posts = {
            result: metrics.webhook_posts.labels(app_id, endpoint, result)
            for result in ("ok", "http_4xx", "http_5xx", "timeout", "connect", "protocol")
        }
        self._receipts = metrics.webhook_receipts.labels(app_id, endpoint)
        self._paused = metrics.webhook_paused.labels(app_id, endpoint)
        self._paused.set(0)

    def posted(self, result: str, receipts: int) -> None:
        self._posts.get(result, self._posts["protocol"]).inc()
        if result == "ok":
            self._receipts.inc(receipts)

    def set_paused(self, paused: bool) -> None:
        self._paused.set(1 if paused else 0)


class MetricsServer:
    """Serves a registry at `/metrics` over HTTP (prometheus-client's server, in its own thread).

    Args:
        registry: What to serve.
        host: The address to bind.
        port: The port; 0 picks a free one (see `port` after `start()`).
    """

    def __init__(self, registry: CollectorRegistry, *, host: str = "0.0.0.0", port: int) -> None:
        self._registry = registry
        self._host = host
        self._requested_port = port
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> int:
        """Binds and starts serving; returns the bound port."""
        self._httpd, self._thread = start_http_server(self._requested_port, self._host, self._registry)
        self.port = int(self._httpd.server_port)
        return self.port

    async def stop(self) -> None:
        """Stops serving and closes the socket (waits for the serving thread off the event loop)."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        await asyncio.to_thread(httpd.shutdown)
        httpd.server_close()
        if thread is not None:
            await asyncio.to_thread(thread.join, 5.0)
