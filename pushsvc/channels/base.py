"""The channel port: what the registry knows of one push service.

Bootstrap, validation, conversion, the reason vocabulary, the dev stack and
the CLI loop over `registry.CHANNELS` and call these hooks; none of them
names a platform.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pushsvc import models
from pushsvc.apps import Renderer
from pushsvc.clock import Clock
from pushsvc.limits import Limits
from pushsvc.metrics import Metrics
from pushsvc.providers.base import Provider, RenderedMessage
from pushsvc.providers.transport import Http2Transport, TlsConfig
from pushsvc.sections import Section


def check_opaque_token(token: str, limits: Limits) -> str:
    """An opaque token (FCM's, or one whose platform is unknown): bounded, printable, no whitespace."""
    if len(token) > limits.max_token_chars:
        return f"must be at most {limits.max_token_chars} characters (got {len(token)})"
    if not token.isprintable() or " " in token:
        # isprintable() is False for every other whitespace character (categories Cc and Z*).
        return "must be printable and contain no whitespace"
    return ""


class TransportSizing(Protocol):
    """How big and patient a provider's transport is (the `[dispatch]` settings give it)."""

    @property
    def connections_per_provider(self) -> int:
        """HTTP/2 connections per origin."""
        ...

    @property
    def request_timeout_s(self) -> float:
        """Deadline of one request."""
        ...

    @property
    def connect_timeout_s(self) -> float:
        """Deadline of one connection set-up."""
        ...


@dataclasses.dataclass
class BuildContext:
    """What building a provider may use, and where it leaves what providers share."""

    dispatch: TransportSizing
    clock: Clock
    metrics: Metrics
    closers: list[Callable[[], None]]
    """Closers of what several providers share (OAuth token sources), run after the providers close."""
    shared: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Per-channel caches across the apps of one build (one JWT signer per APNs key), keyed by channel."""

    def transport(self, tls: TlsConfig) -> Http2Transport:
        """A provider's own HTTP/2 transport (HTTP/1.1 where the origin offers no h2), sized by the dispatch settings."""
        return Http2Transport(
            tls=tls,
            clock=self.clock,
            connections_per_origin=self.dispatch.connections_per_provider,
            request_timeout_s=self.dispatch.request_timeout_s,
            connect_timeout_s=self.dispatch.connect_timeout_s,
        )


@dataclasses.dataclass(frozen=True)
class Channel:
    """One push service: everything the rest of pushsvc needs from it, by hook."""

    platform: models.Platform
    display_name: str
    """How messages name it ("APNs", "FCM")."""
    settings_key: str
    """The app's config table, `[apps.<app_id>.<settings_key>]`, and the AppSettings attribute."""
    settings: type[Section]
    """The model of that table: the config composes AppSettings from every channel's."""
    settings_help: str
    """The table's description in the config reference (docs/config.md)."""
    reasons: frozenset[str]
    """Every reason the adapter can give, counted under its own name in metrics."""
    check_token: Callable[[str, Limits], str]
    """Why a non-empty token cannot belong to this channel, or "" when it can."""
    renderer: Callable[[Any], Renderer]
    """The renderer of an app, from its settings section."""
    build_provider: Callable[[Any, str, BuildContext], Provider]
    """A provider from the app's settings section and its key path (`apps.shop.fcm`); raises ConfigError."""
    restore_rendering: Callable[[Mapping[str, Any]], RenderedMessage]
    """The rendered message of a body Send stored with a notification, its size and limit measured again."""
    deliver_help: str
    """The help of `pushsvc deliver --<settings_key>-token`."""
    emulator_handler: str = ""
    """The module of the channel's emulator handler (`pushsvc.emulator.handlers.HandlerSpec` named HANDLER),
    served on the emulator's shared port; named, not imported, so serve never loads the emulator. "": the
    emulator's built-in servers speak the channel (APNs, FCM)."""
    demo_settings: Callable[[Mapping[str, str], Any], Any] | None = None
    """The dev stack's settings section from the emulator's URLs and its DemoCredentials; None: not in the dev stack."""
    dev_hint: str = ""
    """A line of `pushsvc dev`'s banner, how to get a test token from the emulator; `{inbox}` is its control URL."""
    commands: Mapping[str, tuple[str, Callable[[], int]]] = dataclasses.field(default_factory=dict)
    """`pushsvc <settings_key> <name>` commands: name -> (help, run returning the exit status)."""
    canonical_token: Callable[[str], str] = str
    """The form a valid token is stored and matched in (the identity for opaque tokens)."""
    app_token_check: Callable[[Any | None], Callable[[str], str]] | None = None
    """An app's own check of a token, from its settings section (None when the app has none):
    why the token cannot be used by that app, or "". None: the shape check is all."""
