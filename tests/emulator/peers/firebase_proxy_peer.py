"""firebase-admin through proxy mode, unmodified: no attribute or class overridden.

Run as a subprocess by test_proxy.py with ``HTTPS_PROXY`` set to the
emulator's proxy and ``REQUESTS_CA_BUNDLE`` to its CA. firebase-admin's
default transport (requests) honours both, so the OAuth exchange with
``oauth2.googleapis.com`` and the send to ``fcm.googleapis.com`` go through the
proxy's tunnels.

stdin: {"service_account_file", "tokens": [...]}.
stdout: {"results": [{"name"} or {"error", "http_status"}...]}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import firebase_admin
from firebase_admin import credentials, exceptions, messaging


def main(config: dict[str, Any]) -> dict[str, Any]:
    app = firebase_admin.initialize_app(credentials.Certificate(config["service_account_file"]), name="proxied")
    results: list[dict[str, Any]] = []
    for token in config["tokens"]:
        message = messaging.Message(
            token=token,
            notification=messaging.Notification(title="Through the proxy", body=f"to {token}"),
        )
        try:
            results.append({"name": messaging.send(message, app=app)})
        except exceptions.FirebaseError as error:
            status = error.http_response.status_code if error.http_response is not None else None
            results.append({"error": type(error).__name__, "http_status": status})
    firebase_admin.delete_app(app)
    return {"results": results}


if __name__ == "__main__":
    print(json.dumps(main(json.load(sys.stdin))))
