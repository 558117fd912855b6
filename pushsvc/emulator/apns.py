"""The fake APNs provider API: ``POST /3/device/<token>`` (protocols.md A.2-A.12).

Checks, in this order (the first failure answers; every error carries
``content-type: application/json``, ``apns-id`` and ``{"reason": ...}``):

1. ``:method`` POST (``405 MethodNotAllowed``); ``:path`` ``/3/device/<token>``
   (``400 MissingDeviceToken`` if the token is empty, else ``404 BadPath``).
2. No header repeated (``400 DuplicateHeaders``); ``apns-id`` a canonical
   lower-case UUID (``400 BadMessageId``). A valid ``apns-id`` is echoed on
   every answer, otherwise a fresh UUID is returned.
3. Authentication. With a TLS client certificate (when the emulator was given
   a client CA) the ``authorization`` header is ignored. Otherwise
   ``authorization: bearer <ES256 JWT>`` is required: missing or empty token
   ``403 MissingProviderToken``; non-bearer scheme, unknown ``kid``, wrong
   ``alg``, bad signature, ``iss`` not the key's team or ``iat`` not an
   integer ``403 InvalidProviderToken``; ``iat`` more than 3600 s old (or more
   than 3600 s ahead) by the injected clock ``403 ExpiredProviderToken``. The
   first valid token binds its key to the connection; another key id later
   gives ``403 UnrelatedKeyIdInToken``. A token with a different ``iat`` less
   than 1200 s after the connection last adopted one gives
   ``429 TooManyProviderTokenUpdates`` (the previous token keeps working).
   The first request that passes authentication raises the connection's
   ``MAX_CONCURRENT_STREAMS`` from the before-auth to the after-auth value.
4. ``apns-push-type`` one of the A.3 values (``400 InvalidPushType``);
   ``apns-topic`` present (``400 MissingTopic``; with a certificate it
   defaults to the certificate's bundle id) and equal to an allowed bundle id
   plus the suffix the push type requires (``400 BadTopic``; without a push
   type any suffix of the table is accepted). Certificate connections allow
   only topics ``<bundle>``, ``<bundle>.voip`` and ``<bundle>.complication``;
   other push types get ``400 TopicDisallowed``. ``apns-priority`` 10, 5 or 1,
   and not an explicit 10 for ``background`` (``400 BadPriority``);
   ``apns-expiration`` decimal digits (``400 BadExpirationDate``);
   ``apns-collapse-id`` at most 64 bytes (``400 BadCollapseId``).
5. The device token is hexadecimal (``400 BadDeviceToken``).
6. Body: empty ``400 PayloadEmpty``; over 4096 bytes, or 5120 for VoIP
   (push type ``voip``, or no push type and a ``.voip`` topic),
   ``413 PayloadTooLarge``; not a JSON object with an ``"aps"`` object:
   ``400 InvalidPayload``. **InvalidPayload is emulator-specific**: Apple
   documents no reason for malformed JSON.
7. Fault injection (``Faults.error_rate``): ``503 ServiceUnavailable``.
8. The scenario (:mod:`.scenario`): a rule matching the lower-cased token
   answers from its sequence. The default scenario is the built-in test
   tokens (``default_scenario.toml``; prefix of the hex token,
   case-insensitive):

   ======  ===============================================================
   prefix  answer
   ======  ===============================================================
   0410    410 Unregistered, ``timestamp`` = now in epoch milliseconds
   0400    400 BadDeviceToken
   0403    403 Forbidden (emulator extra; permanent)
   0429    429 TooManyRequests on the first attempt for that token, then 200
   0503    503 ServiceUnavailable on the first attempt, then 200
   0500    500 InternalServerError on the first attempt, then 200 (extra)
   ======  ===============================================================

   "First attempt" is remembered per token for the emulator's lifetime, across
   connections and environments (until another scenario is loaded).

   The scenario's ``[credentials]`` can shorten the JWT's 3600 s lifetime and
   limit the requests one JWT may make (``403 ExpiredProviderToken``).

Success is ``200`` with ``apns-id`` and an empty body; the sandbox port adds
``apns-unique-id``. Accepted notifications go to the inbox.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Callable, Iterable
from typing import Any

import h2.settings
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from hpack import NeverIndexedHeaderTuple

from .config import ApnsKey
from .control import ControlApi
from .faults import GOAWAY_DEBUG, Faults, plan_faults
from .inbox import Inbox, InboxEntry
from .scenario import Play, ScenarioPlayer
from .site import ClientConnection, Request, Response
from .stats import Stats

# Topic suffix each push type requires (protocols.md A.3). MDM topics come
# from an MDM certificate's UID, which the emulator equates with a bundle id.
PUSH_TYPE_TOPIC_SUFFIX: dict[str, str] = {
    "alert": "",
    "background": "",
    "complication": ".complication",
    "controls": ".push-type.controls",
    "fileprovider": ".pushkit.fileprovider",
    "liveactivity": ".push-type.liveactivity",
    "location": ".location-query",
    "mdm": "",
    "pushtotalk": ".voip-ptt",
    "voip": ".voip",
    "widgets": ".push-type.widgets",
}
_ALL_SUFFIXES = frozenset(PUSH_TYPE_TOPIC_SUFFIX.values())
# A certificate covers one app plus its VoIP and complication topics (A.6).
_CERT_SUFFIXES = frozenset({"", ".voip", ".complication"})

PAYLOAD_LIMIT = 4096
VOIP_PAYLOAD_LIMIT = 5120
JWT_MAX_AGE_S = 3600
JWT_MIN_UPDATE_INTERVAL_S = 1200
_DEVICE_PATH = "/3/device/"
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_DIGITS_RE = re.compile(r"[0-9]{1,20}")
_CERT_CN_PREFIX_RE = re.compile(r"^.*Push Services: ")
# Verified JWTs are cached so that ECDSA verification runs once per token,
# not once per request; the cache is dropped when it reaches this size.
_JWT_CACHE_LIMIT = 4096


def random_uuid(rng: random.Random) -> str:
    """A random (version 4) UUID string, canonical lower-case form.

    ``str(uuid.uuid4())`` costs ~3 µs; this costs ~1 µs, per response.
    """
    h = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


class _Reject(Exception):
    """An APNs error answer, raised from deep inside the checks."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


