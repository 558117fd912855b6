"""Control endpoints served on every emulator port under ``/_emulator/``.

- ``GET /_emulator/inbox[?platform=apns|fcm][&token=...][&notification_id=...]``:
  JSON list of entries; ``notification_id`` keeps the pushes of one pushsvc
  notification (the ``pushsvc_notification_id`` data key, :mod:`.display`).
  ``&rejected=1`` merges in the scenario's error answers
  (:class:`~.inbox.Rejection`), every item then with ``status`` and
  ``reason``; ``&format=jsonl`` gives JSON lines (always with ``status`` and
  ``reason``), the recording format of :mod:`.recording`; ``&display=1``
  (with or without them) adds each item's ``display`` (:mod:`.display`), whose
  ``locale`` is the localized variant pushsvc chose for that device.
- ``DELETE /_emulator/inbox``: clear the inbox (and the rejections); answers
  ``{"cleared": n}``.
- ``GET /_emulator/`` (or ``/_emulator/ui``): the web inbox page (:mod:`.webui`).
- ``GET /_emulator/faults``; ``POST /_emulator/faults`` with a JSON object of
  :class:`~pushsvc.emulator.faults.Faults` fields to change; both answer the
  current faults.
- ``GET /_emulator/stats``: request counters.
- ``POST /_emulator/<channel>/<action>`` with a JSON object: a channel
  handler's own endpoint (:mod:`.handlers`), such as a handler's test
  subscriptions.
- ``GET /_emulator/scenario``: the scenario in force (defaults merged in) as
  JSON; ``POST /_emulator/scenario`` loads one (:mod:`.scenario`): a TOML
  body, or JSON with ``content-type: application/json``; ``400
  {"error", "key"}`` names the bad key. ``DELETE /_emulator/scenario`` goes
  back to the built-in test tokens.

Control requests are never subject to faults and never need credentials.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .display import Display, display_of
from .faults import Faults
from .handlers import ChannelHandler, HandlerSpec
from .inbox import Inbox
from .scenario import Scenario, ScenarioError, ScenarioPlayer, parse_scenario, parse_scenario_json
from .site import ClientConnection, Request, Response
from .stats import Stats
from .webui import WebInbox

_BUILT_IN = (
    {"platform": "apns", "label": "APNs", "icon": "A", "color": "#5b6cff"},
    {"platform": "fcm", "label": "FCM", "icon": "F", "color": "#f6a21a"},
)
"""How the web inbox names and marks the built-in servers' deliveries (handlers bring their own)."""


