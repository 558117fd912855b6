"""Proxy mode: unmodified clients reach the emulator through HTTPS_PROXY and the CA file.

- firebase-admin's default transport (requests) in a subprocess, with nothing
  overridden: the OAuth exchange and the send go to Google's host names;
- a Go program on net/http, built here, sending to api.push.apple.com;
- httpx over HTTP/2 to every host, and raw CONNECTs the proxy must refuse.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from pushsvc.emulator import DemoCredentials, Emulator, EmulatorConfig, make_demo_credentials
from pushsvc.emulator.oauth import GOOGLE_TOKEN_URI

from .conftest import hex_token, ssl_ctx_from

PEERS = Path(__file__).parent / "peers"
PEER_TIMEOUT_S = 90.0
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Variables that could send a peer elsewhere or make it trust something else.
_SCRUBBED = {
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
}


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[Emulator, DemoCredentials]]:
    """An emulator on the real clock with a proxy port, and credentials naming Google's token_uri."""
    async with Emulator(EmulatorConfig(proxy_port=0)) as emulator:
        credentials, apns_key, fcm_account = make_demo_credentials(
            tmp_path / "credentials", token_uri=GOOGLE_TOKEN_URI, ca_pem=emulator.ca_pem
        )
        emulator.add_apns_key(apns_key)
        emulator.add_fcm_account(fcm_account)
        yield emulator, credentials


