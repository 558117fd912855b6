"""FcmAccessTokenSource: google-auth flow over urllib, caching, single refresh, invalidate."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import google.auth.exceptions
import jwt
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import service_account

from pushsvc.providers.fcm_auth import FCM_SCOPE, FcmAccessTokenSource, UrllibAuthRequest

ROOT = Path(__file__).resolve().parents[2]


def _source(credentials, clock, **kwargs) -> FcmAccessTokenSource:
    return FcmAccessTokenSource(credentials, request=object(), clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_token_is_cached_until_shortly_before_expiry(clock, CountingCredentials) -> None:
    credentials = CountingCredentials(lifetime_s=3600)
    source = _source(credentials, clock, refresh_margin_s=300)
    assert await source.access_token() == "tok-1"
    clock.advance(3600 - 300 - 5)
    assert await source.access_token() == "tok-1"
    assert source.refresh_count == 1
    clock.advance(10)  # inside the margin
    assert await source.access_token() == "tok-2"
    assert source.refresh_count == 2


async def test_concurrent_callers_trigger_one_refresh_off_the_event_loop(clock, CountingCredentials) -> None:
    credentials = CountingCredentials(delay_s=0.05)
    source = _source(credentials, clock)
    tokens = await asyncio.gather(*(source.access_token() for _ in range(50)))
    assert set(tokens) == {"tok-1"}
    assert credentials.calls == 1
    assert credentials.threads[0] != threading.get_ident()


async def test_invalidate_forces_a_refresh_once(clock, CountingCredentials) -> None:
    credentials = CountingCredentials()
    source = _source(credentials, clock)
    first = await source.access_token()
    source.invalidate(rejected=first)
    second = await source.access_token()
    assert second == "tok-2"
    source.invalidate(rejected=first)  # stale rejection: someone already refreshed
    assert await source.access_token() == "tok-2"
    assert credentials.calls == 2


async def test_refresh_has_a_deadline(clock, CountingCredentials) -> None:
    source = _source(CountingCredentials(delay_s=0.5), clock, refresh_timeout_s=0.05)
    with pytest.raises(TimeoutError):
        await source.access_token()


@pytest.fixture(scope="module")
def service_account_info() -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "kid1",
        "private_key": pem,
        "client_email": "sender@demo.iam.gserviceaccount.com",
        "token_uri": "https://oauth.test/token",
        "_public": key.public_key(),
    }


class _TokenEndpoint:
    """A real HTTP server on loopback (TLS when given a certificate) that answers every POST with `answer`."""

    def __init__(self, answer: tuple[int, dict], cert: trustme.LeafCert | None = None) -> None:
        self.seen: list[tuple[str, bytes]] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                endpoint.seen.append((self.path, self.rfile.read(int(self.headers["content-length"]))))
                status, document = answer
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://localhost:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def token_endpoint():
    endpoints: list[_TokenEndpoint] = []

    def start(answer: tuple[int, dict], cert: trustme.LeafCert | None = None) -> _TokenEndpoint:
        endpoints.append(_TokenEndpoint(answer, cert))
        return endpoints[-1]

    yield start
    for endpoint in endpoints:
        endpoint.close()


def _info(service_account_info: dict, token_uri: str) -> dict:
    return {key: value for key, value in service_account_info.items() if not key.startswith("_")} | {"token_uri": token_uri}


async def test_google_auth_posts_a_jwt_grant_to_token_uri_over_tls(service_account_info, clock, token_endpoint) -> None:
    ca = trustme.CA()
    endpoint = token_endpoint(
        (200, {"access_token": "ya29.issued", "expires_in": 3599, "token_type": "Bearer"}), ca.issue_cert("localhost")
    )
    info = _info(service_account_info, endpoint.url)
    # The emulator's way in: its CA, trusted for the token endpoint alone.
    source = FcmAccessTokenSource.from_service_account_info(info, ca_pem=ca.cert_pem.bytes(), clock=clock)
    assert await source.access_token() == "ya29.issued"
    assert await source.access_token() == "ya29.issued"
    assert len(endpoint.seen) == 1
    path, body = endpoint.seen[0]
    assert path == "/token"
    form = dict(urllib.parse.parse_qsl(body.decode()))
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(
        form["assertion"], service_account_info["_public"], algorithms=["RS256"], audience="https://oauth2.googleapis.com/token"
    )
    assert claims["iss"] == info["client_email"] and claims["scope"] == FCM_SCOPE
    # Expires in 3599 s: with a 300 s margin the cache holds for ~55 minutes on the injected clock.
    clock.advance(3599 - 300 + 1)
    await source.access_token()
    assert len(endpoint.seen) == 2
    source.close()


async def test_an_untrusted_token_endpoint_is_a_transport_error(service_account_info, clock, token_endpoint) -> None:
    endpoint = token_endpoint((200, {"access_token": "never", "expires_in": 3599}), trustme.CA().issue_cert("localhost"))
    source = FcmAccessTokenSource.from_service_account_info(
        _info(service_account_info, endpoint.url), ca_pem=trustme.CA().cert_pem.bytes(), clock=clock
    )
    with pytest.raises(google.auth.exceptions.TransportError):
        await source.access_token()
    assert endpoint.seen == []


async def test_token_endpoint_refusal_surfaces_as_refresh_error(service_account_info, clock, token_endpoint) -> None:
    endpoint = token_endpoint((400, {"error": "invalid_grant", "error_description": "bad key"}))
    credentials = service_account.Credentials.from_service_account_info(
        _info(service_account_info, endpoint.url), scopes=[FCM_SCOPE]
    )
    source = FcmAccessTokenSource(credentials, request=UrllibAuthRequest(), clock=clock)
    with pytest.raises(google.auth.exceptions.RefreshError) as caught:
        await source.access_token()
    assert not caught.value.retryable
    assert len(endpoint.seen) == 1


def test_transport_errors_become_google_transport_errors() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    # Nothing listens on the port now: the connection is refused.
    with pytest.raises(google.auth.exceptions.TransportError):
        UrllibAuthRequest()(f"http://127.0.0.1:{port}/token", method="POST", body=b"x")


def test_a_token_endpoint_that_resets_the_connection_leaves_no_socket_open() -> None:
    # In a child process: its audit hook widens the race it needs, and
    # audit hooks cannot be removed once added.
    result = subprocess.run(
        [sys.executable, "-m", "tests.providers.reset_peer", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome == {"requests": 5, "transport_errors": 5, "unclosed_warnings": [], "fds_left_open": 0}, outcome
