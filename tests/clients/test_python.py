"""The Python client, installed into a venv of its own, against a live server."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import ROOT, LiveRun, assert_resumed, assert_smoke
from tests.clients.devserver import CutDriver, DevServer

CLIENT = ROOT / "clients/python"
SERVER_DEPS = ("pymongo", "mongomock", "httpx", "pycurl", "pushsvc")


@pytest.fixture(scope="session")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only pushsvc-client (and pytest to run its tests)."""
    venv = tmp_path_factory.mktemp("client-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin/python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(CLIENT), "pytest>=8"],
        check=True, timeout=400,
    )
    return py


def test_client_installs_without_server_dependencies(client_python: Path) -> None:
    probe = "import importlib.util as u, sys; print(','.join(m for m in sys.argv[1:] if u.find_spec(m)))"
    found = subprocess.run(
        [str(client_python), "-c", probe, *SERVER_DEPS],
        capture_output=True, text=True, check=True, timeout=60, cwd=client_python.parent,
    ).stdout.strip()
    assert found == "", f"the client venv has server dependencies: {found}"
    subprocess.run([str(client_python), "-c", "import pushsvc_client, pushsvc_client.v1.push_pb2_grpc"],
                   check=True, timeout=60, cwd=client_python.parent)


def test_client_type_checks_against_its_stub_hints() -> None:
    """The hand-written client, examples and tests pass mypy --strict against the generated .pyi."""
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI"):
            pytest.fail("mypy is missing; CI installs the dev extra")
        pytest.skip("mypy is not installed (it comes with the dev extra)")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "src/pushsvc_client", "examples", "tests"],
        cwd=CLIENT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _pytest(client_python: Path, select: str) -> list[str]:
    return [str(client_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_live.py", "-k", select]


def test_python_channel_helper(client_python: Path) -> None:
    """Retries, deadlines, credentials metadata and resumption, against a grpc server of the test's own."""
    out = subprocess.run([str(client_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_channel.py"],
                         cwd=CLIENT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "7 passed" in out.stdout


def test_python_public_names_match_the_snapshot(client_python: Path) -> None:
    """The installed distribution exports exactly the committed names (clients/python/tests/test_exports.py)."""
    out = subprocess.run([str(client_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_exports.py"],
                         cwd=CLIENT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout


def test_python_operator_options(client_python: Path) -> None:
    """--server and its deprecated alias, --version, the receipts table: without a server, and without the server's packages."""
    out = subprocess.run([str(client_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cli.py"],
                         cwd=CLIENT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 passed" in out.stdout


def test_python_smoke(client_python: Path, smoke_server: DevServer, live: LiveRun) -> None:
    out = live.run(_pytest(client_python, "smoke or example"), live.env(smoke_server), CLIENT, 180)
    assert "2 passed" in out.stdout
    assert_smoke(live.result("smoke"))


def test_python_operator_commands(client_python: Path, smoke_server: DevServer, live: LiveRun) -> None:
    out = live.run([str(client_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cli_live.py"],
                   live.env(smoke_server), CLIENT, 240)
    assert "10 passed" in out.stdout


def test_python_resume(client_python: Path, resume_server: DevServer, live: LiveRun) -> None:
    with CutDriver(resume_server, live.cut_dir) as driver:
        out = live.run(_pytest(client_python, "resume"), live.env(resume_server, cut=True), CLIENT, 240)
    assert "1 passed" in out.stdout
    assert_resumed(live.result("resume"), resume_server, driver)
