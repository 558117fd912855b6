"""The Go client (`go test` and the example program) against a live server."""

from __future__ import annotations

import pytest

from tests.clients.conftest import ROOT, LiveRun, assert_resumed, assert_smoke, require_tool
from tests.clients.devserver import CutDriver, DevServer

CLIENT = ROOT / "clients/go"


@pytest.fixture(scope="module")
def go() -> str:
    """The go binary (the example is built once, then `go test` reuses the build cache)."""
    return require_tool("go", "go", "/usr/local/go/bin/go")


def test_go_smoke(go: str, smoke_server: DevServer, live: LiveRun) -> None:
    env = live.env(smoke_server)
    out = live.run([go, "run", "./examples/send-and-follow", "-target", smoke_server.target], env, CLIENT, 400)
    assert "DELIVERY_STATUS_DELIVERED after 1 attempt(s)" in out.stdout
    assert out.stdout.rstrip().endswith("stream ended with OK")
    out = live.run([go, "test", "-count=1", "-v", "-run", "^TestSmoke$", "."], env, CLIENT, 400)
    assert "--- PASS: TestSmoke" in out.stdout
    assert_smoke(live.result("smoke"))


def test_go_resume(go: str, resume_server: DevServer, live: LiveRun) -> None:
    with CutDriver(resume_server, live.cut_dir) as driver:
        out = live.run([go, "test", "-count=1", "-v", "-run", "^TestResume$", "."],
                       live.env(resume_server, cut=True), CLIENT, 400)
    assert "--- PASS: TestResume" in out.stdout
    assert_resumed(live.result("resume"), resume_server, driver)
