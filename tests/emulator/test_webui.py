"""The web inbox in a real headless Chromium, after real sends: DOM and screenshot checks.

Chromium is Debian's ``chromium`` (.ci/run installs it). Without it the
browser tests are skipped, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from PIL import Image

from pushsvc import locales
from pushsvc.config import DispatchSettings
from pushsvc.devstack import DevStack, start_dev_stack
from pushsvc.emulator import Emulator, EmulatorConfig
from pushsvc.emulator.display import LOCALE_KEY, NOTIFICATION_ID_KEY
from pushsvc.providers import rendering
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc

from .browser import Browser
from .conftest import BUNDLE, JWT_GRANT, PROJECT, START, hex_token, ssl_ctx_from

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
            },
            "order_id": "A-1001",
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
            json={"message": {"token": "pixel-7", "notification": {"title": "Hi from FCM", "body": "Dinner at 8?", "image": IMAGE},
                              "data": {"chat": "dinner", "seats": "4"}}},
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


# --- Clicking in the page: Chromium over the DevTools protocol (tests/emulator/browser.py).

CARDS = "[...document.querySelectorAll('#list .notification')]"


def _cards_in(browser: Browser) -> list[dict[str, Any]]:
    return browser.evaluate(
        CARDS + """.map(c => ({
            token: c.dataset.token,
            when: c.querySelector('.when').textContent,
            link: c.querySelector('a.notification-id') && c.querySelector('a.notification-id').getAttribute('href'),
            linkText: c.querySelector('a.notification-id') && c.querySelector('a.notification-id').textContent,
            data: c.querySelector('details.data') ? Object.fromEntries([...c.querySelectorAll('details.data tr')]
                .map(r => [r.querySelector('th').textContent, r.querySelector('td').textContent])) : null,
        }))"""
    )


def _in_browser(tmp_path: Path, steps: Callable[[Browser], Any]) -> Any:
    browser = Browser(chromium_binary(), tmp_path / "profile", window=WINDOW, timeout_s=CHROMIUM_TIMEOUT_S)
    try:
        return steps(browser)
    finally:
        browser.close()


async def test_clear_button_empties_the_inbox_through_the_control_api(ui, tmp_path):
    assert len(ui.inbox.answered()) == 3

    def steps(browser: Browser) -> tuple[int, str, int]:
        browser.open(ui.control_url + "/_emulator/")
        before = browser.evaluate(CARDS + ".length")
        browser.click("#clear")
        browser.wait_for("document.querySelector('#list .empty') !== null", "the list to empty")
        empty = browser.evaluate("document.querySelector('#list').textContent")
        # A reload shows what the emulator holds, not what the page remembers.
        browser.open(ui.control_url + "/_emulator/?reloaded=1")
        return before, empty, browser.evaluate(CARDS + ".length")

    before, empty, after_reload = await asyncio.to_thread(_in_browser, tmp_path, steps)
    assert before == 3
    assert empty == "No notifications yet." and after_reload == 0
    assert len(ui.inbox) == 0 and ui.inbox.answered() == []  # the rejection went too
    async with httpx.AsyncClient(timeout=10) as plain:
        assert (await plain.get(ui.control_url + "/_emulator/inbox?rejected=1")).json() == []


async def test_data_payload_opens_per_delivery_and_times_carry_a_utc_date(ui, tmp_path):
    def steps(browser: Browser) -> tuple[list[dict[str, Any]], list[bool], list[bool]]:
        browser.open(ui.control_url + "/_emulator/")
        cards = _cards_in(browser)
        shown = "[...document.querySelectorAll('details.data table')].map(t => t.checkVisibility())"
        closed = browser.evaluate(shown)
        browser.click("#list .notification[data-token='pixel-7'] details.data summary")
        return cards, closed, browser.evaluate(shown)

    cards, closed, opened = await asyncio.to_thread(_in_browser, tmp_path, steps)
    by_token = {c["token"]: c for c in cards}
    assert by_token["pixel-7"]["data"] == {"chat": "dinner", "seats": "4"}  # FCM data
    assert by_token[hex_token("aa")]["data"] == {"order_id": "A-1001"}  # APNs custom keys, without aps
    # Collapsed until clicked: newest first, so the FCM card's table is the first.
    assert closed == [False, False, False] and opened == [True, False, False]
    arrived = datetime.fromtimestamp(START, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    assert [c["when"] for c in cards] == [arrived] * 3
    assert all(c["link"] is None for c in cards)  # not sent by pushsvc: no notification id to link


@pytest.fixture
async def pushsvc_stack(tmp_path: Path) -> AsyncIterator[DevStack]:
    """pushsvc with its emulator (and the emulator's plain-HTTP control port), on the memory store."""
    stack = await start_dev_stack(
        state_dir=tmp_path / "dev", port=0, store_url=f"memory://webui-{uuid.uuid4().hex}",
        dispatch=DispatchSettings(poll_interval_s=0.05, initial_backoff_s=0.05, max_backoff_s=0.5),
        emulator_config=EmulatorConfig(control_port=0),
    )
    try:
        yield stack
    finally:
        await stack.stop(0)


async def test_each_delivery_links_to_its_pushsvc_notification(pushsvc_stack, tmp_path):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pushsvc_stack.app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        sent = []
        for n in range(2):
            devices = [pb.Device(token=hex_token(f"a{n}"), platform=pb.PLATFORM_APNS),
                       pb.Device(token=f"fcm-{n}", platform=pb.PLATFORM_FCM)]
            reply = await stub.Send(pb.SendRequest(
                app_id="demo", target=pb.Target(devices=pb.DeviceList(devices=devices)),
                message=pb.Message(title=f"Notification {n}", data={"n": str(n)})))
            sent.append(reply.notification_id)
            async for _ in stub.StreamReceipts(pb.StreamReceiptsRequest(app_id="demo", notification_id=reply.notification_id)):
                pass
    first, second = sent
    emulator = pushsvc_stack.emulator
    async with httpx.AsyncClient(timeout=10) as plain:
        only_first = (await plain.get(f"{emulator.control_url}/_emulator/inbox?notification_id={first}")).json()
    assert sorted(e["token"] for e in only_first) == sorted([hex_token("a0"), "fcm-0"])

    def steps(browser: Browser) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]]]:
        browser.open(emulator.control_url + "/_emulator/")
        every = _cards_in(browser)
        browser.click(f"#list .notification[data-token='{hex_token('a0')}'] a.notification-id")
        browser.wait_for(f"location.search === '?notification={first}' && document.readyState === 'complete'", "the link")
        return every, browser.evaluate("document.getElementById('f-notification').value"), _cards_in(browser)

    every, filter_value, linked = await asyncio.to_thread(_in_browser, tmp_path, steps)
    by_token = {c["token"]: c for c in every}
    assert set(by_token) == {hex_token("a0"), "fcm-0", hex_token("a1"), "fcm-1"}
    for n, notification_id in enumerate(sent):
        for token in (hex_token(f"a{n}"), f"fcm-{n}"):
            card = by_token[token]
            assert card["link"] == f"?notification={notification_id}" and notification_id in card["linkText"]
            # pushsvc's id rides in the data payload beside the caller's own keys, on both platforms.
            assert card["data"] == {"n": str(n), "pushsvc_notification_id": notification_id}, card
    # Following the link shows that notification's pushes and no other.
    assert filter_value == first
    assert sorted(c["token"] for c in linked) == sorted([hex_token("a0"), "fcm-0"])


