"""The fake Google OAuth2 token endpoint (protocols.md C).

``POST /token`` with a form body ``grant_type=urn:ietf:params:oauth:grant-type:
jwt-bearer&assertion=<RS256 JWT>``, as google-auth sends it. The assertion must
be signed by a registered :class:`~pushsvc.emulator.config.FcmAccount` (found by
``iss == client_email``), have ``aud`` equal to Google's token URL (which
google-auth hard-codes), the older ``/oauth2/v4/token`` URL or the emulator's
own ``token_uri``, an ``exp`` not passed, an ``iat`` at most 60 minutes before
``exp`` and not in the future, and a non-empty ``scope``.

Answers: ``200 {"access_token","expires_in","token_type":"Bearer"}``; errors
are ``400 {"error","error_description"}`` with Google's texts:
``unsupported_grant_type``, ``invalid_request`` (no assertion), ``invalid_grant``
(unknown account, bad signature, bad times or audience) and ``invalid_scope``.

The scenario's ``[credentials]`` can change the lifetime of tokens issued
from then on and limit the sends one access token may make.
"""

from __future__ import annotations

import dataclasses
import secrets
import urllib.parse
from collections.abc import Callable, Iterable

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .config import FcmAccount
from .scenario import ScenarioPlayer
from .site import Request, Response
from .stats import Stats

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_ACCEPTED_AUDIENCES = frozenset({GOOGLE_TOKEN_URI, "https://www.googleapis.com/oauth2/v4/token"})
_MAX_ASSERTION_LIFETIME_S = 3600
_CLOCK_SKEW_S = 300
_CONTENT_TYPE = "application/json; charset=utf-8"
# Expired grants are swept when the table grows past this size.
_SWEEP_AT = 10_000
_BAD_TIMES = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)


@dataclasses.dataclass(frozen=True, slots=True)
class AccessGrant:
    """What an issued access token stands for."""

    account: FcmAccount
    expires_at: float
    scopes: frozenset[str]


@dataclasses.dataclass(slots=True)
class _LoadedAccount:
    account: FcmAccount
    public_key: rsa.RSAPublicKey


class OAuthService:
    """Issues access tokens for registered service accounts and checks them."""

    def __init__(
        self,
        accounts: Iterable[FcmAccount],
        *,
        stats: Stats,
        clock: Callable[[], float],
        lifetime_s: int,
        scenario: ScenarioPlayer,
    ) -> None:
        self._accounts: dict[str, _LoadedAccount] = {}
        self._grants: dict[str, AccessGrant] = {}
        self._scenario = scenario
        # Sends made with each access token; kept only while the scenario limits them.
        self._uses: dict[str, int] = {}
        self._stats = stats
        self._clock = clock
        self._lifetime_s = lifetime_s
        self.token_uri = ""
        for account in accounts:
            self.add_account(account)

    def add_account(self, account: FcmAccount) -> None:
        """Accept assertions signed by ``account`` from now on."""
        public_key = load_pem_public_key(account.public_key_pem)
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("service-account keys must be RSA")
        self._accounts[account.client_email] = _LoadedAccount(account, public_key)

    def lookup(self, access_token: str) -> AccessGrant | None:
        """Return the grant behind an unexpired access token, else None.

        Each call counts as one use of the token: past the scenario's
        ``oauth_token_max_requests`` the token is treated as expired.
        """
        grant = self._grants.get(access_token)
        if grant is None or grant.expires_at <= self._clock():
            return None
        max_requests = self._scenario.credentials.oauth_token_max_requests
        if max_requests:
            uses = self._uses.get(access_token, 0) + 1
            self._uses[access_token] = uses
            if uses > max_requests:
                return None
        return grant

    def reset_uses(self) -> None:
        """Forget how often each access token was used (a new scenario was loaded)."""
        self._uses.clear()

    def handle(self, request: Request) -> Response:
        """Answer ``POST /token``."""
        self._stats.oauth_requests += 1
        if request.method != "POST":
            return _error(405, "invalid_request", "Only POST is supported.")
        form = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != JWT_BEARER_GRANT:
            return _error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion", [""])[0]
        if not assertion:
            return _error(400, "invalid_request", "Missing required parameter: assertion")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _error(400, "invalid_grant", "Invalid JWT Signature.")
        loaded = self._accounts.get(str(unverified.get("iss")))
        if loaded is None:
            return _error(400, "invalid_grant", "Invalid grant: account not found")
        try:
            claims = jwt.decode(
                assertion,
                key=loaded.public_key,
                algorithms=["RS256"],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            return _error(400, "invalid_grant", "Invalid JWT Signature.")
        aud = claims.get("aud")
        if aud not in _ACCEPTED_AUDIENCES and aud != self.token_uri:
            return _error(
                400,
                "invalid_grant",
                f"Invalid JWT: Failed audience check. The right audience is {GOOGLE_TOKEN_URI}",
            )
        now = self._clock()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (
            type(iat) is not int
            or type(exp) is not int
            or exp <= now
            or iat > now + _CLOCK_SKEW_S
            or exp - iat > _MAX_ASSERTION_LIFETIME_S
        ):
            return _error(400, "invalid_grant", _BAD_TIMES)
        scope = claims.get("scope")
        if not isinstance(scope, str) or not scope.split():
            return _error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return self._issue(loaded.account, frozenset(scope.split()), now)

    def _issue(self, account: FcmAccount, scopes: frozenset[str], now: float) -> Response:
        if len(self._grants) >= _SWEEP_AT:
            self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
            self._uses = {t: n for t, n in self._uses.items() if t in self._grants}
        lifetime_s = self._scenario.credentials.oauth_token_lifetime_s or self._lifetime_s
        expires_in = max(lifetime_s - 1, 1)
        token = "ya29.emulator-" + secrets.token_urlsafe(32)
        self._grants[token] = AccessGrant(account, now + expires_in, scopes)
        self._stats.oauth_tokens_issued += 1
        return Response.json(
            200,
            {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"},
            [("cache-control", "no-store")],
            content_type=_CONTENT_TYPE,
        )


def _error(status: int, error: str, description: str) -> Response:
    return Response.json(
        status, {"error": error, "error_description": description}, content_type=_CONTENT_TYPE
    )
