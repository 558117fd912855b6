"""The fake FCM HTTP v1 send API (protocols.md B.1-B.5, B.10).

``POST /v1/projects/{project_id}/messages:send``, checked in this order:

1. Authentication: ``authorization: Bearer <access token>`` issued by the
   emulator's own token endpoint, unexpired by the injected clock. Otherwise
   ``401 UNAUTHENTICATED`` without FcmError and with
   ``www-authenticate: Bearer realm="https://accounts.google.com/", error="invalid_token"``
   (Google's "missing required authentication credential" text when there is no
   token, the "had invalid authentication credentials" text otherwise).
2. The token's account belongs to the path's project, else ``403
   PERMISSION_DENIED`` "Permission 'cloudmessaging.messages.create' denied ..."
   (no FcmError); its scopes include ``firebase.messaging`` or
   ``cloud-platform``, else ``403 PERMISSION_DENIED`` "Request had insufficient
   authentication scopes." with an ErrorInfo ``ACCESS_TOKEN_SCOPE_INSUFFICIENT``.
3. Body: JSON object (``400 INVALID_ARGUMENT`` "Invalid JSON payload received..."
   with a BadRequest detail); ``validate_only`` boolean; ``message`` an object
   with known fields only; exactly one of ``token``/``fid``/``topic``/
   ``condition``; ``data`` an object of string values (BadRequest field
   violation ``message.data[i].value`` worded as in B.4) and without reserved
   keys (``from``, ``message_type``, ``google.*``, ``gcm.notification.*``;
   emulator wording "Invalid data payload key: <key>").
4. Size: the message **without its target key** (``token``, ``fid``,
   ``topic``, ``condition``) serialised as compact JSON
   (``json.dumps(m, separators=(",", ":"), ensure_ascii=False)``) in UTF-8 must
   be at most 4096 bytes, or 2048 for topic and condition messages; otherwise
   ``400 INVALID_ARGUMENT`` "Android message is too big" with FcmError
   INVALID_ARGUMENT. The gateway computes the same measure.
5. Fault injection (``Faults.error_rate``): ``503 UNAVAILABLE`` with FcmError
   UNAVAILABLE (no Retry-After).
6. The scenario (:mod:`.scenario`): a rule matching ``token`` or ``fid``
   answers from its sequence. The default scenario is the built-in test
   tokens (``default_scenario.toml``; prefixes); *permanent* ones also apply
   to ``validate_only`` requests, *first attempt* ones do not and are
   remembered per token for the emulator's lifetime:

   ================  ===========================================================
   prefix            answer
   ================  ===========================================================
   unregistered-     404 NOT_FOUND, FcmError UNREGISTERED
   invalid-          400 INVALID_ARGUMENT "The registration token is not a valid
                     FCM registration token", FcmError INVALID_ARGUMENT
   mismatch-         403 PERMISSION_DENIED "SenderId mismatch", FcmError
                     SENDER_ID_MISMATCH (extra)
   apns-disabled-    400 INVALID_ARGUMENT "APNs device token is disabled.",
                     FcmError INVALID_ARGUMENT + ApnsError 410 Unregistered (extra)
   thirdparty-       401 UNAUTHENTICATED "Auth error from APNS or Web Push
                     Service", FcmError THIRD_PARTY_AUTH_ERROR + ApnsError 403
                     InvalidProviderToken (extra)
   quota-            first attempt: 429 RESOURCE_EXHAUSTED, FcmError
                     QUOTA_EXCEEDED, ``Retry-After: 1``
   ratelimit-        first attempt: 429 RESOURCE_EXHAUSTED, ErrorInfo
                     RATE_LIMIT_EXCEEDED + Help, no FcmError,
                     ``Retry-After: 1`` (extra)
   unavailable-      first attempt: 503 UNAVAILABLE, FcmError UNAVAILABLE,
                     ``Retry-After: 1``
   internal-         first attempt: 500 INTERNAL, FcmError INTERNAL (extra)
   ================  ===========================================================

7. ``validate_only``: ``200 {"name":"projects/<id>/messages/fake_message_id"}``,
   not added to the inbox. Otherwise ``200 {"name":"projects/<id>/messages/<id>"}``
   and the message is added to the inbox.

Error bodies are ``google.rpc.Status`` JSON (``{"error":{"code","message",
"status"[,"details"]}}``, ``details`` omitted when empty) with
``content-type: application/json; charset=UTF-8``.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable, Iterable
from typing import Any

import h2.settings

from .control import ControlApi
from .faults import GOAWAY_DEBUG, Faults, plan_faults
from .handlers import ChannelHandler
from .inbox import Inbox, InboxEntry
from .oauth import AccessGrant, OAuthService
from .scenario import Play, ScenarioPlayer, Step
from .site import ClientConnection, Request, Response
from .stats import Stats

MESSAGE_LIMIT = 4096
TOPIC_MESSAGE_LIMIT = 2048
TARGET_KEYS = ("token", "fid", "topic", "condition")
SEND_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/firebase.messaging",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)
_MESSAGE_FIELDS = frozenset(
    {
        "name",
        "data",
        "notification",
        "android",
        "android_v2",
        "androidV2",
        "webpush",
        "apns",
        "fcm_options",
        "fcmOptions",
        *TARGET_KEYS,
    }
)
_REQUEST_FIELDS = frozenset({"validate_only", "validateOnly", "message"})
_SEND_PATH_RE = re.compile(r"/v1/projects/([^/?]+)/messages:send")
_CONTENT_TYPE = "application/json; charset=UTF-8"
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_APNS_ERROR = "type.googleapis.com/google.firebase.fcm.v1.ApnsError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_WWW_AUTHENTICATE = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
_OAUTH_HINT = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_MISSING_CREDENTIALS = "Request is missing required authentication credential. " + _OAUTH_HINT
_INVALID_CREDENTIALS = "Request had invalid authentication credentials. " + _OAUTH_HINT
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class _Reject(Exception):
    """An FCM error answer (a google.rpc.Status), raised from the checks."""

    def __init__(
        self,
        code: int,
        message: str,
        details: Iterable[dict[str, Any]] = (),
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = list(headers)
        # Set when a scenario rule gave this answer: its latency and GOAWAY.
        self.play: Play | None = None

    def response(self) -> Response:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": _STATUS_NAMES.get(self.code, "UNKNOWN"),
        }
        if self.details:
            error["details"] = self.details
        return Response.json(self.code, {"error": error}, self.headers, content_type=_CONTENT_TYPE)


def _fcm_error(code: str) -> dict[str, Any]:
    return {"@type": _FCM_ERROR, "errorCode": code}


def _apns_error(status: int, reason: str) -> dict[str, Any]:
    # camelCase on the wire (protocols.md B.4).
    return {"@type": _APNS_ERROR, "statusCode": status, "reason": reason}


def _bad_request(description: str, field: str | None = None) -> dict[str, Any]:
    violation = {"field": field, "description": description} if field else {"description": description}
    return {"@type": _BAD_REQUEST, "fieldViolations": [violation]}


def _invalid_argument(message: str, field: str | None = None, *, fcm_error: bool = True) -> _Reject:
    details = [_fcm_error("INVALID_ARGUMENT")] if fcm_error else []
    details.append(_bad_request(message, field))
    return _Reject(400, message, details)


def _scenario_reject(step: Step, project_id: str) -> _Reject:
    """The error a scenario step describes (see :mod:`.scenario`)."""
    details: list[dict[str, Any]] = []
    if step.error_code:
        details.append(_fcm_error(step.error_code))
    if step.apns_status is not None:
        details.append(_apns_error(step.apns_status, step.apns_reason))
    details.extend(_with_project(dict(d), project_id) for d in step.details)
    headers = [("retry-after", str(step.retry_after_s))] if step.retry_after_s is not None else []
    message = step.message.replace("{project_id}", project_id) if step.message else (
        _STATUS_NAMES.get(step.status, "UNKNOWN")
    )
    return _Reject(step.status, message, details, headers)


def _with_project(value: Any, project_id: str) -> Any:
    """``value`` with ``{project_id}`` replaced in every string inside it."""
    if isinstance(value, str):
        return value.replace("{project_id}", project_id)
    if isinstance(value, dict):
        return {k: _with_project(v, project_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_project(v, project_id) for v in value]
    return value


def message_size(message: dict[str, Any]) -> int:
    """Bytes the emulator counts against the FCM size limit (module docstring, 4)."""
    rest = {k: v for k, v in message.items() if k not in TARGET_KEYS}
    return len(json.dumps(rest, separators=(",", ":"), ensure_ascii=False).encode())


class FcmService:
    """Validates and answers FCM send requests."""

    def __init__(
        self,
        oauth: OAuthService,
        *,
        inbox: Inbox,
        faults: Faults,
        stats: Stats,
        clock: Callable[[], float],
        rng: random.Random,
        scenario: ScenarioPlayer,
    ) -> None:
        self._oauth = oauth
        self._inbox = inbox
        self._faults = faults
        self._stats = stats
        self._clock = clock
        self._rng = rng
        self._scenario = scenario
        self._sequence = itertools.count(1)

    def handle(self, request: Request) -> Response | None:
        """Answer a request for an FCM path, applying faults to sends."""
        path = request.path.partition("?")[0]
        match = _SEND_PATH_RE.fullmatch(path)
        if match is None:
            return _Reject(404, f"Method not found: {path}").response()
        if request.method != "POST":
            return _Reject(405, f"Method {request.method} not allowed for {path}").response()
        self._stats.fcm_requests += 1
        plan = plan_faults(self._faults, request.connection, self._rng)
        if plan.reset:
            request.connection.abort()
            return None
        try:
            response = self._send(request, match.group(1), fail=plan.fail)
        except _Reject as reject:
            response = reject.response()
            if reject.play is not None:
                response.delay_s = reject.play.delay_s
                if reject.play.goaway:
                    response.goaway_debug = GOAWAY_DEBUG
        response.delay_s += plan.delay_s
        if plan.goaway:
            response.goaway_debug = GOAWAY_DEBUG
        return response

    def _send(self, request: Request, project_id: str, *, fail: bool) -> Response:
        self._authorize(request, project_id)
        validate_only, message = self._parse(request.body)
        target = _check_message(message)
        token = str(message.get("token") or message.get("fid") or "")
        if fail:
            raise _Reject(503, "The service is currently unavailable.", [_fcm_error("UNAVAILABLE")])
        rule = self._scenario.match("fcm", token) if token else None
        play = self._scenario.play(rule, token, advance=not validate_only) if rule is not None else None
        if play is not None and play.step is not None and play.step.status != 200:
            reject = _scenario_reject(play.step, project_id)
            reject.play = play
            if not validate_only:
                entry = _entry(request, message, target, token, f"projects/{project_id}/messages/", self._clock())
                codes = [d["errorCode"] for d in reject.details if d.get("@type") == _FCM_ERROR]
                reason = _STATUS_NAMES.get(reject.code, "UNKNOWN") + "".join(f"/{c}" for c in codes[:1])
                self._inbox.reject(entry, reject.code, reason)
            raise reject
        if validate_only:
            return _name(project_id, "fake_message_id")
        now = self._clock()
        # Shaped like Google's "0:1500415314455276%31bd1c9631bd1c96"; the
        # sequence number keeps ids unique, the random part keeps them opaque.
        message_id = f"0:{int(now * 1_000_000)}%{next(self._sequence):08x}{self._rng.getrandbits(32):08x}"
        response = _name(project_id, message_id)
        if play is not None:
            response.delay_s = play.delay_s
            response.goaway_debug = GOAWAY_DEBUG if play.goaway else None
        self._inbox.add(_entry(request, message, target, token, f"projects/{project_id}/messages/{message_id}", now))
        return response

    def _authorize(self, request: Request, project_id: str) -> AccessGrant:
        authorization = request.header("authorization")
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        challenge = [("www-authenticate", _WWW_AUTHENTICATE)]
        if not authorization or scheme.lower() != "bearer" or not token:
            raise _Reject(401, _MISSING_CREDENTIALS, headers=challenge)
        grant = self._oauth.lookup(token)
        if grant is None:
            raise _Reject(401, _INVALID_CREDENTIALS, headers=challenge)
        if grant.account.project_id != project_id:
            raise _Reject(
                403,
                "Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project_id}' "
                "(or it may not exist).",
            )
        if not grant.scopes & SEND_SCOPES:
            raise _Reject(
                403,
                "Request had insufficient authentication scopes.",
                [
                    {
                        "@type": _ERROR_INFO,
                        "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                        "domain": "googleapis.com",
                        "metadata": {
                            "method": "google.firebase.fcm.v1.FcmService.SendMessage",
                            "service": "fcm.googleapis.com",
                        },
                    }
                ],
            )
        return grant

    @staticmethod
    def _parse(body: bytes) -> tuple[bool, dict[str, Any]]:
        try:
            document = json.loads(body)
        except ValueError:
            raise _invalid_argument(
                "Invalid JSON payload received. Unexpected token.", fcm_error=False
            ) from None
        if not isinstance(document, dict):
            raise _invalid_argument(
                "Invalid JSON payload received. Expected an object.", fcm_error=False
            )
        for name in document:
            if name not in _REQUEST_FIELDS:
                raise _invalid_argument(
                    f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.',
                    fcm_error=False,
                )
        validate_only = document.get("validate_only", document.get("validateOnly", False))
        if not isinstance(validate_only, bool):
            raise _invalid_argument(
                f"Invalid value at 'validate_only' (TYPE_BOOL), {json.dumps(validate_only)}",
                "validate_only",
                fcm_error=False,
            )
        message = document.get("message", {})
        if not isinstance(message, dict):
            raise _invalid_argument(
                "Invalid value at 'message' (type.googleapis.com/google.firebase.fcm.v1.Message), "
                + json.dumps(message),
                "message",
                fcm_error=False,
            )
        return validate_only, message


def _check_message(message: dict[str, Any]) -> str:
    """Validate a message; return which target key it uses."""
    for name in message:
        if name not in _MESSAGE_FIELDS:
            raise _invalid_argument(
                f'Invalid JSON payload received. Unknown name "{name}" at \'message\': '
                "Cannot find field.",
                "message",
                fcm_error=False,
            )
    targets = [key for key in TARGET_KEYS if message.get(key) not in (None, "")]
    if not targets:
        raise _invalid_argument("Recipient of the message is not set.", "message")
    if len(targets) > 1:
        raise _invalid_argument(
            "Invalid value at 'message' (oneof), oneof field 'target' is already set. "
            f"Cannot set '{targets[1]}'",
            "message",
            fcm_error=False,
        )
    target = targets[0]
    if not isinstance(message[target], str):
        description = f"Invalid value at 'message.{target}' (TYPE_STRING), {json.dumps(message[target])}"
        raise _invalid_argument(description, f"message.{target}", fcm_error=False)
    data = message.get("data")
    if data is not None:
        if not isinstance(data, dict):
            description = (
                "Invalid value at 'message.data' "
                f"(type.googleapis.com/google.firebase.fcm.v1.Message.DataEntry), {json.dumps(data)}"
            )
            raise _invalid_argument(description, "message.data", fcm_error=False)
        for index, (key, value) in enumerate(data.items()):
            if not isinstance(value, str):
                field = f"message.data[{index}].value"
                description = f"Invalid value at '{field}' (TYPE_STRING), {json.dumps(value)}"
                raise _invalid_argument(description, field, fcm_error=False)
            if (
                key in ("from", "message_type")
                or key.startswith("google.")
                or key.startswith("gcm.notification.")
            ):
                raise _invalid_argument(f"Invalid data payload key: {key}", "message.data")
    limit = TOPIC_MESSAGE_LIMIT if target in ("topic", "condition") else MESSAGE_LIMIT
    if message_size(message) > limit:
        raise _Reject(400, "Android message is too big", [_fcm_error("INVALID_ARGUMENT")])
    return target


def _entry(
    request: Request, message: dict[str, Any], target: str, token: str, message_id: str, now: float
) -> InboxEntry:
    return InboxEntry(
        platform="fcm",
        token=token if target in ("token", "fid") else "",
        environment="",
        headers={k: v for k, v in request.headers if k != "authorization"},
        payload=message,
        message_id=message_id,
        received_at=now,
    )


def _name(project_id: str, message_id: str) -> Response:
    return Response.json(
        200, {"name": f"projects/{project_id}/messages/{message_id}"}, content_type=_CONTENT_TYPE
    )


class FcmSite:
    """The FCM port: send API, OAuth token endpoint and control endpoints."""

    def __init__(
        self, fcm: FcmService, oauth: OAuthService, control: ControlApi, max_streams: int,
        channels: tuple[ChannelHandler, ...] = (),
    ) -> None:
        self._fcm = fcm
        self._channels = channels
        self._oauth = oauth
        self._control = control
        self._max_streams = max_streams

    def connection_made(self, connection: ClientConnection) -> dict[int, int]:
        """See :meth:`pushsvc.emulator.site.Site.connection_made`."""
        return {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self._max_streams}

    def handle(self, request: Request) -> Response | None:
        """See :meth:`pushsvc.emulator.site.Site.handle`."""
        path = request.path
        if path.startswith(ControlApi.PREFIX):
            return self._control.handle(request)
        if path.partition("?")[0] == "/token":
            return self._oauth.handle(request)
        for channel in self._channels:
            if channel.owns(path):
                return channel.handle(request)
        return self._fcm.handle(request)
