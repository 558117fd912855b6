"""The emulator's throw-away certificate authority and server TLS contexts."""

from __future__ import annotations

import ssl

import trustme

from .proxy import PROXY_HOSTS


class ServerTls:
    """A fresh self-signed CA, a leaf for 127.0.0.1 / localhost and one for the providers' hosts.

    The second leaf (for the names in :data:`.proxy.PROXY_HOSTS`) is what
    proxy mode presents inside its tunnels. Clients trust :attr:`ca_pem`;
    nothing is written to disk here.
    """

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="pushsvc emulator")
        self._leaf = self._ca.issue_cert("127.0.0.1", "localhost", "::1")
        self._provider_leaf = self._ca.issue_cert(*PROXY_HOSTS)

    @property
    def ca_pem(self) -> bytes:
        """PEM of the CA that signed the server certificate."""
        return self._ca.cert_pem.bytes()

    def server_context(
        self,
        *,
        alpn_protocols: tuple[str, ...] = ("h2",),
        client_ca_pem: bytes | None = None,
        provider_hosts: bool = False,
    ) -> ssl.SSLContext:
        """Build a TLS 1.2+ server context.

        Args:
            alpn_protocols: ALPN protocols offered, preferred first. A client
                that offers none of them still completes the handshake, with
                no protocol selected (OpenSSL's behaviour; see
                :mod:`.http2` for what the emulator then speaks).
            client_ca_pem: If given, clients may present a certificate signed by
                this CA (APNs certificate authentication); it stays optional so
                token-auth clients can use the same port.
            provider_hosts: Present the certificate for Apple's and Google's
                host names (proxy mode) instead of the loopback one.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(list(alpn_protocols))
        (self._provider_leaf if provider_hosts else self._leaf).configure_cert(context)
        if client_ca_pem is not None:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=client_ca_pem.decode("ascii"))
        return context
