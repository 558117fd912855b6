"""End-to-end fan-out to one channel's registry: the gateway in-process, Send to all, wait for every receipt.

`bench/fanout.py` seeds half APNs and half FCM tokens; the Web Push and HMS
benches (`bench/webpush.py`, `bench/hms.py`) seed one channel's tokens, made
before the clock starts, and measure the same way: wall time from Send until
the notification is finished, and the gateway's CPU (`time.process_time()`,
every thread of this process) over that window.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench.fanout import MESSAGE, RUN_TIMEOUT_S, GcClock, current_rss_mib
from pushsvc import models
from pushsvc.bootstrap import Application, build_application
from pushsvc.config import AppSettings, DispatchSettings, Settings
from pushsvc.providers.base import Provider

APP_ID = "bench"


async def fan_out(
    app_settings: AppSettings,
    registrations: Sequence[models.TokenRegistration],
    *,
    batch: int = 500,
    in_flight: int = 500,
    endpoint_cpu_s: Callable[[], float] | None = None,
    providers: Mapping[tuple[str, models.Platform], Provider] | None = None,
    resend: bool = False,
) -> dict[str, Any]:
    """Loads `registrations` (of app `APP_ID`), sends `MESSAGE` to all, waits until finished; returns timings.

    `providers` replaces the ones the app's settings would build (`bench.fanout.NullProvider`: the gateway alone).
    With `resend`, the same Send follows once the first has finished, measured the same way, under "resend"
    (what a provider keeps per token from the first send shows there).
    """
    dispatch = DispatchSettings(batch_size=batch, max_in_flight_per_provider=in_flight, lease_s=60)
    settings = Settings(store_url="memory://", host="127.0.0.1", port=0, apps={APP_ID: app_settings.model_copy(update={"app_id": APP_ID})}, dispatch=dispatch)
    app = build_application(settings, providers=providers)
    await app.start()
    try:
        for i in range(0, len(registrations), 5000):
            await app.stores.tokens.insert_new(list(registrations[i : i + 5000]), app.clock.now())
        gc.collect()
        loaded_rss_mib = current_rss_mib()
        result = await _measure_send(app, endpoint_cpu_s)
        result["loaded_rss_mib"] = loaded_rss_mib
        if resend:
            gc.collect()
            result["resend"] = await _measure_send(app, endpoint_cpu_s)
        return result
    finally:
        await app.stop(0)


async def _measure_send(app: Application, endpoint_cpu_s: Callable[[], float] | None) -> dict[str, Any]:
    """One Send of `MESSAGE` to every token of `APP_ID`, timed from the call until the notification is finished."""
    gc_clock = GcClock()
    gc.callbacks.append(gc_clock)
    started = time.perf_counter()
    cpu_started = time.process_time()
    endpoint_started = endpoint_cpu_s() if endpoint_cpu_s else 0.0
    sent = await app.service.send(models.SendCommand(APP_ID, models.Target(kind="all", all=True), MESSAGE))
    deadline = started + RUN_TIMEOUT_S
    while True:
        view = await app.service.get_notification(APP_ID, sent.notification_id)
        if view.state.finished or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    gateway_cpu_s = time.process_time() - cpu_started
    endpoint_s = endpoint_cpu_s() - endpoint_started if endpoint_cpu_s else None
    gc.callbacks.remove(gc_clock)
    return {
        "targeted": sent.targeted,
        "delivered": view.delivered,
        "state": view.state.value,
        "seconds": elapsed,
        "rate": view.delivered / elapsed if elapsed else 0.0,
        "gateway_cpu_s": gateway_cpu_s,
        "gateway_cpu_us_per_delivery": 1e6 * gateway_cpu_s / max(1, view.delivered),
        "endpoint_cpu_s": endpoint_s,
        "gc_s": gc_clock.seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
