"""A secured pushsvc: apps alpha and beta on the emulator, mTLS on the gRPC port, principals of every kind."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import trustme

from pushsvc.access import hash_key, new_key
from pushsvc.bootstrap import Application, build_application
from pushsvc.config import (
    ApiKeySettings,
    AuthSettings,
    IdentitySettings,
    JwtIssuerSettings,
    Settings,
    TlsSettings,
)
from pushsvc.devstack import demo_app_settings
from pushsvc.emulator import Emulator, EmulatorConfig, make_demo_credentials
from tests.auth.pki import AUDIENCE, ISSUER, ClientCert, JwtSigner, client_cert, write_server_cert
from tests.conftest import FAST_DISPATCH

ACTIONS = ("register", "send", "read", "prune")
"""One alpha-only principal per action and credential kind."""
TRUST_DOMAIN = "spiffe://mesh.pushsvc.test"


def spiffe_id(app: str, action: str) -> str:
    """The mesh identity of the alpha principal allowed `action`."""
    return f"{TRUST_DOMAIN}/ns/{app}/sa/{action}"


@dataclasses.dataclass
class Secured:
    """A running secured pushsvc and the credentials of every principal."""

    app: Application
    emulator: Emulator
    ca: trustme.CA
    keys: dict[str, str]
    """action -> API key of the alpha principal allowed only that action."""
    admin_key: str
    """An API key with `admin` on alpha and beta, for set-up and checks."""
    jwts: dict[str, str]
    """action -> JWT of the alpha principal allowed only that action."""
    signer: JwtSigner
    certs: dict[str, ClientCert]
    """action -> client certificate whose SPIFFE ID is the alpha principal allowed that action."""
    plain_cert: ClientCert
    """A client certificate that maps to no principal (callers with a bearer use it)."""
    stranger_cert: ClientCert
    """A client certificate with an unmapped SPIFFE ID."""
    channels: list[grpc.aio.Channel] = dataclasses.field(default_factory=list)

    def channel(self, cert: ClientCert | None = None) -> grpc.aio.Channel:
        """A TLS channel to the server presenting `cert` (the plain certificate by default)."""
        cert = cert or self.plain_cert
        credentials = grpc.ssl_channel_credentials(self.ca.cert_pem.bytes(), cert.key_pem, cert.cert_pem)
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{self.app.port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]
        )
        self.channels.append(channel)
        return channel

    def secrets(self) -> list[str]:
        """Every credential a test used: none may appear in any log."""
        return [*self.keys.values(), self.admin_key, *self.jwts.values()]


def secured_settings(tmp_path: Path, emulator: Emulator, ca: trustme.CA, signer: JwtSigner) -> tuple[Settings, dict]:
    """Settings for apps alpha and beta with principals of every kind; also returns the minted credentials."""
    credentials, apns_key, fcm_account = make_demo_credentials(
        tmp_path / "demo", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
    )
    emulator.add_apns_key(apns_key)
    emulator.add_fcm_account(fcm_account)
    cert_file, key_file = write_server_cert(ca, tmp_path / "tls")
    client_ca = tmp_path / "tls" / "clients-ca.pem"
    client_ca.write_bytes(ca.cert_pem.bytes())
    public_key = tmp_path / "jwt.pem"
    public_key.write_bytes(signer.public_pem)
    keys = {action: new_key() for action in ACTIONS}
    admin_key = new_key()
    api_keys = [
        ApiKeySettings(name=f"alpha-{a}", hash=hash_key(k), apps=("alpha",), actions=(a,)) for a, k in keys.items()
    ]
    api_keys.append(ApiKeySettings(name="ops", hash=hash_key(admin_key), apps=("alpha", "beta"), actions=("admin",)))
    auth = AuthSettings(
        api_keys=tuple(api_keys),
        jwt=(JwtIssuerSettings(issuer=ISSUER, audience=AUDIENCE, public_key_file=public_key),),
        identities=tuple(IdentitySettings(spiffe_id=spiffe_id("alpha", a), apps=("alpha",), actions=(a,)) for a in ACTIONS),
    )
    settings = Settings(
        store_url=f"mongomock://localhost/t{uuid.uuid4().hex[:12]}",
        host="127.0.0.1",
        port=0,
        apps={app: demo_app_settings(app, emulator, credentials) for app in ("alpha", "beta")},
        dispatch=FAST_DISPATCH,
        auth=auth,
        tls=TlsSettings(cert_file=cert_file, key_file=key_file, client_ca_file=client_ca, require_client_cert=True),
    )
    jwts = {a: signer.mint(f"alpha-{a}", a, ["alpha"]) for a in ACTIONS}
    return settings, {"keys": keys, "admin_key": admin_key, "jwts": jwts}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    """The secured server, started; stopped with its channels and the emulator afterwards."""
    emulator = Emulator(EmulatorConfig())
    await emulator.start()
    ca = trustme.CA()
    signer = JwtSigner()
    try:
        settings, minted = secured_settings(tmp_path, emulator, ca, signer)
        app = build_application(settings)
        await app.start()
    except BaseException:
        await emulator.stop()
        raise
    s = Secured(
        app=app,
        emulator=emulator,
        ca=ca,
        signer=signer,
        certs={a: client_cert(ca, spiffe_id("alpha", a)) for a in ACTIONS},
        plain_cert=client_cert(ca, None, "plain"),
        stranger_cert=client_cert(ca, spiffe_id("beta", "stranger")),
        **minted,
    )
    try:
        yield s
    finally:
        for channel in s.channels:
            await channel.close()
        await app.stop(0)
        await emulator.stop()
