"""Local APNs, FCM and Google OAuth emulator over TLS (HTTP/2; HTTP/1.1 too for FCM and OAuth).

Faithful to ``reference/protocols.md``: real status codes, reason strings,
headers and bodies. See the module docstrings of :mod:`.apns`, :mod:`.fcm`,
:mod:`.oauth` and :mod:`.control` for exactly what is checked, the test tokens
and the emulator-specific choices; :mod:`.scenario` for scenario files,
:mod:`.proxy` for proxy mode, :mod:`.webui` for the web inbox and
:mod:`.recording` for recorded runs.
"""

from __future__ import annotations

from .cli import main
from .config import ApnsKey, EmulatorConfig, FcmAccount
from .credentials import DemoCredentials, make_demo_credentials
from .emulator import Emulator
from .faults import Faults
from .inbox import Inbox, InboxEntry, Rejection
from .scenario import Scenario, ScenarioError, default_scenario, parse_scenario
from .stats import Stats

__all__ = [
    "ApnsKey",
    "DemoCredentials",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "FcmAccount",
    "Inbox",
    "InboxEntry",
    "Rejection",
    "Scenario",
    "ScenarioError",
    "Stats",
    "default_scenario",
    "main",
    "make_demo_credentials",
    "parse_scenario",
]
