"""Control endpoints served on every emulator port under ``/_emulator/``.

- ``GET /_emulator/inbox[?platform=apns|fcm][&token=...]``: JSON list of entries.
- ``DELETE /_emulator/inbox``: clear the inbox; answers ``{"cleared": n}``.
- ``GET /_emulator/faults``; ``POST /_emulator/faults`` with a JSON object of
  :class:`~pushsvc.emulator.faults.Faults` fields to change; both answer the
  current faults.
- ``GET /_emulator/stats``: request counters.

Control requests are never subject to faults and never need credentials.
"""

from __future__ import annotations

import json
import urllib.parse

from .faults import Faults
from .site import Request, Response
from .inbox import Inbox
from .stats import Stats


class ControlApi:
    """Serves the ``/_emulator/`` endpoints."""

    PREFIX = "/_emulator/"

    def __init__(self, inbox: Inbox, faults: Faults, stats: Stats) -> None:
        self._inbox = inbox
        self._faults = faults
        self._stats = stats

    def handle(self, request: Request) -> Response:
        """Answer one control request."""
        path, _, query = request.path.partition("?")
        method = request.method
        if path == "/_emulator/inbox":
            if method == "GET":
                params = urllib.parse.parse_qs(query)
                platform = params.get("platform", [None])[0]
                token = params.get("token", [None])[0]
                entries = self._inbox.entries(platform=platform, token=token)
                return Response.json(200, [e.to_json() for e in entries])
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
        return Response.json(404, {"error": f"no control endpoint {path}"})


def _method_not_allowed(allow: str) -> Response:
    return Response.json(405, {"error": "method not allowed"}, [("allow", allow)])
