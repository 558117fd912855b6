"""One provider client, measured in a process of its own: `python -m bench.clients '<spec JSON>'`.

bench/providers.py runs this module once per (endpoint, client, concurrency),
so the CPU each client spends is its own. The process sets the client up,
warms it up (connections, JWT, OAuth token, the server's stream limit), then
sends N requests at concurrency C and verifies every answer. It measures only
that send window: wall time, its own CPU (`time.process_time()`, every thread
of this process) and the endpoint's CPU (from /proc), and prints one JSON
object on stdout.

Clients:
- `pushsvc-apns`, `pushsvc-fcm`: pushsvc's providers, built by the
  composition root (`pushsvc.bootstrap.build_providers`) from Settings.
- `aioapns`: `APNs(key=...)`, its hosts redirected by class attributes.
- `firebase-admin`: `messaging.send_each_async` in batches of 500, its FCM URL
  redirected by a class attribute and TLS trust by environment variables.
  The peers are redirected here, in this process only; bench/README.md lists
  every override.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import ssl
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from pushsvc import models
from pushsvc.bootstrap import build_providers
from pushsvc.config import ApnsAppSettings, AppSettings, FcmAppSettings, Settings
from pushsvc.providers.apns import render_apns
from pushsvc.providers.base import Delivery, Outcome, Provider
from pushsvc.providers.fcm import render_fcm

APP_ID = "bench"
APNS_TOKEN = "ab" * 32
FCM_TOKEN = "bench-device"
FIREBASE_BATCH = 500
"""send_each_async takes at most 500 messages a call."""
WARMUP_SENDS = 1000

MESSAGE = models.Message(
    title="Benchmark",
    body="Hello from pushsvc: one notification of about two hundred bytes, the size of a typical alert.",
    data={"order_id": "1234567890", "kind": "bench"},
)
"""Every client sends this message, rendered the way pushsvc renders it."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where to send, and with which credentials."""

    endpoint: str
    """"emulator" or "nginx"."""
    apns_url: str
    fcm_url: str
    token_uri: str
    ca_file: str
    apns_key_file: str
    apns_key_id: str
    apns_team_id: str
    apns_bundle_id: str
    fcm_service_account_file: str
    fcm_project_id: str
    endpoint_pids: tuple[int, ...] = ()
    """Processes whose CPU is the endpoint's (the emulator; nginx's worker)."""


@dataclasses.dataclass(frozen=True)
class Spec:
    """One measurement: a client, a target, N and C."""

    client: str
    target: Target
    sends: int
    concurrency: int
    timeout_s: float
    loop: str = "asyncio"
    """"asyncio", or "uvloop" (if installed) for every client alike."""
    cpu: int | None = None
    """Pin this process to one CPU (`--pin`)."""

    def to_json(self) -> str:
        """The spec as the JSON argument of this module."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Spec:
        """Reads `to_json`'s output."""
        raw = json.loads(text)
        target = raw.pop("target")
        target["endpoint_pids"] = tuple(target.get("endpoint_pids", ()))
        return cls(target=Target(**target), **raw)


class BenchClient(Protocol):
    """A provider client under measurement."""

    platform: str
    """"apns" or "fcm"."""
    batch_size: int
    """Messages one `send` call carries (1, or firebase-admin's batch)."""
    notes: list[str]
    """What the run had to do differently, for the table's footnotes."""

    async def open(self) -> None:
        """Builds the client; connects lazily or here."""
        ...

    async def send(self, count: int) -> list[str | None]:
        """Sends `count` messages (at most batch_size); one entry per message: None if verified OK, else why not."""
        ...

    async def close(self) -> None:
        """Closes connections and what the client shares."""
        ...


# --- pushsvc ------------------------------------------------------------------


class PushsvcClient:
    """pushsvc's APNs or FCM provider, built by the composition root."""

    batch_size = 1

    def __init__(self, target: Target, platform: str) -> None:
        self.platform = platform
        self.notes: list[str] = []
        self._target = target
        self._provider: Provider | None = None
        self._closers: list[Callable[[], None]] = []

    async def open(self) -> None:
        t = self._target
        ca = Path(t.ca_file)
        if self.platform == "apns":
            app = AppSettings(
                app_id=APP_ID,
                apns=ApnsAppSettings(
                    bundle_id=t.apns_bundle_id,
                    key_file=Path(t.apns_key_file),
                    key_id=t.apns_key_id,
                    team_id=t.apns_team_id,
                    production_url=t.apns_url,
                    sandbox_url=t.apns_url,
                    ca_file=ca,
                ),
            )
            platform = models.Platform.APNS
            self._delivery = Delivery(APNS_TOKEN, render_apns(MESSAGE, bundle_id=t.apns_bundle_id))
        else:
            app = AppSettings(
                app_id=APP_ID,
                fcm=FcmAppSettings(
                    service_account_file=Path(t.fcm_service_account_file),
                    project_id=t.fcm_project_id,
                    base_url=t.fcm_url,
                    ca_file=ca,
                ),
            )
            platform = models.Platform.FCM
            self._delivery = Delivery(FCM_TOKEN, render_fcm(MESSAGE))
        providers, self._closers = build_providers(Settings(apps={APP_ID: app}))
        self._provider = providers[(APP_ID, platform)]
        self._name_prefix = f"projects/{t.fcm_project_id}/messages/"

    async def send(self, count: int) -> list[str | None]:
        assert self._provider is not None
        result = await self._provider.send(self._delivery)
        if result.provider_status != 200 or result.outcome is not Outcome.DELIVERED:
            return [f"{result.provider_status} {result.reason or result.outcome.value}"]
        if not result.provider_message_id:
            return ["200 without a message id"]
        if self.platform == "fcm" and not result.provider_message_id.startswith(self._name_prefix):
            return ["200 with a foreign message name"]
        return [None]

    async def close(self) -> None:
        if self._provider is not None:
            await self._provider.aclose()
        for close in self._closers:
            close()