class ControlApi:
    """Serves the ``/_emulator/`` endpoints."""

    PREFIX = "/_emulator/"

    def connection_made(self, connection: ClientConnection) -> dict[int, int]:
        """As a :class:`~.site.Site` of its own (the control port): no per-connection state."""
        return {}

    def __init__(
        self,
        inbox: Inbox,
        faults: Faults,
        stats: Stats,
        scenario: ScenarioPlayer,
        load_scenario: Callable[[Scenario | None], None],
        channels: Mapping[str, ChannelHandler] | None = None,
        specs: Sequence[HandlerSpec] = (),
    ) -> None:
        self._channels = channels or {}
        # How the handlers' channels are shown; APNs and FCM are the built-in servers, read by .display.
        self._views = {spec.channel: spec.display for spec in specs if spec.display is not None}
        self._presentations = [*_BUILT_IN, *(spec.presentation() for spec in specs)]
        self._inbox = inbox
        self._faults = faults
        self._stats = stats
        self._scenario = scenario
        self._load_scenario = load_scenario
        self._web = WebInbox()

    def handle(self, request: Request) -> Response:
        """Answer one control request (on the control port, ``/`` leads to the web inbox)."""
        path, _, query = request.path.partition("?")
        if path == "/":
            return Response(302, [("location", "/_emulator/")])
        method = request.method
        if path == "/_emulator/inbox":
            if method == "GET":
                params = urllib.parse.parse_qs(query)
                platform = params.get("platform", [None])[0]
                token = params.get("token", [None])[0]
                rejected = params.get("rejected", ["0"])[0] in ("1", "true")
                display = params.get("display", ["0"])[0] in ("1", "true")
                jsonl = params.get("format", ["json"])[0] == "jsonl"
                notification_id = params.get("notification_id", [None])[0]
                if rejected or jsonl:
                    items = self._of_notification(self._inbox.answered(platform=platform, token=token), notification_id)
                    if not rejected:
                        items = [item for item in items if item["status"] == 200]
                    if display:
                        items = [self._with_display(item) for item in items]
                    if jsonl:
                        body = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items)
                        return Response(200, [("content-type", "application/jsonl")], body.encode())
                    return Response.json(200, items)
                entries = self._inbox.entries(platform=platform, token=token)
                items = self._of_notification([e.to_json() for e in entries], notification_id)
                return Response.json(200, [self._with_display(item) for item in items] if display else items)
            if method == "DELETE":
                cleared = len(self._inbox)
                self._inbox.clear()
                return Response.json(200, {"cleared": cleared})
            return _method_not_allowed("GET, DELETE")
        if path == "/_emulator/faults":
            if method == "GET":
                return Response.json(200, self._faults.to_json())
            if method == "POST":
                try:
                    changes = json.loads(request.body or b"{}")
                    if not isinstance(changes, dict):
                        raise ValueError("body must be a JSON object")
                    self._faults.update(changes)
                except ValueError as exc:
                    return Response.json(400, {"error": str(exc)})
                return Response.json(200, self._faults.to_json())
            return _method_not_allowed("GET, POST")
        if path == "/_emulator/stats":
            if method == "GET":
                return Response.json(200, self._stats.to_json())
            return _method_not_allowed("GET")
        if path == "/_emulator/scenario":
            return self._handle_scenario(request)
        channel, _, action = path.removeprefix(self.PREFIX).partition("/")
        if channel in self._channels and action:
            return self._handle_channel(self._channels[channel], action, request)
        if path in ("/_emulator/", "/_emulator/ui"):
            if method != "GET":
                return _method_not_allowed("GET")
            return self._web.page(
                {
                    "inbox": [self._with_display(item) for item in self._inbox.answered()],
                    "faults": self._faults.to_json(),
                    "scenario": self._scenario.scenario.to_json(),
                    "channels": self._presentations,
                }
            )
        return _no_endpoint(path)

    def _handle_channel(self, channel: ChannelHandler, action: str, request: Request) -> Response:
        # A channel handler's own endpoint, `POST /_emulator/<channel>/<action>` with a JSON object.
        run = channel.control(action)
        if run is None:
            return _no_endpoint(request.path)
        if request.method != "POST":
            return _method_not_allowed("POST")
        try:
            options = json.loads(request.body or b"{}")
            if not isinstance(options, dict):
                raise ValueError("body must be a JSON object")
            status, body = run(options)
        except ValueError as exc:
            return Response.json(400, {"error": str(exc)})
        return Response.json(status, body)

    def _display(self, item: dict[str, Any]) -> Display:
        return display_of(item["platform"], item["headers"], item["payload"], item["message_id"], self._views)

    def _of_notification(self, items: list[dict[str, Any]], notification_id: str | None) -> list[dict[str, Any]]:
        """The items of one pushsvc notification (all of them when ``notification_id`` is None)."""
        if notification_id is None:
            return items
        return [item for item in items if self._display(item).notification_id == notification_id]

    def _with_display(self, item: dict[str, Any]) -> dict[str, Any]:
        return {**item, "display": self._display(item).to_json()}

    def _handle_scenario(self, request: Request) -> Response:
        if request.method == "GET":
            return Response.json(200, self._scenario.scenario.to_json())
        if request.method == "DELETE":
            self._load_scenario(None)
            return Response.json(200, self._scenario.scenario.to_json())
        if request.method != "POST":
            return _method_not_allowed("GET, POST, DELETE")
        content_type = (request.header("content-type") or "").partition(";")[0].strip().lower()
        try:
            if content_type == "application/json":
                scenario = parse_scenario_json(request.body or b"{}")
            else:
                scenario = parse_scenario(request.body.decode("utf-8"))
        except UnicodeDecodeError:
            return Response.json(400, {"error": "the body must be UTF-8", "key": ""})
        except ScenarioError as exc:
            return Response.json(400, {"error": str(exc), "key": exc.key})
        self._load_scenario(scenario)
        return Response.json(200, self._scenario.scenario.to_json())


def _no_endpoint(path: str) -> Response:
    return Response.json(404, {"error": f"no control endpoint {path.partition('?')[0]}"})


def _method_not_allowed(allow: str) -> Response:
    return Response.json(405, {"error": "method not allowed"}, [("allow", allow)])
