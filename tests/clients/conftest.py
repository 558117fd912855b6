"""Fixtures for the clients' tests: live `pushsvc dev` servers and toolchains.

Each language's smoke and resume tests run in that language's own test runner
(pytest in a client-only venv, `go test`, `node --test`, Maven); these fixtures
start the server they run against. A missing toolchain skips with its reason,
except under CI (`CI` set), where it fails: no language is dropped silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.devserver import ROOT, CutDriver, DevServer


def require_tool(name: str, *candidates: str) -> str:
    """The path of a toolchain binary; skips (or fails under CI) when it is missing."""
    for candidate in candidates or (name,):
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    reason = f"{name} is not installed (looked for {', '.join(candidates or (name,))})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI needs every client's toolchain")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def smoke_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """`pushsvc dev` on its in-memory store, shared by the smoke tests (and stopped after them)."""
    server = DevServer("mongomock://localhost/pushsvc", tmp_path_factory.mktemp("smoke-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


RESUME_SCENARIO = """
[[fcm]]
prefix = "quota-"
description = "resume tests: 429 twice, 4 s apart, so the notification outlives the cut"
answers = [{ status = 429, error_code = "QUOTA_EXCEEDED", retry_after_s = 4, times = 2 }]
"""


@pytest.fixture
def resume_server(ferretdb_base_url: str | None, tmp_path: Path) -> Iterator[DevServer]:
    """`pushsvc dev` on a fresh FerretDB database, so that it can be restarted."""
    if ferretdb_base_url is None:
        reason = "the resume tests need FerretDB (PUSHSVC_TEST_FERRETDB_URL unset and no binary)"
        if os.environ.get("CI") or os.environ.get("PUSHSVC_REQUIRE_FERRETDB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    server = DevServer(f"{ferretdb_base_url}c{uuid.uuid4().hex[:16]}", tmp_path / "server")
    server.start()
    # The resume tests send to 100 "quota-" tokens so that the notification is
    # still running when the stream is cut. By default they answer 429 once with
    # Retry-After: 1, and a client that starts slowly (the JVM) could read its
    # first 50 receipts after the notification had already finished, with the
    # rest and the final status already buffered: no cut. Here they answer 429
    # twice with Retry-After: 4 until the restart, whose fresh emulator has the
    # defaults again.
    server.load_scenario(RESUME_SCENARIO)
    try:
        yield server
    finally:
        server.stop()


class LiveRun:
    """Runs one language's test command against a server and reads its result."""

    def __init__(self, tmp_path: Path) -> None:
        self.result_dir = tmp_path / "results"
        self.result_dir.mkdir()
        self.cut_dir = tmp_path / "cut"

    def env(self, server: DevServer, *, cut: bool = False) -> dict[str, str]:
        env = {**os.environ, "PUSHSVC_TARGET": server.target, "PUSHSVC_APP_ID": "demo",
               "PUSHSVC_RESULT_DIR": str(self.result_dir)}
        if cut:
            env["PUSHSVC_CUT_DIR"] = str(self.cut_dir)
            env["PUSHSVC_CUT_AFTER"] = "50"
        return env

    def run(self, cmd: list[str], env: dict[str, str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        assert out.returncode == 0, f"{' '.join(cmd)} exited {out.returncode}\n{out.stdout[-6000:]}\n{out.stderr[-6000:]}"
        return out

    def result(self, name: str) -> dict:
        path = self.result_dir / f"{name}.json"
        assert path.exists(), f"the {name} test wrote no result (did it run?)"
        return json.loads(path.read_text())


@pytest.fixture
def live(tmp_path: Path) -> LiveRun:
    """A place for one language run's results and cut signals."""
    return LiveRun(tmp_path)


def assert_smoke(result: dict) -> None:
    """What every language's smoke test reports: three receipts, then OK."""
    assert result["receipts"] == 3
    assert result["status"] == "OK"


def assert_resumed(result: dict, server: DevServer, driver: CutDriver) -> None:
    """The stream was cut by a restart and every receipt came exactly once."""
    assert driver.error is None, f"restarting the server failed: {driver.error!r}"
    assert driver.restarted.is_set(), "the server was never restarted"
    assert server.starts == 2
    assert result["receipts"] == 300
    assert result["unique_tokens"] == 300
    assert result["unique_cursors"] == 300
    assert result["resumes"] >= 1
    assert result["status"] == "OK"


_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remembers each language test's outcome for the summary below."""
    if "tests/clients/" in report.nodeid and (report.when == "call" or report.outcome != "passed"):
        _OUTCOMES[report.nodeid.split("::", 1)[-1]] = report.outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints every client's smoke and resume result, so CI's log shows each one."""
    if _OUTCOMES:
        terminalreporter.section("clients against a live pushsvc dev")
        for name, outcome in sorted(_OUTCOMES.items()):
            terminalreporter.write_line(f"{name}: {outcome.upper()}")


__all__ = ["ROOT", "assert_resumed", "assert_smoke", "require_tool"]