@dataclasses.dataclass(slots=True)
class ApnsConnectionState:
    """What APNs remembers about one connection.

    Attributes:
        environment: ``"production"`` or ``"sandbox"``.
        cert_bundle_id: Bundle id from the TLS client certificate, if any.
        key_id: Key bound by the first valid JWT.
        iat: ``iat`` of the JWT the connection currently uses.
        token_adopted_at: When that JWT was adopted (emulator clock).
        authenticated: True once the stream limit has been raised.
    """

    environment: str
    cert_bundle_id: str | None = None
    key_id: str | None = None
    iat: int | None = None
    token_adopted_at: float | None = None
    authenticated: bool = False


@dataclasses.dataclass(slots=True)
class _LoadedKey:
    key: ApnsKey
    public_key: ec.EllipticCurvePublicKey


def bundle_id_from_cert(peer_cert: dict[str, Any]) -> str | None:
    """Return the bundle id a client certificate speaks for.

    The subject UID (``userId``) wins, as in Apple's push certificates;
    otherwise the CN, without an ``"Apple ... Push Services: "`` prefix.
    """
    uid = cn = None
    for rdn in peer_cert.get("subject", ()):
        for name, value in rdn:
            if name == "userId":
                uid = value
            elif name == "commonName":
                cn = value
    if uid:
        return str(uid)
    if cn:
        return _CERT_CN_PREFIX_RE.sub("", str(cn))
    return None


