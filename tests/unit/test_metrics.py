"""The dispatcher's counters on the memory store with a manual clock, read from an in-memory Prometheus registry."""

from __future__ import annotations

import asyncio

from pushsvc import models
from pushsvc.channels import reasons
from pushsvc.dispatch import Dispatcher
from pushsvc.metrics import NULL_METRICS
from pushsvc.prometheus import PrometheusMetrics
from pushsvc.providers.base import Outcome, ProviderResult
from tests.unit.conftest import APNS, APP, FCM, World

OK = ProviderResult(Outcome.DELIVERED, 200, provider_message_id="m")
QUOTA = ProviderResult(Outcome.RETRYABLE, 429, "QUOTA_EXCEEDED", retry_after_s=1.0)
GONE = ProviderResult(Outcome.TOKEN_INVALID, 404, "UNREGISTERED")
NOVEL = ProviderResult(Outcome.PERMANENT, 400, "a reason nobody documented, from the wire")


def dispatcher(world: World, metrics: PrometheusMetrics, **overrides: object) -> Dispatcher:
    return Dispatcher(
        tokens=world.stores.tokens,
        notifications=world.stores.notifications,
        receipts=world.stores.receipts,
        providers={(APP, APNS): world.apns, (APP, FCM): world.fcm},
        clock=world.clock,
        settings=world.settings.model_copy(update=overrides),
        signal=world.signal,
        owner="w1",
        sleep=world.sleep,
        rand=lambda: 0.5,
        metrics=metrics,
    )


def value(m: PrometheusMetrics, name: str, **labels: str) -> float:
    got = m.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


async def run(world: World, d: Dispatcher) -> None:
    for _ in range(100):
        if not await d.run_once():
            return
    raise AssertionError("the dispatcher never ran out of work")


async def test_deliveries_retries_and_provider_requests_are_counted_per_app_platform_status_and_reason(world: World) -> None:
    tokens = await world.register(6)
    apns_tokens = await world.register(2, APNS, prefix="ab")
    world.fcm.script = {tokens[0]: [QUOTA, QUOTA, OK], tokens[1]: [GONE], tokens[2]: [NOVEL]}
    m = PrometheusMetrics()
    await world.service.send(models.SendCommand(APP, models.Target(kind="all", all=True), models.Message(title="hi")))
    await run(world, dispatcher(world, m))

    fcm = {"app": APP, "platform": "fcm"}
    assert value(m, "pushsvc_deliveries_total", **fcm, status="DELIVERED", reason="none") == 4
    assert value(m, "pushsvc_deliveries_total", **fcm, status="TOKEN_INVALID", reason="UNREGISTERED") == 1
    # A reason outside the documented vocabulary is counted, under "other".
    assert value(m, "pushsvc_deliveries_total", **fcm, status="FAILED", reason="other") == 1
    assert value(m, "pushsvc_deliveries_total", app=APP, platform="apns", status="DELIVERED", reason="none") == len(apns_tokens)
    assert value(m, "pushsvc_delivery_retries_total", **fcm, reason="QUOTA_EXCEEDED") == 2
    # One request per attempt: 6 tokens, one of them sent three times.
    assert value(m, "pushsvc_provider_request_duration_seconds_count", **fcm, outcome="delivered") == 4
    assert value(m, "pushsvc_provider_request_duration_seconds_count", **fcm, outcome="retryable") == 2
    assert value(m, "pushsvc_provider_request_duration_seconds_count", **fcm, outcome="token_invalid") == 1
    assert value(m, "pushsvc_provider_request_duration_seconds_count", **fcm, outcome="permanent") == 1
    assert value(m, "pushsvc_deliveries_in_flight", **fcm) == 0
    labels = {v for metric in m.registry.collect() for s in metric.samples for v in s.labels.values()}
    assert not labels & {*tokens, *apns_tokens, NOVEL.reason}


