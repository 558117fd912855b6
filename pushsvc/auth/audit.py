"""Audit: one line per state-changing or fan-out call, on the `pushsvc.audit` logger.

A line names the principal, the app, the outcome and the counts, never a
device token, user id or credential: `Send` is logged with its notification
id and target kind, `UnregisterToken` with its platform and whether a token
was removed, `Prune` with the count and whether it was a dry run.

The facts are the record's structured fields (`pushsvc.logs.FIELDS`): in JSON
log format they are top-level keys of the line, beside time, level and the
request id, so an audit line is one JSON object like every other line.
"""

from __future__ import annotations

import logging
from typing import Any

from pushsvc import logs
from pushsvc.access import Principal
from pushsvc.v1 import push_pb2 as pb

log = logging.getLogger("pushsvc.audit")

AUDITED = frozenset({"Send", "UnregisterToken", "Prune"})
"""The RPCs that get an audit line."""


def _fields(rpc: str, request: Any, response: Any) -> dict[str, Any]:
    if rpc == "Send":
        out: dict[str, Any] = {
            "target": request.target.WhichOneof("kind") if request.HasField("target") else None,
            "validate_only": request.validate_only,
        }
        if response is not None:
            out.update(notification_id=response.notification_id, targeted=response.targeted, duplicate=response.duplicate)
        return out
    if rpc == "UnregisterToken":
        out = {"platform": pb.Platform.Name(request.platform) if request.platform in pb.Platform.values() else request.platform}
        if response is not None:
            out["removed"] = int(response.removed)
        return out
    out = {"dry_run": request.dry_run}
    if response is not None:
        out["removed"] = response.removed
        if response.HasField("would_remove"):
            out["would_remove"] = response.would_remove
    return out


def record(rpc: str, principal: Principal, request: Any, response: Any, outcome: str) -> None:
    """Writes the audit line of one call; `response` is None when the call failed."""
    line = {"audit": rpc, "principal": principal.name, "app": request.app_id, "outcome": outcome}
    line.update(_fields(rpc, request, response))
    log.info("audit %s %s", rpc, outcome, extra={logs.FIELDS: line})
