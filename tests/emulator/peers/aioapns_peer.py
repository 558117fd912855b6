"""Sends through aioapns, unmodified, to the emulator; prints the results as JSON.

Run as a subprocess by test_peers.py: aioapns has no host option, and pointing
it at the emulator means setting class attributes of its protocol (tooling.md
§8.2), which patches the library process-wide. That must not happen in the
test process, so it happens here.

stdin: {"host", "port", "ca_file", "key_file", "key_id", "team_id", "topic",
"tokens": [...], "message": {...}}.
stdout: {"results": [{"token", "status", "description", "timestamp",
"notification_id"}...], "alpn": [selected ALPN of each connection]}.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any

from aioapns import APNs, NotificationRequest
from aioapns.connection import APNsProductionClientProtocol


async def main(config: dict[str, Any]) -> dict[str, Any]:
    APNsProductionClientProtocol.APNS_SERVER = config["host"]
    APNsProductionClientProtocol.APNS_PORT = config["port"]
    # What aioapns builds by default (ssl.create_default_context(), no ALPN),
    # trusting the emulator's CA.
    context = ssl.create_default_context(cafile=config["ca_file"])
    with open(config["key_file"]) as key_file:
        key = key_file.read()
    client = APNs(
        key=key,
        key_id=config["key_id"],
        team_id=config["team_id"],
        topic=config["topic"],
        use_sandbox=False,
        ssl_context=context,
    )
    results = []
    for token in config["tokens"]:
        result = await client.send_notification(NotificationRequest(device_token=token, message=config["message"]))
        results.append(
            {
                "token": token,
                "status": result.status,
                "description": result.description,
                "timestamp": result.timestamp,
                "notification_id": result.notification_id,
            }
        )
    alpn = [
        connection.transport.get_extra_info("ssl_object").selected_alpn_protocol()
        for connection in client.pool.connections
        if connection.transport is not None
    ]
    client.pool.close()
    return {"results": results, "alpn": alpn}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
