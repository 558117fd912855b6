"""A fake Huawei Push Kit: the OAuth client-credentials endpoint and the v1/v2 send API.

Served on the FCM port. ``POST /oauth2/v3/token`` (and ``/oauth2/v2/token``)
takes ``grant_type=client_credentials&client_id=…&client_secret=…``:
a client id that is not digits is 400 ``sub_error`` 20002, an unknown one
20003, a wrong secret 12304 (all ``error`` 1101); success is
``{access_token, expires_in: 3600, token_type: "Bearer"}`` with
``Cache-Control: no-store``, the token holding ``/`` and ``+`` as Huawei's do.

``POST /v1/<client_id>/messages:send`` or ``/v2/<project_id>/messages:send``
needs ``Authorization: Bearer`` with an unexpired token of that app (else
HTTP 401 with 80200001, or 80200003 once expired: Huawei documents 401 as
"authentication failure"; which status carries which code is not documented).
The body is checked (reference/protocols-webpush-hms.md Part 3): JSON, exactly
one of token/topic/condition (80100003), 1-1000 tokens (80300010), ``data`` a
string, ``android.urgency`` HIGH or NORMAL, ``android.ttl`` of the documented
form (80100003), at most 4096 bytes without the tokens (80300008).
``validate_only`` validates and delivers nothing. Codes are strings, every
answer has a unique ``requestId``, ``Content-Type: application/json``.

Test tokens, by prefix:

- ``invalid-``: an illegal token. With good ones, 80100000 and ``msg`` a JSON
  *string* listing ``illegal_tokens`` (the good ones are delivered); alone,
  80300007 "All the tokens are invalid";
- ``ratelimit-``: the whole request answers HTTP 503 (flow control, a text
  body, ``Retry-After: 1``) once;
- ``internal-``: the whole request answers 81000001 (HTTP 500) once.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .display import Display, badge, mapping, shown_data, text
from .handlers import HandlerSpec, write_private
from .inbox import Inbox, InboxEntry
from .site import Request, Response
from .stats import Stats

CHANNEL = "hms"
"""The channel's settings_key: its counter and manifest entries are named by it."""

TOKEN_LIFETIME_S = 3600
SEND_PATH = re.compile(r"/v([12])/([^/]+)/messages:send")
BODY_LIMIT_BYTES = 4096
_TTL = re.compile(r"\d+(\.\d{1,9})?[sS]?")
_CLIENT_ID = re.compile(r"[0-9]{1,64}")


@dataclasses.dataclass(frozen=True)
class HmsClient:
    """An OAuth client the emulator accepts: the app's client id (its app id), secret and project."""

    client_id: str
    client_secret: str
    project_id: str


@dataclasses.dataclass
class _Grant:
    client: HmsClient
    expires_at: float


def is_hms_path(path: str) -> bool:
    """Whether a request path belongs to the fake Push Kit (FCM's own paths start /v1/projects/)."""
    bare = path.partition("?")[0]
    if bare in ("/oauth2/v3/token", "/oauth2/v2/token"):
        return True
    return bool(SEND_PATH.fullmatch(bare)) and not bare.startswith("/v1/projects/")