# --- aioapns ------------------------------------------------------------------


class AioapnsClient:
    """aioapns 4 with token auth, its production host pointed at the endpoint."""

    platform = "apns"
    batch_size = 1

    def __init__(self, target: Target) -> None:
        self.notes: list[str] = []
        self._target = target
        self._client: Any = None

    async def open(self) -> None:
        # The peers come with the bench extra; only their own process imports them.
        import aioapns
        import aioapns.connection

        t = self._target
        url = urlsplit(t.apns_url)
        # aioapns has no host option: the class attributes are the only redirect.
        aioapns.connection.APNsProductionClientProtocol.APNS_SERVER = url.hostname
        aioapns.connection.APNsProductionClientProtocol.APNS_PORT = url.port or 443
        context = ssl.create_default_context(cafile=t.ca_file)
        # aioapns does not offer ALPN itself; APNs (and the emulator) want h2.
        context.set_alpn_protocols(["h2"])
        payload = json.loads(render_apns(MESSAGE, bundle_id=t.apns_bundle_id).body["payload"])
        self._payload = payload
        self._client = aioapns.APNs(
            key=Path(t.apns_key_file).read_text(),
            key_id=t.apns_key_id,
            team_id=t.apns_team_id,
            topic=t.apns_bundle_id,
            use_sandbox=False,
            ssl_context=context,
        )
        self._request_type = aioapns.NotificationRequest
        self._push_type = aioapns.PushType.ALERT

    async def send(self, count: int) -> list[str | None]:
        request = self._request_type(
            device_token=APNS_TOKEN, message=self._payload, priority=10, push_type=self._push_type
        )
        try:
            result = await self._client.send_notification(request)
        except Exception as exc:  # aioapns raises for connection failures; count them
            return [type(exc).__name__]
        if not result.is_successful:
            return [f"{result.status} {result.description or ''}".strip()]
        if result.notification_id != request.notification_id:
            return ["200 with a foreign apns-id"]
        return [None]

    async def close(self) -> None:
        if self._client is not None:
            self._client.pool.close()


# --- firebase-admin -------------------------------------------------------------


class FirebaseAdminClient:
    """firebase-admin's `messaging.send_each_async`, batches of 500, FCM URL pointed at the endpoint."""

    platform = "fcm"
    batch_size = FIREBASE_BATCH

    def __init__(self, target: Target) -> None:
        self.notes: list[str] = []
        self._target = target
        self._app: Any = None

    async def open(self) -> None:
        # SSL_CERT_FILE (httpx) and REQUESTS_CA_BUNDLE (google-auth's token
        # refresh through requests) are set in this process's environment by
        # the parent, before the import.
        import firebase_admin
        from firebase_admin import credentials, messaging

        t = self._target
        # The private class attribute is the only way to move the FCM host.
        messaging._MessagingService.FCM_URL = t.fcm_url + "/v1/projects/{0}/messages:send"
        self._app = firebase_admin.initialize_app(
            credentials.Certificate(t.fcm_service_account_file),
            options={"projectId": t.fcm_project_id},
            name=f"bench-{os.getpid()}",
        )
        self._messaging = messaging
        self._name_prefix = f"projects/{t.fcm_project_id}/messages/"
        self._prefetch_token_if_needed()
        # `token`, like pushsvc sends; firebase-admin 7.7 deprecates it for `fid`,
        # which the FCM API also accepts. The message is built once, before the run.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._message = self._build_message(messaging)

    def _build_message(self, messaging: Any) -> Any:
        fcm_body = render_fcm(MESSAGE).body
        return messaging.Message(
            token=FCM_TOKEN,
            notification=messaging.Notification(title=MESSAGE.title, body=MESSAGE.body),
            data=dict(MESSAGE.data),
            apns=messaging.APNSConfig(
                headers=dict(fcm_body["apns"]["headers"]), payload=messaging.APNSPayload(aps=messaging.Aps())
            ),
        )

    def _prefetch_token_if_needed(self) -> None:
        """Gets the access token the way firebase-admin does; over HTTP/2 if the endpoint refuses HTTP/1.1."""
        import google.auth.exceptions
        import google.auth.transport.requests

        credential = self._app.credential.get_credential()
        try:
            credential.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.TransportError:
            from bench.oauth import Http2Request

            request = Http2Request(Path(self._target.ca_file))
            try:
                credential.refresh(request)
            finally:
                request.close()
            self.notes.append(
                f"firebase-admin on {self._target.endpoint}: the OAuth endpoint refused HTTP/1.1 (requests), "
                "so the access token was fetched once over HTTP/2 before the run"
            )

    async def send(self, count: int) -> list[str | None]:
        batch = await self._messaging.send_each_async([self._message] * count, dry_run=False, app=self._app)
        outcomes: list[str | None] = []
        for response in batch.responses:
            if not response.success:
                exc = response.exception
                outcomes.append(f"{type(exc).__name__} {getattr(exc, 'code', '')}".strip())
            elif not str(response.message_id).startswith(self._name_prefix):
                outcomes.append("200 with a foreign message name")
            else:
                outcomes.append(None)
        return outcomes

    async def close(self) -> None:
        if self._app is not None:
            # _MessagingService.close() calls asyncio.run(), which cannot run
            # inside this loop; close its httpx client here and let the
            # process exit release the rest.
            await self._messaging._get_messaging_service(self._app)._async_client.aclose()