def proxy_env(emulator: Emulator, credentials: DemoCredentials) -> dict[str, str]:
    """The environment an unmodified app is given: the proxy and the CA file, nothing else."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    ca = str(credentials.ca_file)
    env.update(
        HTTPS_PROXY=emulator.proxy_url,
        https_proxy=emulator.proxy_url,
        REQUESTS_CA_BUNDLE=ca,
        SSL_CERT_FILE=ca,
        NODE_EXTRA_CA_CERTS=ca,
    )
    return env


async def run(argv: list[str], env: dict[str, str], stdin: bytes = b"", cwd: Path | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(PEER_TIMEOUT_S):
            stdout, stderr = await process.communicate(stdin)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


def provider_jwt(credentials: DemoCredentials) -> str:
    return jwt.encode(
        {"iss": credentials.apns_team_id, "iat": int(time.time())},
        credentials.apns_key_file.read_bytes(),
        algorithm="ES256",
        headers={"kid": credentials.apns_key_id},
    )


async def test_firebase_admin_unmodified_through_the_proxy(proxied):
    emulator, credentials = proxied
    config = {"service_account_file": str(credentials.fcm_service_account_file), "tokens": ["proxy-phone", "unregistered-x"]}
    output = await run(
        [sys.executable, str(PEERS / "firebase_proxy_peer.py")],
        proxy_env(emulator, credentials),
        json.dumps(config).encode(),
    )
    sent, gone = json.loads(output)["results"]
    assert sent["name"].startswith(f"projects/{credentials.fcm_project_id}/messages/0:"), sent
    assert gone == {"error": "UnregisteredError", "http_status": 404}
    [entry] = emulator.inbox.entries(token="proxy-phone")
    assert entry.payload["notification"] == {"title": "Through the proxy", "body": "to proxy-phone"}
    assert emulator.stats.oauth_tokens_issued == 1


async def test_go_net_http_unmodified_through_the_proxy(proxied, tmp_path):
    emulator, credentials = proxied
    env = proxy_env(emulator, credentials)
    binary = tmp_path / "apnspeer"
    # Standard library only: no module download, so no network.
    build_env = {**env, "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
    await run(["go", "build", "-o", str(binary), str(PEERS / "proxy" / "main.go")], build_env, cwd=tmp_path)
    token = hex_token("60")
    output = await run(
        [str(binary), token, provider_jwt(credentials), credentials.apns_bundle_id, "https://example.com/"], env
    )
    result: dict[str, Any] = json.loads(output)
    assert "error" not in result, result
    assert (result["status"], result["proto"], result["body"]) == (200, "HTTP/2.0", ""), result
    assert UUID_RE.fullmatch(result["apns_id"])
    # The proxy refused the tunnel to any other host: Go reports the 403.
    assert "Forbidden" in result["other_error"], result
    [entry] = emulator.inbox.entries(token=token)
    assert (entry.environment, entry.message_id) == ("production", result["apns_id"])
    assert entry.payload["aps"]["alert"]["title"] == "Hello from Go"


async def test_every_host_over_http2_with_httpx(proxied):
    emulator, credentials = proxied
    verify = ssl_ctx_from(emulator.ca_pem)
    async with httpx.AsyncClient(http2=True, proxy=emulator.proxy_url, verify=verify, trust_env=False, timeout=10) as c:
        headers = {"authorization": f"bearer {provider_jwt(credentials)}", "apns-topic": credentials.apns_bundle_id}
        for host, environment in (("api.push.apple.com", "production"), ("api.sandbox.push.apple.com", "sandbox")):
            response = await c.post(f"https://{host}/3/device/{hex_token('61')}", headers=headers, content=b'{"aps":{}}')
            assert (response.status_code, response.http_version) == (200, "HTTP/2")
            assert ("apns-unique-id" in response.headers) == (environment == "sandbox")
        gone = await c.post(f"https://api.push.apple.com/3/device/{hex_token('0410')}", headers=headers, content=b'{"aps":{}}')
        assert (gone.status_code, gone.json()["reason"]) == (410, "Unregistered")
        inbox = await c.get("https://fcm.googleapis.com/_emulator/inbox")
        assert [e["environment"] for e in inbox.json()] == ["production", "sandbox"]
        token = await c.post("https://oauth2.googleapis.com/token", data={"grant_type": "x"})
        assert (token.status_code, token.json()["error"]) == (400, "unsupported_grant_type")


async def connect_raw(emulator: Emulator, request: bytes) -> bytes:
    host, port = emulator.proxy_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()  # until the proxy closes
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"CONNECT example.com:443 HTTP/1.1", b"403"),
        (b"CONNECT fcm.googleapis.com:80 HTTP/1.1", b"403"),
        (b"CONNECT api.push.apple.com.evil.test:443 HTTP/1.1", b"403"),
        (b"GET http://fcm.googleapis.com/ HTTP/1.1", b"405"),
        (b"CONNECT", b"400"),
    ],
)
async def test_the_proxy_refuses_everything_else(proxied, request_line, status):
    emulator, _ = proxied
    answer = await connect_raw(emulator, request_line + b"\r\nhost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 " + status), answer


async def test_the_proxy_never_dials_out_even_to_the_emulator(proxied):
    emulator, _ = proxied
    # The emulator's own FCM port is reachable from here: a dialling proxy would tunnel to it.
    port = emulator.fcm_url.rsplit(":", 1)[1]
    answer = await connect_raw(emulator, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer


async def test_no_proxy_unless_configured(emulator):
    with pytest.raises(RuntimeError, match="proxy mode is off"):
        _ = emulator.proxy_url


async def test_node_https_with_a_manual_connect(proxied):
    emulator, credentials = proxied
    output = await run(
        ["node", str(PEERS / "proxy" / "fcm_peer.mjs"), str(credentials.fcm_service_account_file), "node-phone"],
        proxy_env(emulator, credentials),
    )
    result = json.loads(output)
    assert (result["token_status"], result["send_status"]) == (200, 200), result
    assert result["name"].startswith(f"projects/{credentials.fcm_project_id}/messages/0:")
    assert result["other_error"] == "proxy answered 403"
    [entry] = emulator.inbox.entries(token="node-phone")
    assert entry.payload["notification"]["title"] == "Hello from Node"


def test_cli_proxy_and_control_ports(tmp_path):
    """`pushsvc emulator --proxy-port --control-port`: both work, and a proxy service account is written."""
    import selectors
    import signal
    import subprocess

    import requests

    state = tmp_path / "state"
    argv = [sys.executable, "-m", "pushsvc.emulator", "--apns-port", "0", "--apns-sandbox-port", "0",
            "--fcm-port", "0", "--proxy-port", "0", "--control-port", "0", "--state-dir", str(state)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: dict[str, str] = {}
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        assert selector.select(timeout=deadline - time.monotonic()), "the emulator printed nothing in 30 s"
        # The banner is written with one flush, and the proxy line is its last.
        for _ in range(40):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            name, _, value = line.strip().partition(" ")
            lines[name] = value.strip()
            if name == "proxy":
                break
        proxy_url = lines["proxy"].split()[0].removeprefix("HTTPS_PROXY=")
        session = requests.Session()
        session.trust_env = False
        stats = session.get(
            "https://fcm.googleapis.com/_emulator/stats",
            proxies={"https": proxy_url},
            verify=str(state / "ca.pem"),
            timeout=10,
        )
        assert stats.status_code == 200 and "fcm_requests" in stats.json()
        page = session.get(lines["web"].split()[-1], timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        proxy_account = json.loads((state / "service-account-proxy.json").read_text())
        assert proxy_account["token_uri"] == GOOGLE_TOKEN_URI
        assert json.loads((state / "service-account.json").read_text())["token_uri"] != GOOGLE_TOKEN_URI
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
