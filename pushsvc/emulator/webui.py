"""The web inbox: one self-contained HTML page served under ``/_emulator/``.

``GET /_emulator/`` (also ``/_emulator/ui``) answers ``inbox.html`` from this
package: no CDN, no build step. The page embeds a first snapshot of the
inbox, the faults and the scenario, so it shows them at once, then polls the
JSON endpoints every second (``/_emulator/inbox?rejected=1&display=1``,
``/_emulator/faults``, ``/_emulator/scenario``). It lists notifications newest
first, rendered roughly as a phone shows them (:mod:`.display`), each with
its arrival as a UTC date and time, its ``data`` (FCM data, APNs custom keys)
and its raw request (headers and payload) one click away, and a link to every
push of the same pushsvc notification (the ``pushsvc_notification_id`` data
key), and the localized variant pushsvc chose for the device (a "locale:"
chip, from the ``pushsvc_locale`` data key; none for the message's own
content); filters by app, platform, token, notification id and status (accepted,
or rejected by the scenario); clears the inbox with a button (``DELETE
/_emulator/inbox``); and shows the faults in force and the test-token table
(the scenario's rules).

Serve it on the plain-HTTP control port (``EmulatorConfig.control_port``,
``pushsvc emulator --control-port``) to open it in a browser without
trusting the CA; it is on every TLS port too.
"""

from __future__ import annotations

import importlib.resources
import json
from typing import Any

from .site import Response

_PLACEHOLDER = "__INITIAL__"


class WebInbox:
    """Renders the page around a snapshot of the emulator's state."""

    def __init__(self) -> None:
        self._template = importlib.resources.files(__package__).joinpath("inbox.html").read_text("utf-8")

    def page(self, snapshot: dict[str, Any]) -> Response:
        """The page with ``snapshot`` (``inbox``, ``faults``, ``scenario``) embedded."""
        # Inside <script>, "</" could end the element early: escape every "<".
        data = json.dumps(snapshot, separators=(",", ":")).replace("<", "\\u003c")
        body = self._template.replace(_PLACEHOLDER, data).encode("utf-8")
        return Response(
            200,
            [
                ("content-type", "text/html; charset=utf-8"),
                ("cache-control", "no-store"),
                # Everything is inline; images may come from anywhere (notification images).
                (
                    "content-security-policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    "connect-src 'self'; img-src * data:",
                ),
            ],
            body,
        )