def test_the_emulator_knows_pushsvcs_notification_id_key():
    assert NOTIFICATION_ID_KEY == rendering.NOTIFICATION_ID_KEY


def test_the_emulator_knows_pushsvcs_locale_key():
    assert LOCALE_KEY == locales.VARIANT_KEY


async def test_each_delivery_shows_the_locale_pushsvc_chose(pushsvc_stack, tmp_path):
    chosen = {  # token → (platform, device locale, the variant it gets: "" is the message's own content)
        hex_token("de"): (pb.PLATFORM_APNS, "de-AT", "de"),
        "fcm-br": (pb.PLATFORM_FCM, "pt-BR", "pt-BR"),
        "fcm-en": (pb.PLATFORM_FCM, "en-GB", ""),
    }
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pushsvc_stack.app.port}") as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        for token, (platform, locale, _) in chosen.items():
            await stub.RegisterToken(pb.RegisterTokenRequest(app_id="demo", token=token, platform=platform,
                                                             locale=locale, user_id="ana"))
        message = pb.Message(title="Hello", body="World", localized={
            "de": pb.LocalizedContent(title="Hallo", body="Welt"),
            "pt-BR": pb.LocalizedContent(title="Olá", body="Mundo"),
        })
        sent = await stub.Send(pb.SendRequest(app_id="demo", target=pb.Target(users=pb.UserList(user_ids=["ana"])),
                                              message=message))
        statuses = [r.receipt.status async for r in stub.StreamReceipts(
            pb.StreamReceiptsRequest(app_id="demo", notification_id=sent.notification_id))]
    assert statuses == [pb.DELIVERY_STATUS_DELIVERED] * 3
    emulator = pushsvc_stack.emulator
    async with httpx.AsyncClient(timeout=10) as plain:
        feed = (await plain.get(f"{emulator.control_url}/_emulator/inbox?notification_id={sent.notification_id}"
                                "&display=1")).json()
    # The inbox JSON: each delivery's display names its variant, beside the content of that variant.
    shown = {item["token"]: (item["display"]["locale"], item["display"]["title"]) for item in feed}
    assert shown == {hex_token("de"): ("de", "Hallo"), "fcm-br": ("pt-BR", "Olá"), "fcm-en": ("", "Hello")}

    def steps(browser: Browser) -> list[dict[str, Any]]:
        browser.open(emulator.control_url + "/_emulator/")
        return browser.evaluate(CARDS + """.map(c => ({
            token: c.dataset.token,
            title: c.querySelector('.title').textContent,
            locale: c.querySelector('.chip.locale') && c.querySelector('.chip.locale').textContent,
        }))""")

    cards = await asyncio.to_thread(_in_browser, tmp_path, steps)
    assert {c["token"]: (c["locale"], c["title"]) for c in cards} == {
        hex_token("de"): ("locale: de", "Hallo"), "fcm-br": ("locale: pt-BR", "Olá"), "fcm-en": (None, "Hello"),
    }
