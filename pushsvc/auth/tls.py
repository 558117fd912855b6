"""TLS and mTLS on the gRPC port, with certificates reloaded when their files change.

grpc asks `CertificateReloader.fetch` for a configuration at the start of each
TLS handshake (`grpc.dynamic_ssl_server_credentials`). It stats the files at
most once per `check_interval_s` and rebuilds the configuration when one of
them changed, so a rotated certificate (cert-manager, a mesh's SDS writer, a
Kubernetes Secret update) is used from the next connection on, without a
restart. A half-written or broken pair keeps the previous one in service.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from pushsvc.clock import Clock

log = logging.getLogger("pushsvc.auth")

_SPKI = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Where the server's certificate, key and (for mTLS) client CA bundle live."""

    cert_file: Path
    """PEM certificate chain, leaf first."""
    key_file: Path
    client_ca_file: Path | None = None
    """PEM CA bundle that client certificates must chain to; None means no client certificates."""
    require_client_cert: bool = False
    """mTLS: refuse handshakes without a valid client certificate."""


class CertificateReloader:
    """Serves the current certificate configuration to grpc and notices file changes."""

    def __init__(self, files: TlsFiles, clock: Clock, *, check_interval_s: float = 1.0) -> None:
        if files.require_client_cert and files.client_ca_file is None:
            raise ValueError("tls: require_client_cert needs client_ca_file")
        self._files = files
        self._clock = clock
        self._check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._next_check = clock.monotonic() + check_interval_s
        self.reloads = 0
        """How many times a changed configuration was handed to grpc."""
        self._initial = self._load()

    def _paths(self) -> list[Path]:
        return [p for p in (self._files.cert_file, self._files.key_file, self._files.client_ca_file) if p is not None]

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in self._paths():
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        chain = self._files.cert_file.read_bytes()
        key = self._files.key_file.read_bytes()
        # Parse before handing over: grpc would only fail at the next handshake.
        leaf = x509.load_pem_x509_certificates(chain)[0]
        private = load_pem_private_key(key, None)
        if leaf.public_key().public_bytes(*_SPKI) != private.public_key().public_bytes(*_SPKI):
            # A rotation caught between writing the certificate and the key.
            raise ValueError(f"{self._files.key_file} does not match the certificate in {self._files.cert_file}")
        roots = self._files.client_ca_file.read_bytes() if self._files.client_ca_file else None
        if roots is not None:
            x509.load_pem_x509_certificates(roots)
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc's fetch callback: a new configuration when the files changed, else None."""
        with self._lock:
            now = self._clock.monotonic()
            if now < self._next_check:
                return None
            self._next_check = now + self._check_interval_s
            try:
                stamp = self._stat()
                if stamp == self._stamp:
                    return None
                config = self._load()
            except (OSError, ValueError) as exc:
                log.warning("tls: keeping the current certificate; the new files do not load: %s", exc)
                return None
            self._stamp = stamp
            self.reloads += 1
            log.info("tls: certificate files changed; new connections use the new certificate")
            return config

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that call `fetch` at each handshake."""
        return grpc.dynamic_ssl_server_credentials(
            self._initial, self.fetch, require_client_authentication=self._files.require_client_cert  # type: ignore[arg-type]  # grpc accepts a fetch that returns None (keep the current pair)
        )
