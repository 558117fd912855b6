"""Sends through firebase-admin's synchronous ``messaging.send``; prints JSON results.

Run as a subprocess by test_peers.py, with ``REQUESTS_CA_BUNDLE`` set to the
emulator's CA: firebase-admin sends with ``requests``, so both the OAuth
token request (google-auth's ``requests`` transport, to the service account's
``token_uri``) and the FCM send are HTTP/1.1.

stdin: {"service_account_file", "fcm_url", "messages": [{"token", "title",
"body", "data"}...]}.
stdout: {"results": [{"name"} or {"error", "code", "http_status", "message"}...],
"project_id"}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import firebase_admin
from firebase_admin import credentials, exceptions, messaging


def main(config: dict[str, Any]) -> dict[str, Any]:
    app = firebase_admin.initialize_app(credentials.Certificate(config["service_account_file"]), name="emulator")
    service = messaging._get_messaging_service(app)
    # firebase-admin has no endpoint option for messaging. The send URL lives in
    # _MessagingService._fcm_url, an instance attribute set once in __init__
    # from the class constant FCM_URL; setting it on this app's service
    # redirects sync send() and nothing else.
    service._fcm_url = f"{config['fcm_url']}/v1/projects/{app.project_id}/messages:send"
    results: list[dict[str, Any]] = []
    for spec in config["messages"]:
        message = messaging.Message(
            token=spec["token"],
            notification=messaging.Notification(title=spec["title"], body=spec["body"]),
            data=spec["data"],
        )
        try:
            results.append({"name": messaging.send(message, app=app)})
        except exceptions.FirebaseError as error:
            results.append(
                {
                    "error": type(error).__name__,
                    "code": error.code,
                    "http_status": error.http_response.status_code if error.http_response is not None else None,
                    "message": str(error),
                }
            )
    project_id = app.project_id
    firebase_admin.delete_app(app)
    return {"results": results, "project_id": project_id}


if __name__ == "__main__":
    print(json.dumps(main(json.load(sys.stdin))))
