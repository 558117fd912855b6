"""Test PKI and JWT material: a trustme CA, server and client certificates, signing keys.

trustme issues the CA and the server certificate; client certificates with a
SPIFFE ID in the URI SAN (which trustme does not write) are signed with the
trustme CA's key through cryptography.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ISSUER = "https://issuer.pushsvc.test"
AUDIENCE = "pushsvc"


@dataclasses.dataclass(frozen=True)
class ClientCert:
    """A client certificate and its key, PEM."""

    cert_pem: bytes
    key_pem: bytes


def client_cert(ca: trustme.CA, spiffe_id: str | None, common_name: str = "client") -> ClientCert:
    """A client certificate signed by `ca`, with `spiffe_id` as its only URI SAN (none when None)."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if spiffe_id is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return ClientCert(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def write_server_cert(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    """A server certificate for localhost / 127.0.0.1, written as cert.pem and key.pem."""
    cert = ca.issue_cert("localhost", "127.0.0.1")
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_file.write_bytes(cert.private_key_pem.bytes())
    return cert_file, key_file


class JwtSigner:
    """An RSA key pair that mints RS256 tokens for the test issuer."""

    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def mint(self, sub: str, scope: str, apps: list[str], /, *, ttl_s: float = 600, **overrides: Any) -> str:
        """A token valid from now for `ttl_s`; `overrides` replace or (with None) drop claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "scope": scope,
            "apps": apps,
            "iat": now,
            "exp": now + int(ttl_s),
            "jti": uuid.uuid4().hex,
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(claims, self.private_key, algorithm="RS256")

    def jwks(self, kid: str = "k1") -> str:
        """The public key as a JWKS document."""
        entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        entry.update(kid=kid, alg="RS256", use="sig")
        return json.dumps({"keys": [entry]})
