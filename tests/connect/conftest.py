"""pushsvc with its Connect port on: apps alpha and beta on the emulator, API-key and JWT principals, no TLS."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pushsvc.access import hash_key, new_key
from pushsvc.bootstrap import Application, build_application
from pushsvc.config import ApiKeySettings, AuthSettings, JwtIssuerSettings, Settings
from pushsvc.devstack import demo_app_settings
from pushsvc.emulator import Emulator, EmulatorConfig, make_demo_credentials
from tests.auth.pki import AUDIENCE, ISSUER, JwtSigner
from tests.conftest import FAST_DISPATCH

ACTIONS = ("register", "send", "read", "prune")


@dataclasses.dataclass
class ConnectStack:
    """A running pushsvc with its Connect port, and the credentials of each principal."""

    app: Application
    keys: dict[str, str]
    """action -> API key allowed only that action, on app alpha."""
    admin_key: str
    """`admin` on alpha and beta."""
    jwts: dict[str, str]
    """action -> JWT allowed only that action, on app alpha."""
    stopped: bool = False
    """Set by a test that stopped the app itself."""

    @property
    def base_url(self) -> str:
        """The Connect base URL."""
        return f"http://127.0.0.1:{self.app.connect_port}"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[ConnectStack]:
    """The stack, started; stopped with the emulator afterwards."""
    emulator = Emulator(EmulatorConfig())
    await emulator.start()
    try:
        credentials, apns_key, fcm_account = make_demo_credentials(
            tmp_path / "demo", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        emulator.add_apns_key(apns_key)
        emulator.add_fcm_account(fcm_account)
        signer = JwtSigner()
        public_key = tmp_path / "jwt.pem"
        public_key.write_bytes(signer.public_pem)
        keys = {action: new_key() for action in ACTIONS}
        admin_key = new_key()
        api_keys = [ApiKeySettings(name=f"alpha-{a}", hash=hash_key(k), apps=("alpha",), actions=(a,)) for a, k in keys.items()]
        api_keys.append(ApiKeySettings(name="ops", hash=hash_key(admin_key), apps=("alpha", "beta"), actions=("admin",)))
        settings = Settings(
            store_url=f"mongomock://localhost/c{uuid.uuid4().hex[:12]}",
            host="127.0.0.1",
            port=0,
            apps={app: demo_app_settings(app, emulator, credentials) for app in ("alpha", "beta")},
            dispatch=FAST_DISPATCH,
            auth=AuthSettings(
                api_keys=tuple(api_keys),
                jwt=(JwtIssuerSettings(issuer=ISSUER, audience=AUDIENCE, public_key_file=public_key),),
            ),
        )
        app = build_application(settings, connect=True)
        await app.start()
    except BaseException:
        await emulator.stop()
        raise
    jwts = {a: signer.mint(f"alpha-{a}", a, ["alpha"]) for a in ACTIONS}
    stack = ConnectStack(app=app, keys=keys, admin_key=admin_key, jwts=jwts)
    try:
        yield stack
    finally:
        if not stack.stopped:
            await app.stop(0)
        await emulator.stop()


@dataclasses.dataclass
class CurlAnswer:
    """What curl got: HTTP status, content type and body."""

    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def curl(url: str, body: bytes | str, *, credential: str | None = None, content_type: str = "application/json",
         headers: tuple[str, ...] = (), timeout_s: float = 30) -> CurlAnswer:
    """One POST with the curl command-line tool (a blocking call: run it in a thread from async tests)."""
    exe = shutil.which("curl")
    if exe is None:
        pytest.skip("curl is not installed")
    args = [exe, "-sS", "--max-time", str(timeout_s), "-o", "-", "-w", "\n%{http_code} %{content_type}", "-X", "POST",
            "-H", f"content-type: {content_type}", "--data-binary", "@-"]
    if credential is not None:
        args += ["-H", f"authorization: Bearer {credential}"]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run([*args, url], input=body.encode() if isinstance(body, str) else body, capture_output=True,
                         timeout=timeout_s + 5, check=True).stdout
    body_out, _, tail = out.rpartition(b"\n")
    status, _, ctype = tail.decode().partition(" ")
    return CurlAnswer(int(status), ctype, body_out)


def bad_request_fields(error: dict[str, Any]) -> dict[str, str]:
    """field -> description of the google.rpc.BadRequest detail of a Connect JSON error."""
    from google.rpc import error_details_pb2

    out: dict[str, str] = {}
    for detail in error.get("details", ()):
        if detail["type"] == "google.rpc.BadRequest":
            value = detail["value"]
            bad = error_details_pb2.BadRequest.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))
            out.update({v.field: v.description for v in bad.field_violations})
    return out


def envelope(payload: bytes, flags: int = 0) -> bytes:
    """One message of a Connect or gRPC-web stream: flags, big-endian length, payload."""
    return bytes([flags]) + len(payload).to_bytes(4, "big") + payload


def unenvelope(data: bytes) -> list[tuple[int, bytes]]:
    """The (flags, payload) messages of a Connect or gRPC-web stream body."""
    out, pos = [], 0
    while pos < len(data):
        flags, length = data[pos], int.from_bytes(data[pos + 1 : pos + 5], "big")
        out.append((flags, data[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    assert pos == len(data), "a truncated envelope"
    return out
