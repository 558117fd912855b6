"""Fixtures shared by the provider tests: keys, a fake clock, messages."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import google.auth.credentials
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def p8_pem(ec_key: ec.EllipticCurvePrivateKey) -> bytes:
    return ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CountingCredentials(google.auth.credentials.Credentials):
    """Credentials whose refresh hands out tok-1, tok-2, ... and records the calling thread."""

    def __init__(self, lifetime_s: float = 3600, delay_s: float = 0.0) -> None:
        super().__init__()
        self.calls = 0
        self.threads: list[int] = []
        self._lifetime_s = lifetime_s
        self._delay_s = delay_s

    def refresh(self, request) -> None:
        self.threads.append(threading.get_ident())
        if self._delay_s:
            time.sleep(self._delay_s)
        self.calls += 1
        self.token = f"tok-{self.calls}"
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=self._lifetime_s)


@pytest.fixture(name="CountingCredentials")
def counting_credentials_class() -> type[CountingCredentials]:
    return CountingCredentials


# --- the emulator, over real TLS + HTTP/2 --------------------------------------

from collections.abc import AsyncIterator  # noqa: E402
from pathlib import Path  # noqa: E402

from pushsvc.emulator import Emulator, EmulatorConfig, make_demo_credentials  # noqa: E402

ACCESS_TOKEN_LIFETIME_S = 600
"""Short, so tests can expire access tokens on the emulator's clock while
google-auth's assertions (signed on the real clock, valid one hour) stay valid."""


@pytest.fixture
def emu_clock() -> FakeClock:
    """The emulator's clock; starts at real time so google-auth's assertions verify."""
    return FakeClock(now=time.time())


@pytest.fixture
async def emulator(emu_clock: FakeClock) -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(access_token_lifetime_s=ACCESS_TOKEN_LIFETIME_S), clock=emu_clock)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
def demo(emulator: Emulator, tmp_path: Path):
    credentials, apns_key, fcm_account = make_demo_credentials(
        tmp_path, token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
    )
    emulator.add_apns_key(apns_key)
    emulator.add_fcm_account(fcm_account)
    return credentials


@pytest.fixture
def access_token_lifetime_s() -> int:
    return ACCESS_TOKEN_LIFETIME_S


@pytest.fixture(name="FakeClock")
def fake_clock_class() -> type[FakeClock]:
    return FakeClock
