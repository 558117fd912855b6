"""The :class:`Emulator`: fake APNs (production and sandbox), FCM, OAuth, and each channel handler's service (:mod:`.handlers`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import handlers
from .apns import ApnsService, ApnsSite
from .config import ApnsKey, EmulatorConfig, FcmAccount
from .control import ControlApi
from .faults import Faults
from .fcm import FcmService, FcmSite
from .http2 import Http2Server
from .inbox import Inbox
from .oauth import OAuthService
from .proxy import PROXY_HOSTS, ProxyServer, Route
from .scenario import Scenario, ScenarioPlayer
from .stats import Stats
from .tls import ServerTls

if TYPE_CHECKING:
    from .credentials import DemoCredentials


class Emulator:
    """Local fake push providers over TLS.

    Three ports: APNs production (:attr:`apns_url`), APNs sandbox
    (:attr:`apns_sandbox_url`) and FCM with the OAuth token endpoint
    (:attr:`fcm_url`, :attr:`token_uri`). Every port also serves the
    ``/_emulator/`` control endpoints. With ``EmulatorConfig.proxy_port``
    a fourth port is an HTTP CONNECT proxy (:attr:`proxy_url`) that serves
    Apple's and Google's host names itself (:mod:`.proxy`). The APNs ports speak HTTP/2 only, with
    ALPN ``h2`` or with no ALPN (a client offering only ``http/1.1`` gets no
    ALPN and must then open with the HTTP/2 preface). The FCM port speaks
    HTTP/2 with ALPN ``h2`` and HTTP/1.1 with ALPN ``http/1.1`` or none. Certificates come from a CA generated
    per instance (:attr:`ca_pem`).

    Example::

        async with Emulator(EmulatorConfig(apns_keys=[key])) as emulator:
            ...  # send to emulator.apns_url, trusting emulator.ca_pem
            entries = await emulator.inbox.wait_for(1, timeout_s=5)

    Attributes:
        inbox: Accepted notifications.
        faults: Faults in force; mutable.
        stats: Request counters.
        scenario: The scenario in force (:meth:`load_scenario` replaces it).

    Args:
        config: Credentials, ports, limits and the starting scenario.
        clock: Source of "now" (epoch seconds) for JWT ages, token expiry,
            timestamps and inbox times.
    """

    def __init__(self, config: EmulatorConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._tls = ServerTls()
        self.inbox = Inbox(config.inbox_limit)
        self.faults = Faults()
        self.stats = Stats()
        self.scenario = ScenarioPlayer(config.scenario)
        rng = random.Random()
        # Each channel handler's service shares the FCM port (its origin is that port's URL).
        context = handlers.HandlerContext(inbox=self.inbox, stats=self.stats, clock=clock, origin=lambda: self.fcm_url)
        specs = handlers.registered()
        self._channels = {spec.channel: spec.build(context) for spec in specs}
        control = ControlApi(
            self.inbox, self.faults, self.stats, self.scenario, self.load_scenario, channels=self._channels, specs=specs
        )
        self._apns = ApnsService(
            config.apns_keys,
            inbox=self.inbox,
            faults=self.faults,
            stats=self.stats,
            clock=clock,
            rng=rng,
            scenario=self.scenario,
            streams_before_auth=config.apns_streams_before_auth,
            streams_after_auth=config.apns_streams_after_auth,
        )
        self._oauth = OAuthService(
            config.fcm_accounts,
            stats=self.stats,
            clock=clock,
            lifetime_s=config.access_token_lifetime_s,
            scenario=self.scenario,
        )
        fcm = FcmService(
            self._oauth, inbox=self.inbox, faults=self.faults, stats=self.stats, clock=clock, rng=rng,
            scenario=self.scenario,
        )
        apns_context = self._tls.server_context(client_ca_pem=config.apns_client_ca_pem)
        self._apns_server = Http2Server(ApnsSite(self._apns, control, "production"), apns_context)
        self._sandbox_server = Http2Server(ApnsSite(self._apns, control, "sandbox"), apns_context)
        # Google serves HTTP/1.1 too (google-auth's and firebase-admin's
        # default transport is requests); APNs is HTTP/2 only (protocols.md A.1).
        self._fcm_server = Http2Server(
            FcmSite(fcm, self._oauth, control, config.fcm_max_streams, channels=tuple(self._channels.values())),
            self._tls.server_context(alpn_protocols=("h2", "http/1.1")),
            http1=True,
        )
        # The control endpoints and web inbox over plain HTTP, for browsers.
        self._control_server = Http2Server(control, None, http1=True) if config.control_port is not None else None
        self._proxy: ProxyServer | None = None
        if config.proxy_port is not None:
            apns_route = self._tls.server_context(client_ca_pem=config.apns_client_ca_pem, provider_hosts=True)
            google_route = self._tls.server_context(alpn_protocols=("h2", "http/1.1"), provider_hosts=True)
            servers = {"apns": self._apns_server, "apns-sandbox": self._sandbox_server, "fcm": self._fcm_server}
            self._proxy = ProxyServer(
                {
                    host: Route(servers[name], google_route if name == "fcm" else apns_route)
                    for host, name in PROXY_HOSTS.items()
                }
            )
        self._started = False

    @property
    def ca_pem(self) -> bytes:
        """PEM of the CA that signed the server certificates."""
        return self._tls.ca_pem

    @property
    def apns_url(self) -> str:
        """Base URL of the fake APNs production host."""
        return self._url(self._apns_server)

    @property
    def apns_sandbox_url(self) -> str:
        """Base URL of the fake APNs sandbox (development) host."""
        return self._url(self._sandbox_server)

    @property
    def fcm_url(self) -> str:
        """Base URL of the fake FCM API (``/v1/projects/{id}/messages:send``)."""
        return self._url(self._fcm_server)

    def channel_urls(self) -> dict[str, str]:
        """Every channel handler's URLs (``{"<channel>_url": ...}``), for the manifest and the demo app's settings."""
        return {key: url for channel in self._channels.values() for key, url in channel.urls().items()}

    def accept_demo_credentials(self, credentials: DemoCredentials) -> None:
        """Accept the channel handlers' demo credentials (``make_demo_credentials`` wrote them) from now on."""
        for channel in self._channels.values():
            channel.accept(credentials.channels)

    def __getattr__(self, name: str) -> Any:
        # What a channel handler offers by name (`emulator.<channel>_url`, its
        # test helpers: ChannelHandler.attributes), so the emulator names no channel.
        for channel in self.__dict__.get("_channels", {}).values():
            getter = channel.attributes().get(name)
            if getter is not None:
                return getter()
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def control_url(self) -> str:
        """Plain-HTTP base URL of the control port; the web inbox is at ``/_emulator/``."""
        if self._control_server is None:
            raise RuntimeError("no control port (EmulatorConfig.control_port is None)")
        if not self._started:
            raise RuntimeError("emulator not started")
        return self._url(self._control_server).replace("https://", "http://", 1)

    @property
    def proxy_url(self) -> str:
        """The CONNECT proxy's URL, for ``HTTPS_PROXY`` (needs ``EmulatorConfig.proxy_port``)."""
        if self._proxy is None:
            raise RuntimeError("proxy mode is off (EmulatorConfig.proxy_port is None)")
        if not self._started:
            raise RuntimeError("emulator not started")
        host = self._config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._proxy.port}"

    @property
    def token_uri(self) -> str:
        """The fake Google OAuth token endpoint."""
        return self.fcm_url + "/token"

    def _url(self, server: Http2Server) -> str:
        if not self._started:
            raise RuntimeError("emulator not started")
        host = self._config.host
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{server.port}"

    def load_scenario(self, scenario: Scenario | None) -> None:
        """Play ``scenario`` from now on (None: the built-in test tokens alone).

        Every token's position in its answers, every rule's request count and
        every credential's use count start again.
        """
        self.scenario.load(scenario)
        self._apns.reset_jwt_uses()
        self._oauth.reset_uses()

    def add_apns_key(self, key: ApnsKey) -> None:
        """Accept JWTs signed by ``key`` from now on."""
        self._apns.add_key(key)

    def add_fcm_account(self, account: FcmAccount) -> None:
        """Accept OAuth assertions signed by ``account`` from now on."""
        self._oauth.add_account(account)

    async def start(self) -> None:
        """Bind all three ports; returns once they are listening."""
        if self._started:
            return
        host = self._config.host
        try:
            await self._apns_server.start(host, self._config.apns_port)
            await self._sandbox_server.start(host, self._config.apns_sandbox_port)
            await self._fcm_server.start(host, self._config.fcm_port)
            if self._control_server is not None and self._config.control_port is not None:
                await self._control_server.start(host, self._config.control_port)
            if self._proxy is not None and self._config.proxy_port is not None:
                await self._proxy.start(host, self._config.proxy_port)
        except BaseException:
            await self._stop_servers()
            raise
        self._started = True
        self._oauth.token_uri = self.token_uri

    async def stop(self) -> None:
        """Close the listeners and every connection."""
        await self._stop_servers()
        self._started = False

    async def _stop_servers(self) -> None:
        if self._proxy is not None:
            await self._proxy.stop()
        for server in (self._apns_server, self._sandbox_server, self._fcm_server, self._control_server):
            if server is not None:
                await server.stop()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
