"""Metrics: what pushsvc counts, behind a small port.

This package's root is the port: the `Metrics` Protocol the components count
through, and `NULL_METRICS`, which does nothing. The Prometheus adapter lives
in `pushsvc.prometheus`; only the composition root (and tests) import
it, so the components that count, including the provider adapters whose reason
vocabulary the adapter labels with, never import prometheus-client through here.

Labels are bounded: RPC service, method and status code; app (apps are
configured), platform, delivery status, provider outcome, and a reason from the
fixed vocabulary in `pushsvc.channels.reasons`. Never a token, a user id or
anything else a caller chooses.
"""

from __future__ import annotations

from typing import Protocol

RPC_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""RPC latency buckets: sub-millisecond unary calls up to receipt streams that follow for a while."""
PROVIDER_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Provider request latency buckets, up to the default request deadline (10 s)."""


class RpcMetrics(Protocol):
    """The counters of one RPC method."""

    def finished(self, code: str, seconds: float) -> None:
        """One call ended with gRPC status `code` (e.g. "OK") after `seconds`."""
        ...


class ProviderMetrics(Protocol):
    """The counters of one app and platform, on the dispatcher's hot path."""

    def request_started(self) -> None:
        """A provider request is about to be sent (in flight from now)."""
        ...

    def request_finished(self, outcome: str, seconds: float) -> None:
        """The request ended with `outcome` (a `providers.base.Outcome` value) after `seconds`."""
        ...

    def retried(self, reason: str) -> None:
        """A delivery will be tried again because the provider said `reason`."""
        ...

    def delivered(self, status: str, reason: str) -> None:
        """A delivery ended with receipt status `status` (a `models.DeliveryStatus` name, e.g. "DELIVERED") and `reason`."""
        ...


class WebhookMetrics(Protocol):
    """The counters of one receipt webhook endpoint (configured, so a bounded label)."""

    def posted(self, result: str, receipts: int) -> None:
        """One POST of a batch of `receipts` ended: `result` "ok", "http_4xx", "http_5xx", or a `PostFailed` reason."""
        ...

    def set_paused(self, paused: bool) -> None:
        """Whether the endpoint has been failing long enough to count as paused."""
        ...


class Metrics(Protocol):
    """Everything pushsvc counts."""

    def rpc(self, service: str, method: str) -> RpcMetrics:
        """The counters of one RPC method (bind once, at handler set-up)."""
        ...

    def provider(self, app_id: str, platform: str) -> ProviderMetrics:
        """The counters of one configured app and platform (bind once per provider)."""
        ...

    def webhook(self, app_id: str, endpoint: str) -> WebhookMetrics:
        """The counters of one configured webhook endpoint (bind once per endpoint)."""
        ...

    def credential_refreshed(self, kind: str, ok: bool) -> None:
        """A provider credential was minted or fetched: `kind` "apns_jwt" or "fcm_oauth"."""
        ...

    def set_store_up(self, up: bool) -> None:
        """Whether the store answers (the health watcher's verdict)."""
        ...

    def set_serving(self, serving: bool) -> None:
        """Whether gRPC health says SERVING."""
        ...

    def set_queue_depth(self, depth: int) -> None:
        """Unfinished notifications in the store (sampled)."""
        ...


class _NullRpc:
    def finished(self, code: str, seconds: float) -> None:
        pass


class _NullProvider:
    def request_started(self) -> None:
        pass

    def request_finished(self, outcome: str, seconds: float) -> None:
        pass

    def retried(self, reason: str) -> None:
        pass

    def delivered(self, status: str, reason: str) -> None:
        pass


class _NullWebhook:
    def posted(self, result: str, receipts: int) -> None:
        pass

    def set_paused(self, paused: bool) -> None:
        pass


class NullMetrics:
    """Counts nothing: the metrics endpoint is off."""

    enabled = False

    def rpc(self, service: str, method: str) -> RpcMetrics:
        """See `Metrics.rpc`."""
        return _NullRpc()

    def provider(self, app_id: str, platform: str) -> ProviderMetrics:
        """See `Metrics.provider`."""
        return _NullProvider()

    def webhook(self, app_id: str, endpoint: str) -> WebhookMetrics:
        """See `Metrics.webhook`."""
        return _NullWebhook()

    def credential_refreshed(self, kind: str, ok: bool) -> None:
        """See `Metrics.credential_refreshed`."""

    def set_store_up(self, up: bool) -> None:
        """See `Metrics.set_store_up`."""

    def set_serving(self, serving: bool) -> None:
        """See `Metrics.set_serving`."""

    def set_queue_depth(self, depth: int) -> None:
        """See `Metrics.set_queue_depth`."""


NULL_METRICS = NullMetrics()
"""The shared no-op instance (it holds no state)."""
