"""The Java client (Maven, JUnit 5 through Surefire) against a live server."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.clients.conftest import ROOT, LiveRun, assert_resumed, assert_smoke, require_tool
from tests.clients.devserver import CutDriver, DevServer

CLIENT = ROOT / "clients/java"
VERSION = re.search(r"<artifactId>pushsvc-client</artifactId>\s*<version>([^<]+)</version>", (CLIENT / "pom.xml").read_text())[1]


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


def test_java_package_has_sources_and_javadoc_jars_and_no_example(mvn: str, tmp_path: Path) -> None:
    """`mvn package` makes the library jar without the example, and its sources and javadoc jars."""
    out = subprocess.run(
        [mvn, "-B", "--no-transfer-progress", "-DskipTests", f"-DbuildDirectory={tmp_path}", "package"],
        cwd=CLIENT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stdout[-6000:]
    jars = {p.name: p for p in tmp_path.glob("*.jar")}
    assert set(jars) == {f"pushsvc-client-{VERSION}{suffix}.jar" for suffix in ("", "-sources", "-javadoc")}, jars
    with zipfile.ZipFile(jars[f"pushsvc-client-{VERSION}.jar"]) as library:
        names = library.namelist()
    assert "dev/pushsvc/client/ReceiptFollower.class" in names and "dev/pushsvc/v1/PushServiceGrpc.class" in names
    assert not [n for n in names if "example" in n.lower()], [n for n in names if "example" in n.lower()]
    with zipfile.ZipFile(jars[f"pushsvc-client-{VERSION}-sources.jar"]) as sources:
        names = sources.namelist()
    assert "dev/pushsvc/client/ReceiptFollower.java" in names and "dev/pushsvc/v1/PushServiceGrpc.java" in names
    assert not [n for n in names if "example" in n.lower()]
    with zipfile.ZipFile(jars[f"pushsvc-client-{VERSION}-javadoc.jar"]) as javadoc:
        names = javadoc.namelist()
    assert "index.html" in names and "dev/pushsvc/client/ReceiptFollower.html" in names
    # The example still compiles and runs: as a test source (test_java_smoke runs it).
    assert (CLIENT / "examples/dev/pushsvc/client/examples/SendAndFollow.java").is_file()
