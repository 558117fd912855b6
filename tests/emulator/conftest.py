"""Fixtures for the emulator conformance tests: keys, a fake clock, clients."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator, Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushsvc.emulator import ApnsKey, Emulator, EmulatorConfig, FcmAccount

BUNDLE = "com.example.demo"
KEY_ID = "KEYID00001"
OTHER_KEY_ID = "KEYID00002"
TEAM_ID = "TEAM000001"
PROJECT = "demo-project"
CLIENT_EMAIL = f"sender@{PROJECT}.iam.gserviceaccount.com"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
START = 1_700_000_000.0


@dataclasses.dataclass
class FakeClock:
    """A settable epoch clock."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def public_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def other_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def emu_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(ec_key, other_ec_key, rsa_key) -> EmulatorConfig:
    return EmulatorConfig(
        apns_keys=[
            ApnsKey(KEY_ID, TEAM_ID, public_pem(ec_key), (BUNDLE,)),
            ApnsKey(OTHER_KEY_ID, TEAM_ID, public_pem(other_ec_key), (BUNDLE,)),
        ],
        fcm_accounts=[FcmAccount(CLIENT_EMAIL, public_pem(rsa_key), PROJECT)],
        access_token_lifetime_s=600,
    )


@pytest.fixture
async def emulator(config: EmulatorConfig, emu_clock: FakeClock) -> AsyncIterator[Emulator]:
    async with Emulator(config, clock=emu_clock) as emu:
        yield emu


def ssl_ctx_from(ca_pem: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem.decode())


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(http2=True, verify=ssl_ctx_from(emulator.ca_pem), timeout=10) as c:
        yield c


@pytest.fixture
def make_jwt(ec_key, emu_clock) -> Callable[..., str]:
    """Sign an APNs provider token; defaults: the main key, iat = the clock."""

    def make(
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        kid: str = KEY_ID,
        iss: str = TEAM_ID,
        iat: int | None = None,
    ) -> str:
        return jwt.encode(
            {"iss": iss, "iat": int(emu_clock.now) if iat is None else iat},
            key or ec_key,
            algorithm="ES256",
            headers={"kid": kid},
        )

    return make


@pytest.fixture
def make_assertion(rsa_key) -> Callable[..., str]:
    """Sign a google-auth style OAuth assertion (real time, like google-auth)."""

    def make(*, key: rsa.RSAPrivateKey | None = None, **overrides: object) -> str:
        now = int(START)
        claims: dict[str, object] = {
            "iss": CLIENT_EMAIL,
            "aud": GOOGLE_TOKEN_URL,
            "iat": now,
            "exp": now + 3600,
            "scope": FCM_SCOPE,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key or rsa_key, algorithm="RS256", headers={"kid": "abc"})

    return make


@pytest.fixture
async def access_token(emulator: Emulator, client: httpx.AsyncClient, make_assertion) -> str:
    response = await client.post(
        emulator.token_uri, data={"grant_type": JWT_GRANT, "assertion": make_assertion()}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def hex_token(prefix: str = "") -> str:
    """A 64-hex-digit device token starting with ``prefix``."""
    return (prefix + "ab" * 32)[:64]
