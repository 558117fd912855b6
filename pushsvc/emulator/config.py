"""Configuration of the emulator: accepted credentials, ports and limits."""

from __future__ import annotations

import dataclasses

from .scenario import Scenario


@dataclasses.dataclass
class ApnsKey:
    """A token-auth signing key the fake APNs accepts.

    Attributes:
        key_id: The 10-character key id (JWT header ``kid``).
        team_id: The 10-character team id (JWT claim ``iss``).
        public_key_pem: The EC P-256 public key, PEM.
        bundle_ids: Base bundle ids this key may push to; the topic suffix each
            push type needs (``.voip``, ``.push-type.liveactivity``...) is
            derived from them.
    """

    key_id: str
    team_id: str
    public_key_pem: bytes
    bundle_ids: tuple[str, ...]


@dataclasses.dataclass
class FcmAccount:
    """A service account the fake Google OAuth endpoint accepts.

    Attributes:
        client_email: The account's ``client_email`` (the assertion's ``iss``).
        public_key_pem: The RSA public key matching the account's ``private_key``.
        project_id: The only project this account may send to.
    """

    client_email: str
    public_key_pem: bytes
    project_id: str


@dataclasses.dataclass
class EmulatorConfig:
    """Everything an :class:`~pushsvc.emulator.Emulator` needs.

    Attributes:
        host: Address to bind; keep it on loopback.
        apns_port: Fake APNs production port (0 picks a free port).
        apns_sandbox_port: Fake APNs sandbox port (0 picks a free port).
        fcm_port: Port serving FCM send and the OAuth token endpoint.
        apns_keys: Signing keys accepted for APNs token auth.
        fcm_accounts: Service accounts accepted by the OAuth endpoint.
        apns_streams_before_auth: MAX_CONCURRENT_STREAMS advertised by a new
            token-auth APNs connection.
        apns_streams_after_auth: MAX_CONCURRENT_STREAMS advertised once a
            request with a valid JWT arrived (and from the start with
            certificate auth).
        fcm_max_streams: MAX_CONCURRENT_STREAMS advertised on the FCM port.
        access_token_lifetime_s: Lifetime of issued OAuth access tokens; the
            response's ``expires_in`` is one second less, like Google's 3599.
        apns_client_ca_pem: If set, the APNs ports also accept TLS client
            certificates signed by this CA (certificate authentication). The
            bundle id is the subject UID (``userId``, as in Apple's
            certificates) or, without one, the subject CN with any
            ``"... Push Services: "`` prefix removed.
        inbox_limit: The inbox keeps at most this many entries (oldest dropped)
            so that long benchmarks use bounded memory.
        control_port: If not None, also serve the control endpoints and the
            web inbox over plain HTTP/1.1 here (0 picks a free port); keep
            ``host`` on loopback.
        proxy_port: If not None, also listen here for HTTP CONNECT to Apple's
            and Google's push hosts (:mod:`.proxy`; 0 picks a free port).
        scenario: Per-token behaviour played from the start, over the
            built-in test tokens (:mod:`.scenario`); None: the test tokens alone.
    """

    host: str = "127.0.0.1"
    apns_port: int = 0
    apns_sandbox_port: int = 0
    fcm_port: int = 0
    apns_keys: list[ApnsKey] = dataclasses.field(default_factory=list)
    fcm_accounts: list[FcmAccount] = dataclasses.field(default_factory=list)
    apns_streams_before_auth: int = 1
    apns_streams_after_auth: int = 1000
    fcm_max_streams: int = 1000
    access_token_lifetime_s: int = 3600
    apns_client_ca_pem: bytes | None = None
    inbox_limit: int = 100_000
    control_port: int | None = None
    proxy_port: int | None = None
    scenario: Scenario | None = None