class HmsService:
    """The token endpoint and the send API."""

    def __init__(
        self, *, inbox: Inbox, stats: Stats, clock: Callable[[], float], origin: Callable[[], str] | None = None
    ) -> None:
        self._inbox = inbox
        self._stats = stats
        self._clock = clock
        self._origin = origin
        stats.register(CHANNEL)
        self._clients: dict[str, HmsClient] = {}
        self._grants: dict[str, _Grant] = {}
        self._answered_once: set[str] = set()

    def add_client(self, client: HmsClient) -> None:
        """Accept this OAuth client from now on."""
        self._clients[client.client_id] = client

    def owns(self, path: str) -> bool:
        """The token endpoint and the send API (see `is_hms_path`)."""
        return is_hms_path(path)

    def control(self, action: str) -> Callable[[dict[str, Any]], tuple[int, Any]] | None:
        """No control endpoints of its own."""
        return None

    def accept(self, entries: Mapping[str, str]) -> None:
        """The demo OAuth client `demo_credentials` wrote (none in a manifest from before HMS)."""
        if entries.get("hms_client_secret_file"):
            secret = Path(entries["hms_client_secret_file"]).read_text().strip()
            self.add_client(HmsClient(entries["hms_client_id"], secret, entries["hms_project_id"]))

    def urls(self) -> dict[str, str]:
        """Push Kit's base URL; its token endpoint is ``/oauth2/v3/token`` there."""
        return {"hms_url": self._origin()} if self._origin is not None else {}

    def attributes(self) -> Mapping[str, Callable[[], Any]]:
        """`Emulator.hms` (this service), `Emulator.hms_url` and `Emulator.add_hms_client`."""
        return {"hms": lambda: self, "hms_url": lambda: self.urls()["hms_url"], "add_hms_client": lambda: self.add_client}

    def handle(self, request: Request) -> Response:
        """One request to the token endpoint or the send API."""
        self._stats.count(CHANNEL)
        if request.method != "POST":
            return Response.json(405, {"error": "method not allowed"}, [("allow", "POST")])
        path = request.path.partition("?")[0]
        if path.startswith("/oauth2/"):
            return self._token(request)
        match = SEND_PATH.fullmatch(path)
        assert match is not None  # is_hms_path routed it here
        return self._send(request, version=match.group(1), app=match.group(2))

    def _token(self, request: Request) -> Response:
        form = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        client_id = form.get("client_id", [""])[0]
        secret = form.get("client_secret", [""])[0]
        if grant != "client_credentials":
            return _oauth_error(400, 1101, 20001, "unsupported grant_type")
        if not _CLIENT_ID.fullmatch(client_id):
            return _oauth_error(400, 1101, 20002, "client_id must be digits")
        client = self._clients.get(client_id)
        if client is None:
            return _oauth_error(400, 1101, 20003, "unknown client_id")
        if not secrets.compare_digest(secret, client.client_secret):
            return _oauth_error(400, 1101, 12304, "invalid client_secret")
        token = "DAEDA" + secrets.token_urlsafe(30).replace("-", "+").replace("_", "/") + "=="
        self._grants[token] = _Grant(client, self._clock() + TOKEN_LIFETIME_S)
        body = {"access_token": token, "expires_in": TOKEN_LIFETIME_S, "token_type": "Bearer"}
        return Response.json(200, body, [("cache-control", "no-store")], content_type="application/json;charset=UTF-8")

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (tests of the refresh)."""
        for grant in self._grants.values():
            grant.expires_at = self._clock()

    def _send(self, request: Request, *, version: str, app: str) -> Response:
        auth = request.header("authorization") or ""
        grant = self._grants.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None
        if grant is None or (grant.client.client_id if version == "1" else grant.client.project_id) != app:
            return _result(401, "80200001", "Oauth authentication error")
        if self._clock() >= grant.expires_at:
            return _result(401, "80200003", "Oauth Token expired")
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return _result(400, "80100003", "Incorrect message structure: the body is not JSON")
        problem, code, tokens = _check(body)
        if problem:
            return _result(400, code, problem)
        if body.get("validate_only") is True:
            return _result(200, "80000000", "Success")
        once = [t for t in tokens if t.startswith(("ratelimit-", "internal-")) and t not in self._answered_once]
        if once:
            self._answered_once.update(once)
            if once[0].startswith("ratelimit-"):
                # Huawei documents flow control as HTTP 503 without saying what the body holds.
                return Response(503, [("content-type", "text/plain"), ("retry-after", "1")], b"Service Unavailable")
            return _result(500, "81000001", "System internal error")
        illegal = [t for t in tokens if t.startswith("invalid-")]
        good = [t for t in tokens if not t.startswith("invalid-")]
        if not good:
            return _result(200, "80300007", "All the tokens are invalid")
        request_id = _request_id()
        message = body["message"]
        for token in good:
            self._inbox.add(InboxEntry(
                platform="hms", token=token, environment="",
                headers={k: v for k, v in request.headers if k != "authorization" and not k.startswith(":")},
                payload={k: v for k, v in message.items() if k != "token"}, message_id=request_id, received_at=self._clock(),
            ))
        if illegal:
            msg = json.dumps({"success": len(good), "failure": len(illegal), "illegal_tokens": illegal})
            return _result(200, "80100000", msg, request_id=request_id)
        return _result(200, "80000000", "Success", request_id=request_id)


def _check(body: Any) -> tuple[str, str, list[str]]:
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        return "Incorrect message structure: no message object", "80100003", []
    message = body["message"]
    targets = [k for k in ("token", "topic", "condition") if k in message]
    if len(targets) != 1:
        return "Incorrect message structure: set exactly one of token, topic, condition", "80100003", []
    tokens = message.get("token", [])
    if "token" in message and (not isinstance(tokens, list) or not 1 <= len(tokens) <= 1000 or not all(isinstance(t, str) for t in tokens)):
        return "token must be an array of 1 to 1000 tokens", "80300010", []
    if "data" in message and not isinstance(message["data"], str):
        return "Incorrect message structure: data must be a string", "80100003", []
    android = message.get("android", {})
    if not isinstance(android, dict):
        return "Incorrect message structure: android must be an object", "80100003", []
    if "urgency" in android and android["urgency"] not in ("HIGH", "NORMAL"):
        return "android.urgency must be HIGH or NORMAL", "80100003", []
    if "ttl" in android and (not isinstance(android["ttl"], str) or not _TTL.fullmatch(android["ttl"])):
        return "android.ttl must be like 86400s", "80100003", []
    notification = android.get("notification")
    if notification is not None and (not isinstance(notification, dict) or not isinstance(notification.get("click_action"), dict)):
        return "android.notification needs a click_action", "80100003", []
    without_tokens = json.dumps({**body, "message": {k: v for k, v in message.items() if k != "token"}}, separators=(",", ":"))
    if len(without_tokens.encode()) > BODY_LIMIT_BYTES:
        return "The message body size exceeds the default value (4096 bytes, tokens excluded)", "80300008", []
    return "", "", tokens if isinstance(tokens, list) else []


def _request_id() -> str:
    return secrets.token_hex(12)


def _result(status: int, code: str, msg: str, headers: list[tuple[str, str]] | None = None, *, request_id: str = "") -> Response:
    return Response.json(status, {"code": code, "msg": msg, "requestId": request_id or _request_id()}, headers or [])


def _oauth_error(status: int, error: int, sub_error: int, description: str) -> Response:
    return Response.json(status, {"error": error, "sub_error": sub_error, "error_description": description})


def demo_credentials(directory: Path) -> dict[str, str]:
    """A demo OAuth client: a digits client id, its secret (``hms-client-secret``) and a project id."""
    path = directory / "hms-client-secret"
    write_private(path, secrets.token_urlsafe(32).encode())
    return {
        "hms_client_id": str(100000000 + secrets.randbelow(900000000)),
        "hms_client_secret_file": str(path),
        "hms_project_id": str(736430079244600000 + secrets.randbelow(100000)),
    }


def display(message: Mapping[str, Any]) -> Display:
    """What a Huawei phone shows: ``android.notification`` over ``notification``; ``data`` is a JSON string."""
    notification = mapping(message.get("notification"))
    android = mapping(mapping(message.get("android")).get("notification"))
    return Display(
        app="hms",
        title=text(android.get("title")) or text(notification.get("title")),
        body=text(android.get("body")) or text(notification.get("body")),
        badge=badge(mapping(android.get("badge")).get("set_num")),
        sound=text(android.get("sound")),
        image=text(android.get("image")) or text(notification.get("image")),
        **shown_data(_json_object(message.get("data"))),
    )


def _json_object(value: Any) -> Mapping[str, Any]:
    """HMS carries `data` as a JSON string: its object, or {} when it is not one."""
    if not isinstance(value, str):
        return {}
    try:
        return mapping(json.loads(value))
    except ValueError:
        return {}


HANDLER = HandlerSpec(
    channel=CHANNEL,
    build=lambda ctx: HmsService(inbox=ctx.inbox, stats=ctx.stats, clock=ctx.clock, origin=ctx.origin),
    demo_credentials=demo_credentials,
    display=display,
    label="HMS",
    icon="H",
    color="#cf0a2c",
)
"""The HMS channel's emulator handler (named by its registry entry)."""
