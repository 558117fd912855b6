"""The TypeScript client (compiled with tsc, run by node's test runner) against a live server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.clients.conftest import ROOT, LiveRun, assert_resumed, assert_smoke, require_tool
from tests.clients.devserver import CutDriver, DevServer

CLIENT = ROOT / "clients/typescript"


@pytest.fixture(scope="module")
def node() -> str:
    """node, with the package's pinned dependencies installed (npm ci) and compiled (tsc)."""
    node = require_tool("node")
    npm = require_tool("npm")
    if not (CLIENT / "node_modules/.package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=CLIENT, check=True, timeout=400)
    subprocess.run([npm, "run", "--silent", "build"], cwd=CLIENT, check=True, timeout=400)
    return node


def _node_test(node: str, name: str) -> list[str]:
    return [node, "--test", "--test-reporter=spec", f"--test-name-pattern=^{name}$", str(Path("dist/test/live.test.js"))]


def test_typescript_smoke(node: str, smoke_server: DevServer, live: LiveRun) -> None:
    env = live.env(smoke_server)
    out = live.run([node, "dist/examples/send-and-follow.js", smoke_server.target], env, CLIENT, 120)
    assert "DELIVERY_STATUS_DELIVERED after 1 attempt(s)" in out.stdout
    assert out.stdout.rstrip().endswith("stream ended with OK")
    out = live.run(_node_test(node, "smoke"), env, CLIENT, 120)
    assert "ℹ pass 1" in out.stdout and "ℹ fail 0" in out.stdout
    assert_smoke(live.result("smoke"))


def test_typescript_resume(node: str, resume_server: DevServer, live: LiveRun) -> None:
    with CutDriver(resume_server, live.cut_dir) as driver:
        out = live.run(_node_test(node, "resume"), live.env(resume_server, cut=True), CLIENT, 240)
    assert "ℹ pass 1" in out.stdout and "ℹ fail 0" in out.stdout
    assert_resumed(live.result("resume"), resume_server, driver)
