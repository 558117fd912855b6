"""A channel's emulator handler, named by its registry entry, is served, controlled and credentialed with no edit to the emulator."""

from __future__ import annotations

import dataclasses
import json
import ssl
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from pushsvc.channels import registry
from pushsvc.emulator import Emulator, EmulatorConfig, make_demo_credentials
from pushsvc.emulator.credentials import read_manifest, write_manifest
from pushsvc.emulator.handlers import HandlerContext, HandlerSpec, write_private
from pushsvc.emulator.site import Request, Response


class _Pager:
    """A made-up push service: POST /pager/<id> is recorded; POST /_emulator/pager/devices mints an id."""

    def __init__(self, ctx: HandlerContext) -> None:
        self._ctx = ctx
        self.accepted: dict[str, str] = {}
        self.received: list[bytes] = []
        ctx.stats.register("pager")

    def owns(self, path: str) -> bool:
        return path.startswith("/pager/")

    def handle(self, request: Request) -> Response:
        self._ctx.stats.count("pager")
        if request.header("authorization") != f"Key {self.accepted.get('pager_key')}":
            return Response.json(401, {"error": "bad key"})
        self.received.append(request.body)
        return Response.json(200, {"id": request.path.removeprefix("/pager/")})

    def control(self, action: str) -> Callable[[dict[str, Any]], tuple[int, Any]] | None:
        if action != "devices":
            return None

        def mint(options: dict[str, Any]) -> tuple[int, Any]:
            if "name" not in options:
                raise ValueError("name is required")
            return 201, {"device": f"dev-{options['name']}"}

        return mint

    def accept(self, entries: Mapping[str, str]) -> None:
        self.accepted = {"pager_key": Path(entries["pager_key_file"]).read_text()}

    def urls(self) -> dict[str, str]:
        return {"pager_url": self._ctx.origin()}

    def attributes(self) -> Mapping[str, Callable[[], Any]]:
        return {"pager_url": lambda: self.urls()["pager_url"], "pager": lambda: self}


def _demo_credentials(directory: Path) -> dict[str, str]:
    write_private(directory / "pager-key", b"k-123")
    return {"pager_key_file": str(directory / "pager-key")}


@pytest.fixture
def pager_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("pager_handler_for_tests")
    module.HANDLER = HandlerSpec(channel="pager", build=_Pager, demo_credentials=_demo_credentials)  # type: ignore[attr-defined]  # a module built here
    monkeypatch.setitem(sys.modules, module.__name__, module)
    pager = dataclasses.replace(registry.CHANNELS[-1], settings_key="pager", emulator_handler=module.__name__)
    monkeypatch.setattr(registry, "CHANNELS", (*registry.CHANNELS, pager))


async def test_a_registered_handler_is_served_controlled_and_credentialed(pager_channel: None, tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig()) as emulator:
        credentials, _, _ = make_demo_credentials(tmp_path, token_uri=emulator.token_uri, ca_pem=emulator.ca_pem)
        assert (tmp_path / "pager-key").stat().st_mode & 0o777 == 0o600
        emulator.accept_demo_credentials(credentials)
        # Over real HTTP/2 and TLS, on the shared port, beside FCM.
        context = ssl.create_default_context(cadata=emulator.ca_pem.decode())
        async with httpx.AsyncClient(http2=True, verify=context) as client:
            minted = await client.post(f"{emulator.fcm_url}/_emulator/pager/devices", json={"name": "a"})
            assert (minted.status_code, minted.json()) == (201, {"device": "dev-a"})
            assert (await client.post(f"{emulator.fcm_url}/_emulator/pager/devices", json={})).status_code == 400
            assert (await client.get(f"{emulator.fcm_url}/_emulator/pager/devices")).status_code == 405
            assert (await client.post(f"{emulator.fcm_url}/_emulator/pager/nothing", json={})).status_code == 404
            sent = await client.post(f"{emulator.pager_url}/pager/dev-a", content=b"hi", headers={"authorization": "Key k-123"})
            assert (sent.status_code, sent.json(), sent.http_version) == (200, {"id": "dev-a"}, "HTTP/2")
            refused = await client.post(f"{emulator.fcm_url}/pager/dev-a", headers={"authorization": "Key other"})
            assert refused.status_code == 401
            # FCM's own paths still reach FCM.
            assert (await client.post(f"{emulator.fcm_url}/v1/projects/p/messages:send", json={})).status_code == 401
            stats = (await client.get(f"{emulator.fcm_url}/_emulator/stats")).json()
        assert emulator.pager.received == [b"hi"]
        assert stats["pager_requests"] == 2 and emulator.stats.pager_requests == 2
        assert stats["webpush_requests"] == 0 and stats["hms_requests"] == 0
        # The manifest carries its URL and credentials, and reads back for `pushsvc deliver`.
        manifest = write_manifest(tmp_path, emulator, credentials)
        assert json.loads(manifest.read_text())["pager_key_file"] == str(tmp_path / "pager-key")
        urls, again = read_manifest(manifest)
        assert urls["pager_url"] == emulator.fcm_url
        assert again.channels == credentials.channels
        with pytest.raises(AttributeError):
            emulator.no_such_thing  # noqa: B018  (the attribute access is the test)
