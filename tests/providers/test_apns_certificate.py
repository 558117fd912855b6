"""Certificate auth: apns_client_tls (PEM and PKCS#12, from a file or cert_env) against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pushsvc import models
from pushsvc.bootstrap import build_providers
from pushsvc.clock import SystemClock
from pushsvc.config import ConfigError, load_settings
from pushsvc.emulator import Emulator, EmulatorConfig
from pushsvc.providers.apns import ApnsProvider, apns_client_tls, render_apns
from pushsvc.providers.base import Delivery, Outcome
from pushsvc.providers.transport import Http2Transport

BUNDLE = "com.example.certapp"


@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_cert(client_ca: trustme.CA) -> trustme.LeafCert:
    return client_ca.issue_cert("client.example", common_name=f"Apple Push Services: {BUNDLE}")


def _write_pem(directory: Path, cert: trustme.LeafCert) -> Path:
    path = directory / "client.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


def _write_p12(directory: Path, cert: trustme.LeafCert, password: bytes) -> Path:
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    certificate = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    data = pkcs12.serialize_key_and_certificates(
        b"apns", key, certificate, None, serialization.BestAvailableEncryption(password)  # type: ignore[arg-type]
    )
    path = directory / "client.p12"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", ["pem", "p12"])
async def test_certificate_auth_delivers_without_authorization(kind, client_ca, client_cert, tmp_path) -> None:
    config = EmulatorConfig(apns_client_ca_pem=client_ca.cert_pem.bytes())
    async with Emulator(config) as emulator:
        if kind == "pem":
            tls = apns_client_tls(_write_pem(tmp_path, client_cert), ca_pem=emulator.ca_pem)
        else:
            tls = apns_client_tls(_write_p12(tmp_path, client_cert, b"secret"), password=b"secret", ca_pem=emulator.ca_pem)
        # The decrypted key stays in memory: nothing beside the input file was written.
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"client.{kind}"]
        provider = ApnsProvider(
            transport=Http2Transport(tls=tls),
            production_url=emulator.apns_url,
            sandbox_url=emulator.apns_sandbox_url,
            signer=None,
            clock=SystemClock(),
        )
        async with provider:
            rendered = render_apns(models.Message(title="cert"), bundle_id=BUNDLE)
            result = await provider.send(Delivery(token="ab" * 32, rendered=rendered))
        assert result.outcome is Outcome.DELIVERED, result
        [entry] = emulator.inbox.entries(platform="apns")
        assert "authorization" not in entry.headers and entry.headers["apns-topic"] == BUNDLE


def test_p12_without_a_key_is_refused(client_cert, tmp_path) -> None:
    certificate = x509.load_pem_x509_certificate(client_cert.cert_chain_pems[0].bytes())
    data = pkcs12.serialize_key_and_certificates(b"x", None, certificate, None, serialization.NoEncryption())
    path = tmp_path / "nokey.p12"
    path.write_bytes(data)
    with pytest.raises(ValueError):
        apns_client_tls(path)



async def test_certificate_from_an_environment_variable_via_config(
    client_ca, client_cert, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cert_env: the PEM (certificate and key) from a Secret exposed through `env`, no file on disk.
    monkeypatch.setenv("CERTAPP_APNS_PEM", client_cert.private_key_and_cert_chain_pem.bytes().decode())
    config = EmulatorConfig(apns_client_ca_pem=client_ca.cert_pem.bytes())
    async with Emulator(config) as emulator:
        ca_file = tmp_path / "emulator-ca.pem"
        ca_file.write_bytes(emulator.ca_pem)
        path = tmp_path / "pushsvc.toml"
        path.write_text(
            f'[apps.certapp.apns]\nbundle_id = "{BUNDLE}"\ncert_env = "CERTAPP_APNS_PEM"\nca_file = "emulator-ca.pem"\n'
            f'production_url = "{emulator.apns_url}"\nsandbox_url = "{emulator.apns_sandbox_url}"\n'
        )
        providers, closers = build_providers(load_settings(path, env={}))
        provider = providers[("certapp", models.Platform.APNS)]
        try:
            rendered = render_apns(models.Message(title="cert"), bundle_id=BUNDLE)
            result = await provider.send(Delivery(token="ab" * 32, rendered=rendered))
        finally:
            await provider.aclose()
        assert not closers
        assert result.outcome is Outcome.DELIVERED, result
        [entry] = emulator.inbox.entries(platform="apns")
        assert "authorization" not in entry.headers and entry.headers["apns-topic"] == BUNDLE


def test_a_missing_certificate_variable_is_a_config_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_APNS_PEM", raising=False)
    path = tmp_path / "pushsvc.toml"
    path.write_text('[apps.certapp.apns]\nbundle_id = "b"\ncert_env = "NOPE_APNS_PEM"\n')
    with pytest.raises(ConfigError, match="apps.certapp.apns.cert_env: environment variable NOPE_APNS_PEM is not set"):
        build_providers(load_settings(path, env={}))
    path.write_text('[apps.certapp.apns]\nbundle_id = "b"\ncert_env = "X"\ncert_file = "c.pem"\n')
    with pytest.raises(ConfigError, match="apps.certapp.apns: set one credential, not cert_file and cert_env"):
        load_settings(path, env={})
