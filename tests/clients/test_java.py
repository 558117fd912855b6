"""The Java client (Maven, JUnit 5 through Surefire) against a live server."""

from __future__ import annotations

import pytest

from tests.clients.conftest import ROOT, LiveRun, assert_resumed, assert_smoke, require_tool
from tests.clients.devserver import CutDriver, DevServer

CLIENT = ROOT / "clients/java"


@pytest.fixture(scope="module")
def mvn() -> str:
    """Maven (with a JDK 17 or newer; it reuses ~/.m2 after the first download)."""
    require_tool("java")
    return require_tool("mvn")


def _mvn_test(mvn: str, tests: str) -> list[str]:
    return [mvn, "-B", "--no-transfer-progress", "test", f"-Dtest=LiveTest#{tests}", "-Dsurefire.failIfNoSpecifiedTests=true"]


def test_java_smoke(mvn: str, smoke_server: DevServer, live: LiveRun) -> None:
    out = live.run(_mvn_test(mvn, "smoke+example"), live.env(smoke_server), CLIENT, 600)
    assert "Tests run: 2, Failures: 0, Errors: 0, Skipped: 0" in out.stdout
    assert_smoke(live.result("smoke"))


def test_java_resume(mvn: str, resume_server: DevServer, live: LiveRun) -> None:
    with CutDriver(resume_server, live.cut_dir) as driver:
        out = live.run(_mvn_test(mvn, "resume"), live.env(resume_server, cut=True), CLIENT, 600)
    assert "Tests run: 1, Failures: 0, Errors: 0, Skipped: 0" in out.stdout
    assert_resumed(live.result("resume"), resume_server, driver)
