"""Demo credentials: an APNs .p8 key, an FCM service-account JSON, the CA, and each channel handler's own."""

from __future__ import annotations

import dataclasses
import json
import secrets
import string
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import handlers
from .config import ApnsKey, FcmAccount

_ID_ALPHABET = string.ascii_uppercase + string.digits


@dataclasses.dataclass
class DemoCredentials:
    """Files and ids a client needs to talk to the emulator.

    Attributes:
        apns_key_file: The EC P-256 signing key, PKCS#8 PEM (``apns-auth-key.p8``).
        apns_key_id: The key id (JWT ``kid``).
        apns_team_id: The team id (JWT ``iss``).
        apns_bundle_id: The bundle id the key may push to.
        fcm_service_account_file: The service-account JSON.
        fcm_project_id: The Firebase project id.
        ca_file: PEM of the CA that signed the emulator's server certificates.
        channels: What each channel handler's ``demo_credentials`` wrote, by
            manifest key (``<channel>_..._file``: a path); the channels'
            ``demo_settings`` read their own. Empty in a manifest from before them.
    """

    apns_key_file: Path
    apns_key_id: str
    apns_team_id: str
    apns_bundle_id: str
    fcm_service_account_file: Path
    fcm_project_id: str
    ca_file: Path
    channels: dict[str, str] = dataclasses.field(default_factory=dict)


def _random_id(length: int = 10) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def make_demo_credentials(
    directory: Path,
    *,
    token_uri: str,
    ca_pem: bytes,
    bundle_id: str = "com.example.demo",
    project_id: str = "pushsvc-demo",
) -> tuple[DemoCredentials, ApnsKey, FcmAccount]:
    """Generate fresh demo keys, write them into ``directory`` and describe them.

    Writes ``apns-auth-key.p8``, ``service-account.json`` (with
    ``token_uri``), ``ca.pem`` and each channel handler's own files
    (``vapid-key.pem``, ...), all mode 0600.

    Args:
        directory: Where to write; created if missing.
        token_uri: The emulator's OAuth token endpoint (known after start).
        ca_pem: The emulator's CA (``Emulator.ca_pem``).
        bundle_id: Bundle id the APNs key may push to.
        project_id: Project id of the service account.

    Returns:
        The credentials, plus the :class:`ApnsKey` and :class:`FcmAccount` to
        register with the emulator (``Emulator.add_apns_key`` /
        ``Emulator.add_fcm_account``; ``Emulator.accept_demo_credentials``
        registers the channel handlers' own).
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_id, team_id = _random_id(), _random_id()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    apns_key_file = directory / "apns-auth-key.p8"
    handlers.write_private(
        apns_key_file,
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_email = f"pushsvc-emulator@{project_id}.iam.gserviceaccount.com"
    service_account = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
        "client_email": client_email,
        "client_id": str(secrets.randbelow(10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    service_account_file = directory / "service-account.json"
    handlers.write_private(service_account_file, json.dumps(service_account, indent=2).encode())
    ca_file = directory / "ca.pem"
    handlers.write_private(ca_file, ca_pem)
    channels = {key: value for spec in handlers.registered() for key, value in spec.demo_credentials(directory).items()}

    def public_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    credentials = DemoCredentials(
        apns_key_file=apns_key_file,
        apns_key_id=key_id,
        apns_team_id=team_id,
        apns_bundle_id=bundle_id,
        fcm_service_account_file=service_account_file,
        fcm_project_id=project_id,
        ca_file=ca_file,
        channels=channels,
    )
    apns_key = ApnsKey(key_id, team_id, public_pem(ec_key), (bundle_id,))
    fcm_account = FcmAccount(client_email, public_pem(rsa_key), project_id)
    return credentials, apns_key, fcm_account


MANIFEST = "emulator.json"
"""File name of the manifest `write_manifest` puts beside the credentials."""


def write_manifest(directory: Path, emulator: Any, credentials: DemoCredentials) -> Path:
    """Writes emulator.json: where the emulator listens and which demo credentials it accepts.

    Clients (`pushsvc deliver`) read it to talk to a running `pushsvc emulator`.
    It names the credential files; it holds no secret itself.
    """
    manifest = {
        "apns_url": emulator.apns_url,
        "apns_sandbox_url": emulator.apns_sandbox_url,
        "fcm_url": emulator.fcm_url,
        "token_uri": emulator.token_uri,
        "apns_key_file": str(credentials.apns_key_file),
        "apns_key_id": credentials.apns_key_id,
        "apns_team_id": credentials.apns_team_id,
        "apns_bundle_id": credentials.apns_bundle_id,
        "fcm_service_account_file": str(credentials.fcm_service_account_file),
        "fcm_project_id": credentials.fcm_project_id,
        "ca_file": str(credentials.ca_file),
        **emulator.channel_urls(),
        **credentials.channels,
    }
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


_CORE = frozenset({
    "token_uri", "apns_key_file", "apns_key_id", "apns_team_id", "apns_bundle_id",
    "fcm_service_account_file", "fcm_project_id", "ca_file",
})
"""The manifest's entries of the built-in servers (the rest are URLs and the channel handlers')."""


def read_manifest(path: Path) -> tuple[dict[str, str], DemoCredentials]:
    """Reads a manifest written by `write_manifest`: the URLs, and the credentials."""
    data = json.loads(path.read_text())
    credentials = DemoCredentials(
        apns_key_file=Path(data["apns_key_file"]),
        apns_key_id=data["apns_key_id"],
        apns_team_id=data["apns_team_id"],
        apns_bundle_id=data["apns_bundle_id"],
        fcm_service_account_file=Path(data["fcm_service_account_file"]),
        fcm_project_id=data["fcm_project_id"],
        ca_file=Path(data["ca_file"]),
        channels={k: str(v) for k, v in data.items() if k not in _CORE and not k.endswith("_url") and v},
    )
    urls = {k: data[k] for k in data if k.endswith("_url") or k == "token_uri"}
    return urls, credentials
