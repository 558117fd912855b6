"""Shared fixtures: storage backends, a real gRPC server on port 0, the dev stack.

Backends: every test that takes `store_url` runs once per backend:
- `memory`: the in-process reference adapter;
- `mongomock`: the embedded store of `pushsvc dev`;
- `ferretdb`: a real MongoDB-wire-protocol server. It is used when
  PUSHSVC_TEST_FERRETDB_URL names one (CI sets it), or started here with
  scripts/ferretdb when its binary is installed (scripts/install-ferretdb).
  When neither is possible the test is skipped with that reason, or fails
  when PUSHSVC_REQUIRE_FERRETDB=1 (CI), so a backend is never dropped silently;
- `postgres`: a real PostgreSQL server, each test in a schema of its own. It
  is used when PUSHSVC_TEST_POSTGRES_URL names one (scripts/test starts one),
  or started here with scripts/postgres when Debian's server is installed;
  otherwise skipped, or failed when PUSHSVC_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from pushsvc.bootstrap import Application, build_application
from pushsvc.clock import ManualClock
from pushsvc.config import DispatchSettings, Settings
from pushsvc.devstack import DevStack, start_dev_stack
from pushsvc.v1 import push_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["memory", "mongomock", "ferretdb", "postgres"]
FERRETDB_BIN = Path(os.environ.get("FERRETDB_BIN", Path.home() / ".cache/pushsvc/ferretdb"))


@pytest.fixture(scope="session")
def ferretdb_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """The URL of a FerretDB server, or None when there is none (the reason is then known)."""
    url = os.environ.get("PUSHSVC_TEST_FERRETDB_URL")
    if url:
        yield url.rstrip("/") + "/"
        return
    if not FERRETDB_BIN.exists():
        yield None
        return
    state = tmp_path_factory.mktemp("ferretdb")
    out = subprocess.run(
        [str(ROOT / "scripts/ferretdb"), "start", str(state)], capture_output=True, text=True, check=True, timeout=60
    )
    try:
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(ROOT / "scripts/ferretdb"), "stop", str(state)], check=False, timeout=60)


@pytest.fixture(scope="session")
def postgres_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """The URL of a PostgreSQL server, or None when there is none."""
    url = os.environ.get("PUSHSVC_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        yield None
        return
    state = tmp_path_factory.mktemp("postgres")
    out = subprocess.run(
        [str(ROOT / "scripts/postgres"), "start", str(state)], capture_output=True, text=True, check=True, timeout=120
    )
    try:
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(ROOT / "scripts/postgres"), "stop", str(state)], check=False, timeout=60)


def postgres_url(base: str, schema: str) -> str:
    """`base` with pushsvc's schema option set to `schema`."""
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def _unique_db() -> str:
    return f"t{uuid.uuid4().hex[:16]}"


def _no_postgres() -> None:
    reason = "postgres backend: no server (PUSHSVC_TEST_POSTGRES_URL unset and no PostgreSQL installed; apt-get install postgresql)"
    if os.environ.get("PUSHSVC_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def pg_url(postgres_base_url: str | None) -> str:
    """A fresh schema on the PostgreSQL server, for the tests of that adapter alone."""
    if postgres_base_url is None:
        _no_postgres()
    assert postgres_base_url is not None
    return postgres_url(postgres_base_url, _unique_db())


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on each backend in turn."""
    if request.param == "memory":
        return f"memory://{_unique_db()}"
    if request.param == "mongomock":
        return f"mongomock://localhost/{_unique_db()}"
    if request.param == "postgres":
        base = request.getfixturevalue("postgres_base_url")
        if base is None:
            _no_postgres()
        return postgres_url(base, _unique_db())
    ferretdb_base_url = request.getfixturevalue("ferretdb_base_url")
    if ferretdb_base_url is None:
        reason = (
            f"ferretdb backend: no server (PUSHSVC_TEST_FERRETDB_URL unset and {FERRETDB_BIN} missing; "
            "run scripts/install-ferretdb)"
        )
        if os.environ.get("PUSHSVC_REQUIRE_FERRETDB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return f"{ferretdb_base_url}{_unique_db()}"


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test advances it."""
    return ManualClock()


FAST_DISPATCH = DispatchSettings(
    poll_interval_s=0.05,
    initial_backoff_s=0.05,
    max_backoff_s=0.5,
    lease_s=5.0,
    receipt_gap_grace_s=1.0,
    batch_size=100,
    partition_size=1000,
)
"""Dispatcher settings that keep tests quick; semantics are unchanged."""


@pytest.fixture
async def app(store_url: str, clock: ManualClock) -> AsyncIterator[Application]:
    """A running pushsvc (no provider credentials) on a free port, with a manual clock."""
    settings = Settings(store_url=store_url, host="127.0.0.1", port=0, dispatch=FAST_DISPATCH)
    application = build_application(settings, clock=clock, providers={})
    await application.start()
    try:
        yield application
    finally:
        await application.stop(0)


@pytest.fixture
async def stub(app: Application) -> AsyncIterator[push_pb2_grpc.PushServiceStub]:
    """The generated stub, connected to `app`."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield push_pb2_grpc.PushServiceStub(channel)


@pytest.fixture
async def stack(store_url: str, tmp_path: Path) -> AsyncIterator[DevStack]:
    """The dev stack (emulator over TLS + HTTP/2, demo app) on free ports."""
    dev = await start_dev_stack(state_dir=tmp_path / "dev", port=0, store_url=store_url, dispatch=FAST_DISPATCH)
    try:
        yield dev
    finally:
        await dev.stop(0)


@pytest.fixture
async def stack_stub(stack: DevStack) -> AsyncIterator[push_pb2_grpc.PushServiceStub]:
    """The generated stub, connected to the dev stack."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.app.port}") as channel:
        yield push_pb2_grpc.PushServiceStub(channel)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints how many tests passed, failed and were skipped on each storage backend."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            for backend in BACKENDS:
                if f"[{backend}" in nodeid or f"-{backend}]" in nodeid:
                    counts.setdefault(backend, {}).setdefault(outcome, 0)
                    counts[backend][outcome] += 1
    if counts:
        terminalreporter.section("storage backends")
        for backend in BACKENDS:
            c = counts.get(backend, {})
            terminalreporter.write_line(
                f"{backend}: {c.get('passed', 0)} passed, {c.get('failed', 0) + c.get('error', 0)} failed, "
                f"{c.get('skipped', 0)} skipped"
            )
