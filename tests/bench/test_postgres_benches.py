"""Smoke runs of the PostgreSQL benchmarks at small sizes, so they cannot rot.

They check that each bench runs end to end, prints its table and writes its
JSON with every delivery accounted for; the figures themselves are taken by
hand on a quiet machine (bench/README.md), never asserted here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.bench.runs import run_bench

HAVE_POSTGRES = bool(list(Path("/usr/lib/postgresql").glob("*/bin/postgres")))
HAVE_NGINX = Path("/usr/sbin/nginx").exists()

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not HAVE_POSTGRES and os.environ.get("PUSHSVC_REQUIRE_POSTGRES") != "1",
                       reason="needs Debian's postgresql"),
]


def _run(args: list[str], out: Path) -> dict[str, object]:
    return run_bench(args, out, timeout_s=540)


def test_pg_driver(tmp_path: Path) -> None:
    record = _run(["bench/pg_driver.py", "-n", "300", "--rounds", "1"], tmp_path / "driver.json")
    results = record["results"]
    assert isinstance(results, dict) and set(results) == {"asyncpg", "psycopg"}


@pytest.mark.skipif(not HAVE_NGINX, reason="needs nginx-light (bench/nginx.py)")
def test_fanout_on_memory_and_postgres(tmp_path: Path) -> None:
    record = _run(["-m", "bench.postgres", "fanout", "-n", "2000", "--rounds", "1"], tmp_path / "fanout.json")
    rows = record["rows"]
    assert isinstance(rows, dict)
    assert [r["delivered"] for r in rows["memory"] + rows["postgres"]] == [2000, 2000]
    assert rows["postgres"][0]["store_server_cpu_s"] > 0


@pytest.mark.skipif(not HAVE_NGINX, reason="needs nginx-light (bench/nginx.py)")
def test_scaleout_and_replay(tmp_path: Path) -> None:
    scale = _run(["-m", "bench.postgres", "scaleout", "-n", "2000"], tmp_path / "scaleout.json")
    assert scale["one"]["delivered"] == scale["two"]["delivered"] == 2000  # type: ignore[index]  # JSON of known shape
    replay = _run(["-m", "bench.postgres", "replay", "-n", "1000"], tmp_path / "replay.json")
    assert replay["result"]["replayed"] == 1000  # type: ignore[index]  # JSON of known shape


@pytest.mark.skipif(not shutil.which("ghz") and not (Path.home() / "go/bin/ghz").exists(), reason="needs ghz")
def test_register(tmp_path: Path) -> None:
    record = _run(["-m", "bench.postgres", "register", "-n", "500", "--preload", "500"], tmp_path / "register.json")
    rows = record["rows"]
    assert isinstance(rows, dict) and rows["postgres"]["full"]["status"] == {"OK": 500}
