"""Demo credentials: an APNs .p8 key, an FCM service-account JSON and the CA."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import string
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .config import ApnsKey, FcmAccount
from .hms import HmsClient

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
        webpush_vapid_key_file: The Web Push (VAPID) key, EC P-256 PKCS#8 PEM
            (``vapid-key.pem``); None in a manifest from before Web Push.
        hms_client_id: The Huawei OAuth client id (digits); "" before HMS.
        hms_client_secret_file: The client secret (``hms-client-secret``).
        hms_project_id: The AppGallery Connect project id.
    """

    apns_key_file: Path
    apns_key_id: str
    apns_team_id: str
    apns_bundle_id: str
    fcm_service_account_file: Path
    fcm_project_id: str
    ca_file: Path
    webpush_vapid_key_file: Path | None = None
    hms_client_id: str = ""
    hms_client_secret_file: Path | None = None
    hms_project_id: str = ""


def _random_id(length: int = 10) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    # An existing file keeps its old mode through O_CREAT; force it.
    os.chmod(path, 0o600)


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
    ``token_uri``), ``vapid-key.pem`` and ``ca.pem``, all mode 0600.

    Args:
        directory: Where to write; created if missing.
        token_uri: The emulator's OAuth token endpoint (known after start).
        ca_pem: The emulator's CA (``Emulator.ca_pem``).
        bundle_id: Bundle id the APNs key may push to.
        project_id: Project id of the service account.

    Returns:
        The credentials, plus the :class:`ApnsKey` and :class:`FcmAccount` to
        register with the emulator (``Emulator.add_apns_key`` /
        ``Emulator.add_fcm_account``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_id, team_id = _random_id(), _random_id()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    apns_key_file = directory / "apns-auth-key.p8"
    _write_private(
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
    _write_private(service_account_file, json.dumps(service_account, indent=2).encode())
    ca_file = directory / "ca.pem"
    _write_private(ca_file, ca_pem)
    hms_secret_file = directory / "hms-client-secret"
    _write_private(hms_secret_file, secrets.token_urlsafe(32).encode())
    vapid_key_file = directory / "vapid-key.pem"
    _write_private(
        vapid_key_file,
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )

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
        webpush_vapid_key_file=vapid_key_file,
        hms_client_id=str(100000000 + secrets.randbelow(900000000)),
        hms_client_secret_file=hms_secret_file,
        hms_project_id=str(736430079244600000 + secrets.randbelow(100000)),
    )
    apns_key = ApnsKey(key_id, team_id, public_pem(ec_key), (bundle_id,))
    fcm_account = FcmAccount(client_email, public_pem(rsa_key), project_id)
    return credentials, apns_key, fcm_account


def hms_client(credentials: DemoCredentials) -> HmsClient | None:
    """The Huawei OAuth client the emulator must accept for these credentials (None before HMS)."""
    if credentials.hms_client_secret_file is None:
        return None
    secret = credentials.hms_client_secret_file.read_text().strip()
    return HmsClient(credentials.hms_client_id, secret, credentials.hms_project_id)


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
        "webpush_url": emulator.webpush_url,
        "webpush_vapid_key_file": str(credentials.webpush_vapid_key_file or ""),
        "hms_url": emulator.hms_url,
        "hms_client_id": credentials.hms_client_id,
        "hms_client_secret_file": str(credentials.hms_client_secret_file or ""),
        "hms_project_id": credentials.hms_project_id,
    }
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


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
        webpush_vapid_key_file=Path(data["webpush_vapid_key_file"]) if data.get("webpush_vapid_key_file") else None,
        hms_client_id=data.get("hms_client_id", ""),
        hms_client_secret_file=Path(data["hms_client_secret_file"]) if data.get("hms_client_secret_file") else None,
        hms_project_id=data.get("hms_project_id", ""),
    )
    urls = {k: data[k] for k in ("apns_url", "apns_sandbox_url", "fcm_url", "token_uri", "webpush_url", "hms_url") if k in data}
    return urls, credentials