async def test_in_flight_counts_requests_waiting_for_the_provider(world: World) -> None:
    await world.register(3)
    world.fcm.gate = asyncio.Event()
    m = PrometheusMetrics()
    await world.service.send(models.SendCommand(APP, models.Target(kind="all", all=True), models.Message(title="hi")))
    d = dispatcher(world, m)
    task = asyncio.create_task(d.run_once())
    for _ in range(200):
        if world.fcm.in_flight == 3:
            break
        await asyncio.sleep(0.005)
    assert value(m, "pushsvc_deliveries_in_flight", app=APP, platform="fcm") == 3
    world.fcm.gate.set()
    await asyncio.wait_for(task, 5)
    assert value(m, "pushsvc_deliveries_in_flight", app=APP, platform="fcm") == 0


async def test_provider_latency_is_measured_on_the_injected_clock(world: World) -> None:
    await world.register(1)
    m = PrometheusMetrics()

    async def slow_send(delivery: object) -> ProviderResult:
        world.clock.advance(0.3)
        return OK

    world.fcm.send = slow_send  # type: ignore[method-assign]
    await world.service.send(models.SendCommand(APP, models.Target(kind="all", all=True), models.Message(title="hi")))
    await run(world, dispatcher(world, m))
    labels = {"app": APP, "platform": "fcm", "outcome": "delivered"}
    assert value(m, "pushsvc_provider_request_duration_seconds_sum", **labels) == 0.3
    assert value(m, "pushsvc_provider_request_duration_seconds_bucket", **labels, le="0.25") == 0
    assert value(m, "pushsvc_provider_request_duration_seconds_bucket", **labels, le="0.5") == 1


def test_reason_labels_are_the_documented_vocabulary_or_other() -> None:
    assert reasons.label("") == "none"
    assert [reasons.label(r) for r in ("Unregistered", "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "TtlExpired")] == [
        "Unregistered", "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "TtlExpired"
    ]
    assert reasons.label("ConnectionLost (outcome unknown)") == "ConnectionLost (outcome unknown)"
    assert reasons.label("HTTP_418") == "other" and reasons.label("aa" * 32) == "other"


def test_the_null_metrics_take_every_call_and_keep_nothing() -> None:
    p = NULL_METRICS.provider(APP, "fcm")
    p.request_started()
    p.request_finished("delivered", 0.1)
    p.retried("x")
    p.delivered("DELIVERED", "")
    NULL_METRICS.rpc("s", "m").finished("OK", 0.1)
    NULL_METRICS.credential_refreshed("apns_jwt", True)
    NULL_METRICS.set_queue_depth(3)
    assert not NULL_METRICS.enabled and PrometheusMetrics().enabled


def test_each_registry_is_its_own() -> None:
    a, b = PrometheusMetrics(), PrometheusMetrics()
    a.provider(APP, "fcm").delivered("DELIVERED", "")
    assert value(a, "pushsvc_deliveries_total", app=APP, platform="fcm", status="DELIVERED", reason="none") == 1
    assert value(b, "pushsvc_deliveries_total", app=APP, platform="fcm", status="DELIVERED", reason="none") == 0


def test_build_info_and_the_standard_process_and_python_metrics_are_on_pushsvcs_registry() -> None:
    import platform

    import pushsvc

    m = PrometheusMetrics()
    assert value(m, "pushsvc_build_info", version=pushsvc.__version__, python=platform.python_version()) == 1
    assert value(m, "process_resident_memory_bytes") > 0 and value(m, "process_start_time_seconds") > 0
    assert value(m, "process_cpu_seconds_total") > 0
    info = platform.python_version_tuple()
    assert value(m, "python_info", implementation=platform.python_implementation(), major=info[0], minor=info[1],
                 patchlevel=info[2], version=platform.python_version()) == 1
    assert m.registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) is not None
    # Two registries in one process (tests, several Applications) do not collide.
    assert value(PrometheusMetrics(), "pushsvc_build_info", version=pushsvc.__version__, python=platform.python_version()) == 1