class ApnsService:
    """Validates and answers APNs requests for both environments."""

    def __init__(
        self,
        keys: Iterable[ApnsKey],
        *,
        inbox: Inbox,
        faults: Faults,
        stats: Stats,
        clock: Callable[[], float],
        rng: random.Random,
        scenario: ScenarioPlayer,
        streams_before_auth: int,
        streams_after_auth: int,
    ) -> None:
        self._keys: dict[str, _LoadedKey] = {}
        self._inbox = inbox
        self._faults = faults
        self._stats = stats
        self._clock = clock
        self._rng = rng
        self._scenario = scenario
        # Requests made with each JWT; kept only while the scenario limits them.
        self._jwt_uses: dict[str, int] = {}
        self._streams_before_auth = streams_before_auth
        self._streams_after_auth = streams_after_auth
        self._verified: dict[str, tuple[_LoadedKey, int]] = {}
        self._attempted: set[str] = set()
        for key in keys:
            self.add_key(key)

    def add_key(self, key: ApnsKey) -> None:
        """Accept JWTs signed by ``key`` from now on."""
        public_key = load_pem_public_key(key.public_key_pem)
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise ValueError("APNs keys must be EC P-256")
        self._keys[key.key_id] = _LoadedKey(key, public_key)
        self._verified.clear()

    def connection_made(self, connection: ClientConnection, environment: str) -> dict[int, int]:
        """Set up per-connection state and return the initial SETTINGS."""
        state = ApnsConnectionState(environment)
        if connection.peer_cert:
            state.cert_bundle_id = bundle_id_from_cert(connection.peer_cert)
            state.authenticated = state.cert_bundle_id is not None
        connection.context = state
        streams = self._streams_after_auth if state.authenticated else self._streams_before_auth
        return {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: streams,
            # Observed on real APNs (protocols.md A.11).
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 8000,
        }

    def handle(self, request: Request) -> Response | None:
        """Answer one request to the device API, applying faults."""
        self._stats.apns_requests += 1
        plan = plan_faults(self._faults, request.connection, self._rng)
        if plan.reset:
            request.connection.abort()
            return None
        response = self._answer(request, fail=plan.fail)
        response.delay_s += plan.delay_s
        if plan.goaway:
            response.goaway_debug = GOAWAY_DEBUG
        return response

    def _answer(self, request: Request, *, fail: bool) -> Response:
        state: ApnsConnectionState = request.connection.context
        headers = dict(request.headers)
        apns_id = headers.get("apns-id")
        bad_id = apns_id is not None and _UUID_RE.fullmatch(apns_id) is None
        if apns_id is None or bad_id:
            apns_id = random_uuid(self._rng)
        play: Play | None = None
        try:
            if request.method != "POST":
                raise _Reject(405, "MethodNotAllowed")
            path = request.path
            if path in ("/3/device", _DEVICE_PATH):
                raise _Reject(400, "MissingDeviceToken")
            if not path.startswith(_DEVICE_PATH):
                raise _Reject(404, "BadPath")
            device_token = path[len(_DEVICE_PATH) :]
            if "/" in device_token or "?" in device_token:
                raise _Reject(404, "BadPath")
            if len(headers) != len(request.headers):
                raise _Reject(400, "DuplicateHeaders")
            if bad_id:
                raise _Reject(400, "BadMessageId")
            bundle_ids = self._authenticate(request.connection, state, headers.get("authorization"))
            push_type = headers.get("apns-push-type")
            topic = self._check_headers(state, headers, push_type, bundle_ids)
            if _HEX_RE.fullmatch(device_token) is None:
                raise _Reject(400, "BadDeviceToken")
            payload = self._check_payload(request.body, push_type, topic)
            if fail:
                raise _Reject(503, "ServiceUnavailable")
            token_key = device_token.lower()
            rule = self._scenario.match("apns", token_key)
            if rule is not None:
                play = self._scenario.play(rule, token_key)
                step = play.step
                if step is not None and step.status != 200:
                    retry_after = None
                    if step.retry_after_s is not None:
                        retry_after = [("retry-after", str(step.retry_after_s))]
                    entry = self._entry(request, state, device_token, payload, apns_id)
                    self._inbox.reject(entry, step.status, step.reason)
                    raise _Reject(step.status, step.reason, retry_after)
        except _Reject as reject:
            response = self._error(reject, apns_id)
            if play is not None:
                _scenario_effects(response, play.delay_s, play.goaway)
            return response
        self._inbox.add(self._entry(request, state, device_token, payload, apns_id))
        # Unique per response, so keep them out of the HPACK dynamic table:
        # indexing them would only evict useful entries and cost CPU.
        # NeverIndexedHeaderTuple is a tuple[str, str] at run time; hpack's stubs type it as bytes-or-str.
        response_headers: list[tuple[str, str]] = [NeverIndexedHeaderTuple("apns-id", apns_id)]  # type: ignore[list-item]
        if state.environment == "sandbox":
            response_headers.append(NeverIndexedHeaderTuple("apns-unique-id", random_uuid(self._rng)))  # type: ignore[arg-type]
        response = Response(200, response_headers)
        if play is not None:
            _scenario_effects(response, play.delay_s, play.goaway)
        return response

    def _entry(
        self, request: Request, state: ApnsConnectionState, device_token: str, payload: dict[str, Any], apns_id: str
    ) -> InboxEntry:
        entry_headers = {k: v for k, v in request.headers if k != "authorization"}
        entry_headers["apns-id"] = apns_id
        return InboxEntry(
            platform="apns",
            token=device_token,
            environment=state.environment,
            headers=entry_headers,
            payload=payload,
            message_id=apns_id,
            received_at=self._clock(),
        )

    def _error(self, reject: _Reject, apns_id: str) -> Response:
        body: dict[str, Any] = {"reason": reject.reason}
        if reject.status == 410:
            body["timestamp"] = int(self._clock() * 1000)
        headers = [NeverIndexedHeaderTuple("apns-id", apns_id), *(reject.headers or ())]
        return Response.json(reject.status, body, headers)

    def _authenticate(
        self, connection: ClientConnection, state: ApnsConnectionState, authorization: str | None
    ) -> tuple[str, ...]:
        """Check the provider token; return the bundle ids it may push to."""
        if state.cert_bundle_id is not None:
            return (state.cert_bundle_id,)
        if not authorization:
            raise _Reject(403, "MissingProviderToken")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer":
            raise _Reject(403, "InvalidProviderToken")
        if not token:
            raise _Reject(403, "MissingProviderToken")
        loaded, iat = self._verify_jwt(token)
        now = self._clock()
        credentials = self._scenario.credentials
        if now - iat > credentials.apns_jwt_max_age_s or iat - now > JWT_MAX_AGE_S:
            raise _Reject(403, "ExpiredProviderToken")
        if credentials.apns_jwt_max_requests:
            uses = self._jwt_uses.get(token, 0) + 1
            if len(self._jwt_uses) >= _JWT_CACHE_LIMIT and uses == 1:
                self._jwt_uses.clear()
            self._jwt_uses[token] = uses
            if uses > credentials.apns_jwt_max_requests:
                raise _Reject(403, "ExpiredProviderToken")
        key_id = loaded.key.key_id
        if state.key_id is None:
            state.key_id = key_id
        elif state.key_id != key_id:
            raise _Reject(403, "UnrelatedKeyIdInToken")
        if state.iat != iat:
            if (
                state.token_adopted_at is not None
                and now - state.token_adopted_at < JWT_MIN_UPDATE_INTERVAL_S
            ):
                raise _Reject(429, "TooManyProviderTokenUpdates")
            state.iat = iat
            state.token_adopted_at = now
        if not state.authenticated:
            state.authenticated = True
            connection.update_max_concurrent_streams(self._streams_after_auth)
        return loaded.key.bundle_ids

    def _verify_jwt(self, token: str) -> tuple[_LoadedKey, int]:
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _Reject(403, "InvalidProviderToken") from None
        loaded = self._keys.get(str(header.get("kid")))
        if loaded is None or header.get("alg") != "ES256":
            raise _Reject(403, "InvalidProviderToken")
        try:
            claims = jwt.decode(
                token,
                key=loaded.public_key,
                algorithms=["ES256"],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise _Reject(403, "InvalidProviderToken") from None
        iat = claims.get("iat")
        if claims.get("iss") != loaded.key.team_id or type(iat) is not int:
            raise _Reject(403, "InvalidProviderToken")
        if len(self._verified) >= _JWT_CACHE_LIMIT:
            self._verified.clear()
        self._verified[token] = (loaded, iat)
        return loaded, iat

    def _check_headers(
        self,
        state: ApnsConnectionState,
        headers: dict[str, str],
        push_type: str | None,
        bundle_ids: tuple[str, ...],
    ) -> str:
        """Validate the apns-* headers; return the effective topic."""
        if push_type is not None and push_type not in PUSH_TYPE_TOPIC_SUFFIX:
            raise _Reject(400, "InvalidPushType")
        topic = headers.get("apns-topic")
        if topic is None:
            if state.cert_bundle_id is None:
                raise _Reject(400, "MissingTopic")
            topic = state.cert_bundle_id
        if state.cert_bundle_id is not None:
            suffixes = _CERT_SUFFIXES
            if push_type is not None:
                if PUSH_TYPE_TOPIC_SUFFIX[push_type] not in _CERT_SUFFIXES:
                    raise _Reject(400, "TopicDisallowed")
                suffixes = frozenset({PUSH_TYPE_TOPIC_SUFFIX[push_type]})
        elif push_type is not None:
            suffixes = frozenset({PUSH_TYPE_TOPIC_SUFFIX[push_type]})
        else:
            suffixes = _ALL_SUFFIXES
        if not any(topic == bundle + suffix for bundle in bundle_ids for suffix in suffixes):
            raise _Reject(400, "BadTopic")
        priority = headers.get("apns-priority")
        if priority is not None:
            if priority not in ("10", "5", "1"):
                raise _Reject(400, "BadPriority")
            if push_type == "background" and priority == "10":
                raise _Reject(400, "BadPriority")
        expiration = headers.get("apns-expiration")
        if expiration is not None and _DIGITS_RE.fullmatch(expiration) is None:
            raise _Reject(400, "BadExpirationDate")
        collapse_id = headers.get("apns-collapse-id")
        if collapse_id is not None and len(collapse_id.encode()) > 64:
            raise _Reject(400, "BadCollapseId")
        return topic

    @staticmethod
    def _check_payload(body: bytes, push_type: str | None, topic: str) -> dict[str, Any]:
        if not body:
            raise _Reject(400, "PayloadEmpty")
        voip = push_type == "voip" or (push_type is None and topic.endswith(".voip"))
        if len(body) > (VOIP_PAYLOAD_LIMIT if voip else PAYLOAD_LIMIT):
            raise _Reject(413, "PayloadTooLarge")
        try:
            payload = json.loads(body)
        except ValueError:
            raise _Reject(400, "InvalidPayload") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            raise _Reject(400, "InvalidPayload")
        return payload

    def reset_jwt_uses(self) -> None:
        """Forget how often each JWT was used (a new scenario was loaded)."""
        self._jwt_uses.clear()


def _scenario_effects(response: Response, delay_s: float, goaway: bool) -> Response:
    """Apply a scenario rule's latency and GOAWAY to ``response``."""
    response.delay_s = delay_s
    if goaway:
        response.goaway_debug = GOAWAY_DEBUG
    return response


class ApnsSite:
    """One APNs port (production or sandbox): device API plus control endpoints."""

    def __init__(self, service: ApnsService, control: ControlApi, environment: str) -> None:
        self._service = service
        self._control = control
        self._environment = environment

    def connection_made(self, connection: ClientConnection) -> dict[int, int]:
        """See :meth:`pushsvc.emulator.site.Site.connection_made`."""
        return self._service.connection_made(connection, self._environment)

    def handle(self, request: Request) -> Response | None:
        """See :meth:`pushsvc.emulator.site.Site.handle`."""
        if request.path.startswith(ControlApi.PREFIX):
            return self._control.handle(request)
        return self._service.handle(request)
