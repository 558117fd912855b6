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


RUN_TIMEOUT_S = 540
"""Per bench run, inside the tests' 600 s."""


def test_pg_driver(tmp_path: Path) -> None:
    record = run_bench(["bench/pg_driver.py", "-n", "300", "--rounds", "1"], tmp_path / "driver.json", timeout_s=RUN_TIMEOUT_S)
    results = record["results"]
    assert isinstance(results, dict) and set(results) == {"asyncpg", "psycopg"}


@pytest.mark.skipif(not HAVE_NGINX, reason="needs nginx-light (bench/nginx.py)")
def test_fanout_on_memory_and_postgres(tmp_path: Path) -> None:
    record = run_bench(["-m", "bench.postgres", "fanout", "-n", "2000", "--rounds", "1"], tmp_path / "fanout.json", timeout_s=RUN_TIMEOUT_S)
    rows = record["rows"]
    assert isinstance(rows, dict)
    assert [r["delivered"] for r in rows["memory"] + rows["postgres"]] == [2000, 2000]
    assert rows["postgres"][0]["store_server_cpu_s"] > 0


@pytest.mark.skipif(not HAVE_NGINX, reason="needs nginx-light (bench/nginx.py)")
def test_scaleout_and_replay(tmp_path: Path) -> None:
    scale = run_bench(["-m", "bench.postgres", "scaleout", "-n", "2000"], tmp_path / "scaleout.json", timeout_s=RUN_TIMEOUT_S)
    assert scale["one"]["delivered"] == scale["two"]["delivered"] == 2000
    replay = run_bench(["-m", "bench.postgres", "replay", "-n", "1000"], tmp_path / "replay.json", timeout_s=RUN_TIMEOUT_S)
    assert replay["result"]["replayed"] == 1000


@pytest.mark.skipif(not shutil.which("ghz") and not (Path.home() / "go/bin/ghz").exists(), reason="needs ghz")
def test_register(tmp_path: Path) -> None:
    record = run_bench(["-m", "bench.postgres", "register", "-n", "500", "--preload", "500"], tmp_path / "register.json", timeout_s=RUN_TIMEOUT_S)
    rows = record["rows"]
    assert isinstance(rows, dict) and rows["postgres"]["full"]["status"] == {"OK": 500}
