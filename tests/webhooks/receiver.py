"""A real HTTPS webhook receiver for tests: stdlib's HTTP server in a thread, with a trustme certificate.

It checks every POST's signature on its own (HMAC-SHA256 recomputed here, not
through pushsvc's code), records what it accepted, and can be told to answer
an error status for a while, as a receiver that is down behind a load balancer would.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

SECRET_BYTES = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()
"""The endpoint's secret as configured (Standard Webhooks form); the HMAC key is SECRET_BYTES."""


@dataclasses.dataclass
class Post:
    """One POST as received."""

    message_id: str
    timestamp: int
    body: dict[str, Any]
    signature_ok: bool
    status: int
    at: float

    @property
    def cursors(self) -> list[str]:
        return [r["cursor"] for r in self.body["data"]["receipts"]]

    @property
    def tokens(self) -> list[str]:
        return [r["token"] for r in self.body["data"]["receipts"]]


def verify(key: bytes, message_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """The Standard Webhooks check: any `v1,` signature in the header equals HMAC-SHA256(key, id.ts.body)."""
    expected = base64.b64encode(hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    return any(
        part.startswith("v1,") and hmac.compare_digest(part[3:].encode(), expected) for part in header.split(" ")
    )


class Receiver:
    """An HTTPS server on 127.0.0.1 that records signed batches."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.ca_file = directory / "webhook-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.posts: list[Post] = []
        self.status = 200
        """What to answer; set to 503 to play a receiver that is down."""
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  # the name http.server dispatches to
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                message_id = self.headers.get("webhook-id", "")
                ts = self.headers.get("webhook-timestamp", "0")
                ok = verify(SECRET_BYTES, message_id, ts, raw, self.headers.get("webhook-signature", ""))
                with receiver._lock:
                    status = receiver.status
                    receiver.posts.append(Post(message_id, int(ts), json.loads(raw), ok, status, time.monotonic()))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # http.server's signature
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}/hooks/receipts"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def accepted(self) -> list[Post]:
        """The POSTs answered 2xx, in arrival order."""
        with self._lock:
            return [p for p in self.posts if 200 <= p.status < 300]

    def all_posts(self) -> list[Post]:
        with self._lock:
            return list(self.posts)
