"""Per-channel emulator handlers: a push service the emulator serves on its shared HTTPS port.

A channel that the emulator speaks beyond its built-in APNs and FCM servers
names its handler module in its registry entry (`Channel.emulator_handler`,
a module path such as ``pushsvc.emulator.<channel>``), so `serve` never imports
it and the emulator's servers, control endpoints, demo credentials and
manifest loop over the handlers instead of naming the channels. A handler
module holds one :class:`HandlerSpec` named ``HANDLER``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from pushsvc.channels import registry

from .display import Display
from .inbox import Inbox
from .site import Request, Response
from .stats import Stats


@dataclasses.dataclass(frozen=True)
class HandlerContext:
    """What a handler may use: the emulator's inbox, counters and clock, and its shared port's origin."""

    inbox: Inbox
    stats: Stats
    clock: Callable[[], float]
    origin: Callable[[], str]
    """The shared port's base URL (``https://127.0.0.1:<port>``); known once the emulator started."""


class ChannelHandler(Protocol):
    """One emulated push service, served on the shared port beside FCM and OAuth."""

    def owns(self, path: str) -> bool:
        """Whether a request to this path (query included) on the shared port is this service's."""
        ...

    def handle(self, request: Request) -> Response:
        """Answer one request it owns."""
        ...

    def control(self, action: str) -> Callable[[dict[str, Any]], tuple[int, Any]] | None:
        """The endpoint ``POST /_emulator/<channel>/<action>``, or None when there is none.

        It takes the request's JSON object and gives (status, JSON body); it
        raises ValueError for bad options (answered 400).
        """
        ...

    def accept(self, entries: Mapping[str, str]) -> None:
        """Accept the demo credentials ``HandlerSpec.demo_credentials`` wrote (their manifest entries) from now on."""
        ...

    def urls(self) -> dict[str, str]:
        """The manifest's URLs of this service (``{"<channel>_url": ...}``); the emulator must be started."""
        ...

    def attributes(self) -> Mapping[str, Callable[[], Any]]:
        """What `Emulator` offers for this channel by name (``<channel>_url``, test helpers): name -> getter."""
        ...


@dataclasses.dataclass(frozen=True)
class HandlerSpec:
    """A handler module's declaration."""

    channel: str
    """The channel's settings_key; its counter is ``<channel>_requests`` and its control endpoints ``/_emulator/<channel>/``."""
    build: Callable[[HandlerContext], ChannelHandler]
    """A handler for one emulator."""
    demo_credentials: Callable[[Path], dict[str, str]]
    """Writes the channel's demo secrets into a directory (mode 0600) and returns their manifest entries."""
    display: Callable[[Mapping[str, Any]], Display] | None = None
    """What a phone or browser would show for one recorded payload (:mod:`.display`); None: the raw payload only."""
    label: str = ""
    """The channel's name in the web inbox ("" shows the channel key)."""
    icon: str = "?"
    """The one-letter mark of its deliveries in the web inbox."""
    color: str = "#777777"
    """Its mark's CSS colour in the web inbox."""

    def presentation(self) -> dict[str, str]:
        """How the web inbox names and marks this channel's deliveries (``GET /_emulator/channels``)."""
        return {"platform": self.channel, "label": self.label or self.channel, "icon": self.icon, "color": self.color}


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    # An existing file keeps its old mode through O_CREAT; force it.
    os.chmod(path, 0o600)


def load(module_paths: tuple[str, ...]) -> tuple[HandlerSpec, ...]:
    """The specs of these handler modules, in order."""
    specs = []
    for path in module_paths:
        spec = importlib.import_module(path).HANDLER
        if not isinstance(spec, HandlerSpec):
            raise TypeError(f"{path}.HANDLER is not a HandlerSpec")
        specs.append(spec)
    return tuple(specs)


def registered() -> tuple[HandlerSpec, ...]:
    """The handler of every registered channel that names one, in the registry's order."""
    return load(tuple(c.emulator_handler for c in registry.CHANNELS if c.emulator_handler))
