"""The web inbox in a real headless Chromium, after real sends: DOM and screenshot checks.

Chromium is Debian's ``chromium`` (.ci/run installs it). Without it the
browser tests are skipped, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from PIL import Image

from pushsvc.emulator import Emulator

from .conftest import BUNDLE, JWT_GRANT, PROJECT, hex_token, ssl_ctx_from

CHROMIUM_TIMEOUT_S = 90.0
WINDOW = (1200, 900)
HEADER_RGB = (0x1D, 0x24, 0x33)
# A 1x1 PNG, so the image renders without any network.
IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture
async def ui(config, emu_clock, make_jwt, make_assertion) -> AsyncIterator[Emulator]:
    """An emulator with a control port, after three real sends (one rejected) and a fault set."""
    config.control_port = 0
    async with Emulator(config, clock=emu_clock) as emulator:
        async with httpx.AsyncClient(http2=True, verify=ssl_ctx_from(emulator.ca_pem), timeout=10) as client:
            grant = await client.post(emulator.token_uri, data={"grant_type": JWT_GRANT, "assertion": make_assertion()})
            assert grant.status_code == 200, grant.text
        await _send_three(emulator, make_jwt, grant.json()["access_token"])
        async with httpx.AsyncClient(timeout=10) as plain:
            response = await plain.post(emulator.control_url + "/_emulator/faults", json={"goaway_after": 1000})
            assert response.status_code == 200
        yield emulator


async def _send_three(emulator: Emulator, make_jwt, access_token: str) -> None:
    async with httpx.AsyncClient(http2=True, verify=ssl_ctx_from(emulator.ca_pem), timeout=10) as client:
        alert = {
            "aps": {
                "alert": {"title": "Order shipped", "body": "Arrives Friday"},
                "badge": 3,
                "sound": "chime.caf",
                "category": "ORDER",
            }
        }
        headers = {"apns-topic": BUNDLE, "authorization": f"bearer {make_jwt()}"}
        for token, title in ((hex_token("aa"), "Order shipped"), (hex_token("0410"), "Stale device")):
            alert["aps"]["alert"]["title"] = title
            response = await client.post(
                f"{emulator.apns_url}/3/device/{token}", headers=headers, content=json.dumps(alert).encode()
            )
            assert response.status_code in (200, 410)
        response = await client.post(
            f"{emulator.fcm_url}/v1/projects/{PROJECT}/messages:send",
            headers={"authorization": f"Bearer {access_token}"},
            json={"message": {"token": "pixel-7", "notification": {"title": "Hi from FCM", "body": "Dinner at 8?", "image": IMAGE}}},
        )
        assert response.status_code == 200, response.text


class _Cards(HTMLParser):
    """Collects the notification cards of a dumped DOM, in document order, and other tables."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, str]] = []
        self.fault_on: list[str] = []
        self.rules: int = 0
        self._depth = 0
        self._in_pre = False
        self._text: list[str] = []
        self._th = ""
        self._last_th = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if self._depth:
            self._depth += tag not in ("img", "input", "br")
            if tag == "pre":
                self._in_pre = True
        elif tag == "div" and "notification" in classes:
            self._depth = 1
            self._text = []
            self.cards.append({"token": attributes["data-token"], "status": attributes["data-status"], "text": "", "raw": ""})
        if tag == "img" and self._depth:
            self.cards[-1]["image"] = attributes.get("src", "")
        if tag == "tr" and "rule" in classes:
            self.rules += 1
        if tag == "td" and "on" in classes:
            self.fault_on.append(self._last_th)

    def handle_endtag(self, tag):
        if self._depth:
            if tag == "pre":
                self._in_pre = False
            self._depth -= 1
            if self._depth == 0:
                self.cards[-1]["text"] = " ".join("".join(self._text).split())

    def handle_data(self, data):
        if self._depth:
            if self._in_pre:
                self.cards[-1]["raw"] += data
            else:
                self._text.append(data + " ")
        self._th = data.strip() or self._th
        self._last_th = self._th


async def run_chromium(tmp_path: Path, *args: str) -> bytes:
    process = await asyncio.create_subprocess_exec(
        chromium_binary(),
        "--headless",
        "--no-sandbox",  # tests run as root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(CHROMIUM_TIMEOUT_S):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()[-2000:]
    return stdout


async def test_dom_lists_real_sends_newest_first_with_faults_and_tokens(ui, tmp_path):
    dom = await run_chromium(tmp_path, "--dump-dom", ui.control_url + "/_emulator/")
    page = _Cards()
    page.feed(dom.decode())
    assert [(c["token"], c["status"]) for c in page.cards] == [
        ("pixel-7", "200"),
        (hex_token("0410"), "410"),
        (hex_token("aa"), "200"),
    ]
    fcm, stale, shipped = page.cards
    assert "Hi from FCM" in fcm["text"] and "Dinner at 8?" in fcm["text"] and PROJECT in fcm["text"]
    assert fcm["image"] == IMAGE
    assert "Stale device" in stale["text"] and "410 Unregistered" in stale["text"]
    for part in ("Order shipped", "Arrives Friday", BUNDLE, "200 delivered", "sound: chime.caf", "category: ORDER", "3"):
        assert part in shipped["text"], (part, shipped["text"])
    # The raw request is in the card, behind a <details> click.
    raw = json.loads(shipped["raw"])
    assert raw["headers"]["apns-topic"] == BUNDLE and "authorization" not in raw["headers"]
    assert raw["payload"]["aps"]["alert"]["title"] == "Order shipped"
    assert page.fault_on == ["goaway_after"]
    assert page.rules == 15


async def test_dom_filters_from_the_address(ui, tmp_path):
    url = ui.control_url + "/_emulator/?platform=apns&status=error"
    page = _Cards()
    page.feed((await run_chromium(tmp_path, "--dump-dom", url)).decode())
    assert [c["token"] for c in page.cards] == [hex_token("0410")]
    page = _Cards()
    page.feed((await run_chromium(tmp_path, "--dump-dom", ui.control_url + "/_emulator/?token=pixel")).decode())
    assert [c["token"] for c in page.cards] == ["pixel-7"]


async def test_screenshot_is_a_rendered_page_of_the_window_size(ui, tmp_path):
    shot = tmp_path / "inbox.png"
    await run_chromium(
        tmp_path,
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        ui.control_url + "/_emulator/",
    )
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == WINDOW
        rgb = image.convert("RGB")
        assert rgb.getpixel((5, 5)) == HEADER_RGB  # the page's header bar, not a blank or error page
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 100  # text, cards, badges: far from blank


async def test_page_on_every_tls_port_embeds_the_snapshot(ui):
    async with httpx.AsyncClient(http2=True, verify=ssl_ctx_from(ui.ca_pem), timeout=10) as client:
        for base in (ui.apns_url, ui.fcm_url):
            response = await client.get(base + "/_emulator/")
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert "Hi from FCM" in response.text and "<script" in response.text
    async with httpx.AsyncClient(timeout=10) as plain:
        root = await plain.get(ui.control_url + "/")
        assert (root.status_code, root.headers["location"]) == (302, "/_emulator/")
        feed = (await plain.get(ui.control_url + "/_emulator/inbox?rejected=1&display=1")).json()
        assert [item["display"]["title"] for item in feed] == ["Order shipped", "Stale device", "Hi from FCM"]
