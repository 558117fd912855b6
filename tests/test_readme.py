"""README.md is a front door: small, its links lead somewhere, and its commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Markdown links and images: [text](target); targets with a scheme are left alone.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _nav_pages(nav: object) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, list):
        return {p for item in nav for p in _nav_pages(item)}
    if isinstance(nav, dict):
        return {p for value in nav.values() for p in _nav_pages(value)}
    return set()


def test_the_readme_stays_small() -> None:
    # Everything past the landing page lives in docs/ (issue 23: "at most about 8 KB").
    assert len(README.read_bytes()) <= 8 * 1024


def test_every_relative_link_resolves() -> None:
    text = README.read_text()
    targets = [t for t in LINK.findall(text) if "://" not in t and not t.startswith("#")]
    assert len(targets) >= 20, "the README links into the docs"
    for target in targets:
        path = (ROOT / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"README.md links to {target}, which does not exist"
        anchor = target.partition("#")[2]
        if anchor and path.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.MULTILINE)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"README.md links to {target}, but {path.name} has no heading #{anchor}"


def test_every_docs_page_it_links_is_on_the_site() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    linked = {t.split("#", 1)[0].removeprefix("docs/") for t in LINK.findall(README.read_text()) if t.startswith("docs/")}
    assert linked, "the README links into docs/"
    assert linked <= pages, f"linked from README.md but not in mkdocs.yml's nav: {sorted(linked - pages)}"


def test_the_quick_start_commands_are_the_ones_ci_runs() -> None:
    text = README.read_text()
    assert "```sh\nscripts/install && .venv/bin/pushsvc dev\n```" in text
    assert "```sh\nscripts/test\n```" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^scripts/install$", ci, flags=re.MULTILINE)
    assert re.search(r"^scripts/test$", ci, flags=re.MULTILINE)


def test_the_first_send_is_the_one_the_dev_server_answers() -> None:
    # The receipts the README promises follow from these tokens: the emulator's test tokens in the default scenario.
    text = README.read_text()
    for call in ("PushService/RegisterToken", "PushService/Send", "PushService/StreamReceipts"):
        assert call in text
    scenario = (ROOT / "pushsvc" / "emulator" / "default_scenario.toml").read_text()
    assert '"0410"' in scenario and '"quota-"' in scenario
    assert '"token":"04100000000000000000000000000000000000000000000000000000000000a1"' in text
    assert '"token":"quota-alice-pixel"' in text