# --- the measurement ------------------------------------------------------------

CLIENTS: dict[str, Callable[[Target], BenchClient]] = {
    "pushsvc-apns": lambda t: PushsvcClient(t, "apns"),
    "pushsvc-fcm": lambda t: PushsvcClient(t, "fcm"),
    "aioapns": AioapnsClient,
    "firebase-admin": FirebaseAdminClient,
}
"""Every client the bench knows, by the name the table shows."""

PLATFORM = {"pushsvc-apns": "apns", "pushsvc-fcm": "fcm", "aioapns": "apns", "firebase-admin": "fcm"}
PEER = {"pushsvc-apns": "aioapns", "pushsvc-fcm": "firebase-admin"}
"""The peer each pushsvc client is compared with."""


def effective_concurrency(client: str, concurrency: int) -> int:
    """Requests in flight: C, or for a batching client whole batches (at least one)."""
    if client == "firebase-admin":
        return max(1, concurrency // FIREBASE_BATCH) * FIREBASE_BATCH
    return concurrency


async def _drive(client: BenchClient, sends: int, concurrency: int, tally: Counter[str]) -> None:
    """Sends `sends` messages with `concurrency` in flight, counting each outcome into tally."""
    remaining = sends
    workers = max(1, concurrency // client.batch_size)

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            count = min(client.batch_size, remaining)
            remaining -= count
            for outcome in await client.send(count):
                tally[outcome or "ok"] += 1

    await asyncio.gather(*(worker() for _ in range(workers)))


def _cpu_s(pids: tuple[int, ...]) -> float | None:
    """utime + stime of the given processes, from /proc (None if unreadable)."""
    total = 0
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return total / ticks


async def measure(spec: Spec) -> dict[str, Any]:
    """Sets up, warms up and measures one client; returns the result record."""
    client = CLIENTS[spec.client](spec.target)
    await client.open()
    try:
        warmup: Counter[str] = Counter()
        warmup_sends = max(client.batch_size, min(WARMUP_SENDS, spec.sends))
        try:
            await asyncio.wait_for(_drive(client, warmup_sends, spec.concurrency, warmup), spec.timeout_s)
        except TimeoutError:
            raise RuntimeError(f"the warm-up ({warmup_sends} sends) did not finish within {spec.timeout_s:g} s") from None
        tally: Counter[str] = Counter()
        endpoint_started = _cpu_s(spec.target.endpoint_pids)
        started, cpu_started = time.perf_counter(), time.process_time()
        timed_out = False
        try:
            await asyncio.wait_for(_drive(client, spec.sends, spec.concurrency, tally), spec.timeout_s)
        except TimeoutError:
            timed_out = True
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        endpoint_ended = _cpu_s(spec.target.endpoint_pids)
    finally:
        await client.close()
    done = sum(tally.values())
    errors = {reason: n for reason, n in tally.items() if reason != "ok"}
    if timed_out:
        errors[f"not answered within {spec.timeout_s:.0f} s"] = spec.sends - done
    warmup_errors = {reason: n for reason, n in warmup.items() if reason != "ok"}
    return {
        "sends": spec.sends,
        "ok": tally["ok"],
        "errors": errors,
        "warmup_errors": warmup_errors,
        "seconds": seconds,
        "client_cpu_s": cpu_s,
        "endpoint_cpu_s": (
            endpoint_ended - endpoint_started if endpoint_started is not None and endpoint_ended is not None else None
        ),
        "notes": client.notes,
    }


def main(argv: list[str]) -> int:
    """Runs the spec in argv[0]; prints the result as one JSON line on stdout."""
    spec = Spec.from_json(argv[0])
    if spec.cpu is not None:
        os.sched_setaffinity(0, {spec.cpu})
    if spec.loop == "uvloop":
        import uvloop  # optional: pip install uvloop

        result = uvloop.run(measure(spec))
    else:
        result = asyncio.run(measure(spec))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
