"""Scenario files: per-token behaviour of the fake providers, in TOML.

A scenario says how the emulator answers device tokens that match a rule, in
place of the 200 it would otherwise give once a request passed every check
(authentication, headers, payload; see :mod:`.apns` and :mod:`.fcm`). The
built-in test tokens are the default scenario, ``default_scenario.toml`` in
this package; a team's own file is loaded on top of it (``pushsvc emulator
--scenario FILE`` or ``POST /_emulator/scenario``).

Example::

    # Every token starting "flaky-" gets 429 twice (Retry-After: 2), then 200.
    [[fcm]]
    prefix = "flaky-"
    description = "429 twice, then delivered"
    answers = [{ status = 429, message = "Sending limit exceeded for the message target.",
                 error_code = "QUOTA_EXCEEDED", retry_after_s = 2, times = 2 }]

    # One exact APNs token: slow, and every 10th request ends its connection.
    [[apns]]
    token = "abababababababababababababababababababababababababababababababab"
    latency_s = 0.25
    goaway_after = 10

    [credentials]
    apns_jwt_max_age_s = 60        # JWTs expire after a minute (Apple: 3600)
    oauth_token_max_requests = 100 # an access token stops working after 100 sends

Matching (``[[apns]]`` and ``[[fcm]]`` tables, each a rule):

- ``token`` matches one token exactly; ``prefix`` matches every token that
  starts with it. Give exactly one. APNs tokens are matched lower-cased (hex is
  case-insensitive), FCM tokens as they are.
- An exact token wins over prefixes, and the longest matching prefix wins.
  A loaded file's rule replaces the default rule with the same ``token`` or
  ``prefix``; ``defaults = false`` at the top level drops the built-in rules.
- A token that matches no rule costs two dict lookups, plus a ``startswith``
  per prefix sharing its first character.

A rule's keys:

- ``answers``: a list of steps, played in order **per token** (every token that
  matches a prefix rule has its own position); each step is answered
  ``times`` times (default 1). After the last step the token is accepted
  (200) for good, unless the last step has ``forever = true``. Positions are
  remembered for the emulator's lifetime, across connections and (APNs)
  environments, and reset when a scenario is loaded.
- ``latency_s``: delay added to every answer of the rule's requests (on top
  of ``Faults.latency_s``); a step's own ``latency_s`` adds to it.
- ``goaway_after``: every N-th request of the rule (counted over all tokens and
  connections) winds its connection down after its answer, as
  ``Faults.goaway_after`` does (GOAWAY over HTTP/2, ``connection: close``
  over HTTP/1.1).
- ``description``: free text, shown in the web inbox's token table.

A step's keys: ``status`` (100-599; 200 accepts), ``times``, ``forever``,
``latency_s``, ``retry_after_s`` (a ``retry-after`` header, whole seconds);
for APNs ``reason`` (the ``{"reason"}`` of the error; a 410 also gets a
``timestamp`` of now); for FCM ``message``, ``error_code`` (an ``FcmError``
detail), ``apns_status`` and ``apns_reason`` (an ``ApnsError`` detail) and
``details`` (further ``google.rpc`` detail objects, verbatim). ``{project_id}``
in an FCM ``message`` or in a string inside ``details`` is replaced by the
request's project.

FCM ``validate_only`` requests are answered by a token's current step only if
it is a ``forever`` step (the permanent test tokens), and never advance it.

``[credentials]`` (all optional):

- ``apns_jwt_max_age_s``: a provider token older than this is
  ``403 ExpiredProviderToken`` (default 3600, as Apple);
- ``apns_jwt_max_requests``: a provider token is ``403 ExpiredProviderToken``
  once it was used for this many requests (0: no limit);
- ``oauth_token_lifetime_s``: lifetime of access tokens issued from now on
  (default: ``EmulatorConfig.access_token_lifetime_s``);
- ``oauth_token_max_requests``: an access token is rejected with
  ``401 UNAUTHENTICATED`` after this many FCM sends (0: no limit).

Errors name the bad key, e.g. ``fcm[0].answers[1].status: must be an integer
between 100 and 599``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import tomllib
from collections.abc import Mapping
from typing import Any

PLATFORMS = ("apns", "fcm")
DEFAULT_JWT_MAX_AGE_S = 3600
_TOP_KEYS = frozenset({"apns", "fcm", "credentials", "defaults", "description"})
_RULE_KEYS = frozenset({"token", "prefix", "answers", "latency_s", "goaway_after", "description"})
_COMMON_STEP_KEYS = frozenset({"status", "times", "forever", "latency_s", "retry_after_s"})
_STEP_KEYS = {
    "apns": _COMMON_STEP_KEYS | {"reason"},
    "fcm": _COMMON_STEP_KEYS | {"message", "error_code", "apns_status", "apns_reason", "details"},
}
_CREDENTIAL_KEYS = frozenset(
    {"apns_jwt_max_age_s", "apns_jwt_max_requests", "oauth_token_lifetime_s", "oauth_token_max_requests"}
)


class ScenarioError(ValueError):
    """A scenario that cannot be loaded.

    Attributes:
        key: The offending key's path (``fcm[0].answers[1].status``), or "" for
            the document itself.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One answer of a rule's sequence (see the module docstring for each key)."""

    status: int
    times: int = 1
    forever: bool = False
    latency_s: float = 0.0
    retry_after_s: int | None = None
    reason: str = ""
    message: str = ""
    error_code: str = ""
    apns_status: int | None = None
    apns_reason: str = ""
    details: tuple[Any, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The step as scenario keys, defaults left out."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value != field.default or field.name == "status":
                out[field.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """Behaviour of the tokens matching ``token`` exactly or starting with ``prefix``."""

    platform: str
    token: str | None = None
    prefix: str | None = None
    answers: tuple[Step, ...] = ()
    latency_s: float = 0.0
    goaway_after: int = 0
    description: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What makes two rules the same rule: exact token or prefix."""
        return ("token", self.token) if self.token is not None else ("prefix", self.prefix or "")

    def to_json(self) -> dict[str, Any]:
        """The rule as scenario keys."""
        out: dict[str, Any] = {}
        if self.token is not None:
            out["token"] = self.token
        else:
            out["prefix"] = self.prefix
        out["answers"] = [step.to_json() for step in self.answers]
        if self.latency_s:
            out["latency_s"] = self.latency_s
        if self.goaway_after:
            out["goaway_after"] = self.goaway_after
        if self.description:
            out["description"] = self.description
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """Credential expiry of a scenario (module docstring, ``[credentials]``)."""

    apns_jwt_max_age_s: int = DEFAULT_JWT_MAX_AGE_S
    apns_jwt_max_requests: int = 0
    oauth_token_lifetime_s: int | None = None
    oauth_token_max_requests: int = 0

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario: rules per platform, in file order, and credential expiry."""

    rules: tuple[Rule, ...] = ()
    credentials: Credentials = Credentials()
    defaults: bool = True
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """The scenario in its file's shape, as JSON."""
        out: dict[str, Any] = {"defaults": self.defaults}
        if self.description:
            out["description"] = self.description
        for platform in PLATFORMS:
            out[platform] = [r.to_json() for r in self.rules if r.platform == platform]
        out["credentials"] = self.credentials.to_json()
        return out


def parse_scenario(text: str) -> Scenario:
    """Parse a scenario from TOML text.

    Raises:
        ScenarioError: Not TOML, or a key that is unknown or has a bad value.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("", f"not valid TOML: {exc}") from None
    return scenario_from_dict(document)


def parse_scenario_json(text: str | bytes) -> Scenario:
    """Parse a scenario from JSON of the same shape as the TOML file.

    Raises:
        ScenarioError: Not a JSON object, or a bad key.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ScenarioError("", f"not valid JSON: {exc}") from None
    return scenario_from_dict(document)


def default_scenario() -> Scenario:
    """The built-in test tokens, read from the packaged ``default_scenario.toml``."""
    text = importlib.resources.files(__package__).joinpath("default_scenario.toml").read_text("utf-8")
    return parse_scenario(text)


def scenario_from_dict(document: Any) -> Scenario:
    """Validate a decoded scenario document (TOML or JSON).

    Raises:
        ScenarioError: Naming the first bad key.
    """
    if not isinstance(document, Mapping):
        raise ScenarioError("", "a scenario must be a table (a JSON object)")
    _unknown(document, _TOP_KEYS, "")
    defaults = document.get("defaults", True)
    if not isinstance(defaults, bool):
        raise ScenarioError("defaults", "must be true or false")
    rules: list[Rule] = []
    for platform in PLATFORMS:
        tables = document.get(platform, [])
        if not isinstance(tables, list):
            raise ScenarioError(platform, "must be an array of tables ([[" + platform + "]])")
        seen: set[tuple[str, str]] = set()
        for index, table in enumerate(tables):
            rule = _rule(platform, table, f"{platform}[{index}]")
            if rule.key in seen:
                raise ScenarioError(f"{platform}[{index}]", f"a second rule for {rule.key[0]} {rule.key[1]!r}")
            seen.add(rule.key)
            rules.append(rule)
    return Scenario(
        rules=tuple(rules),
        credentials=_credentials(document.get("credentials", {})),
        defaults=defaults,
        description=_string(document, "description", ""),
    )


def _unknown(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise ScenarioError(path, f"unknown key (expected one of {', '.join(sorted(allowed))})")


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ScenarioError(f"{where}.{key}" if where else key, "must be a string")
    return value


def _integer(
    table: Mapping[str, Any], key: str, where: str, default: int | None, low: int, high: int | None = None
) -> int | None:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ScenarioError(f"{where}.{key}", f"must be an integer {bound}")
    return value


def _seconds(table: Mapping[str, Any], key: str, where: str) -> float:
    value = table.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise ScenarioError(f"{where}.{key}", "must be a number of seconds between 0 and 3600")
    return float(value)


def _rule(platform: str, table: Any, where: str) -> Rule:
    if not isinstance(table, Mapping):
        raise ScenarioError(where, "must be a table")
    _unknown(table, _RULE_KEYS, where)
    if ("token" in table) == ("prefix" in table):
        raise ScenarioError(where, "needs exactly one of token or prefix")
    match_key = "token" if "token" in table else "prefix"
    value = table[match_key]
    if not isinstance(value, str) or not value:
        raise ScenarioError(f"{where}.{match_key}", "must be a non-empty string")
    if platform == "apns":
        value = value.lower()
    answers = table.get("answers", [])
    if not isinstance(answers, list):
        raise ScenarioError(f"{where}.answers", "must be an array of tables")
    steps = tuple(_step(platform, step, f"{where}.answers[{i}]") for i, step in enumerate(answers))
    for i, step in enumerate(steps[:-1]):
        if step.forever:
            raise ScenarioError(f"{where}.answers[{i}].forever", "only the last answer can be forever")
    return Rule(
        platform=platform,
        token=value if match_key == "token" else None,
        prefix=value if match_key == "prefix" else None,
        answers=steps,
        latency_s=_seconds(table, "latency_s", where),
        goaway_after=_integer(table, "goaway_after", where, 0, 0) or 0,
        description=_string(table, "description", where),
    )


def _step(platform: str, table: Any, where: str) -> Step:
    if not isinstance(table, Mapping):
        raise ScenarioError(where, "must be a table")
    _unknown(table, _STEP_KEYS[platform], where)
    if "status" not in table:
        raise ScenarioError(f"{where}.status", "is required")
    status = _integer(table, "status", where, None, 100, 599)
    assert status is not None
    forever = table.get("forever", False)
    if not isinstance(forever, bool):
        raise ScenarioError(f"{where}.forever", "must be true or false")
    details = table.get("details", [])
    if not isinstance(details, list) or not all(isinstance(d, Mapping) for d in details):
        raise ScenarioError(f"{where}.details", "must be an array of tables")
    return Step(
        status=status,
        times=_integer(table, "times", where, 1, 1) or 1,
        forever=forever,
        latency_s=_seconds(table, "latency_s", where),
        retry_after_s=_integer(table, "retry_after_s", where, None, 0),
        reason=_string(table, "reason", where),
        message=_string(table, "message", where),
        error_code=_string(table, "error_code", where),
        apns_status=_integer(table, "apns_status", where, None, 100, 599),
        apns_reason=_string(table, "apns_reason", where),
        details=tuple(details),
    )


def _credentials(table: Any) -> Credentials:
    if not isinstance(table, Mapping):
        raise ScenarioError("credentials", "must be a table")
    _unknown(table, _CREDENTIAL_KEYS, "credentials")
    return Credentials(
        apns_jwt_max_age_s=_integer(table, "apns_jwt_max_age_s", "credentials", DEFAULT_JWT_MAX_AGE_S, 1)
        or DEFAULT_JWT_MAX_AGE_S,
        apns_jwt_max_requests=_integer(table, "apns_jwt_max_requests", "credentials", 0, 0) or 0,
        oauth_token_lifetime_s=_integer(table, "oauth_token_lifetime_s", "credentials", None, 2),
        oauth_token_max_requests=_integer(table, "oauth_token_max_requests", "credentials", 0, 0) or 0,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Play:
    """What the scenario does to one request: an answer (or None: accept), delay, GOAWAY."""

    step: Step | None
    delay_s: float
    goaway: bool


class ScenarioPlayer:
    """The scenario in force, and each matched token's position in its answers.

    Args:
        scenario: Loaded on top of the defaults (unless it says
            ``defaults = false``); None plays the defaults alone.
    """

    def __init__(self, scenario: Scenario | None = None) -> None:
        self._defaults = default_scenario()
        self.load(scenario)

    @property
    def scenario(self) -> Scenario:
        """The effective scenario (defaults merged in), as last loaded."""
        return self._effective

    @property
    def credentials(self) -> Credentials:
        """Credential expiry in force."""
        return self._effective.credentials

    def load(self, scenario: Scenario | None) -> None:
        """Replace the scenario; every token's position and rule count restarts."""
        if scenario is None:
            scenario = Scenario()
        merged: dict[tuple[str, tuple[str, str]], Rule] = {}
        if scenario.defaults:
            for rule in self._defaults.rules:
                merged[(rule.platform, rule.key)] = rule
        for rule in scenario.rules:
            merged[(rule.platform, rule.key)] = rule
        self._effective = dataclasses.replace(scenario, rules=tuple(merged.values()))
        self._exact: dict[str, dict[str, Rule]] = {p: {} for p in PLATFORMS}
        # Prefix rules bucketed by their first character, longest prefix first
        # in each bucket: a token whose first character starts no prefix costs
        # one dict lookup.
        self._prefixes: dict[str, dict[str, list[tuple[str, Rule]]]] = {p: {} for p in PLATFORMS}
        for rule in self._effective.rules:
            if rule.token is not None:
                self._exact[rule.platform][rule.token] = rule
            else:
                prefix = rule.prefix or ""
                self._prefixes[rule.platform].setdefault(prefix[0], []).append((prefix, rule))
        for buckets in self._prefixes.values():
            for bucket in buckets.values():
                bucket.sort(key=lambda item: len(item[0]), reverse=True)
        self._positions: dict[tuple[str, str], int] = {}
        self._rule_counts: dict[int, int] = {}

    def match(self, platform: str, token: str) -> Rule | None:
        """The rule for ``token`` (APNs tokens lower-cased by the caller), or None."""
        rule = self._exact[platform].get(token)
        if rule is not None:
            return rule
        bucket = self._prefixes[platform].get(token[:1])
        if bucket is not None:
            for prefix, candidate in bucket:
                if token.startswith(prefix):
                    return candidate
        return None

    def play(self, rule: Rule, token: str, *, advance: bool = True) -> Play:
        """Decide the answer to one request for ``token`` under ``rule``.

        Args:
            advance: False for requests that only peek (FCM ``validate_only``):
                only a ``forever`` step answers them, and nothing is counted.
        """
        key = (rule.platform, token)
        position = self._positions.get(key, 0)
        step = _step_at(rule.answers, position)
        if not advance:
            if step is None or not step.forever:
                return Play(None, 0.0, False)
            return Play(step, rule.latency_s + step.latency_s, False)
        if step is not None and not step.forever:
            self._positions[key] = position + 1
        goaway = False
        if rule.goaway_after:
            count = self._rule_counts.get(id(rule), 0) + 1
            self._rule_counts[id(rule)] = count
            goaway = count % rule.goaway_after == 0
        delay_s = rule.latency_s + (step.latency_s if step is not None else 0.0)
        return Play(step, delay_s, goaway)


def _step_at(steps: tuple[Step, ...], position: int) -> Step | None:
    """The step answering a token's ``position``-th request (0-based), None past the end."""
    for step in steps:
        if step.forever or position < step.times:
            return step
        position -= step.times
    return None
