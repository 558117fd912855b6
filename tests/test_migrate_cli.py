"""`pushsvc migrate`, run as an operator would, against a real PostgreSQL."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

PUSHSVC = str(Path(sys.executable).parent / "pushsvc")


def _migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PUSHSVC, "migrate", *args], capture_output=True, text=True, timeout=60, check=False)


def test_migrate_applies_each_migration_once_and_says_so(pg_url: str, tmp_path: Path) -> None:
    first = _migrate("--store", pg_url)
    assert first.returncode == 0, first.stderr
    assert "applied migration 1" in first.stderr and "applied migration 2" in first.stderr
    assert "schema is up to date" in first.stdout
    config = tmp_path / "pushsvc.toml"
    config.write_text(f'store_url = "{pg_url}"\n')
    again = _migrate("--config", str(config))
    assert again.returncode == 0, again.stderr
    assert "applied migration" not in again.stderr, "a second run applies nothing"
    assert "Traceback" not in first.stderr + again.stderr


def test_migrate_against_an_unreachable_store_is_one_clear_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = _migrate("--store", f"postgresql://pushsvc@127.0.0.1:{port}/pushsvc")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("pushsvc: store unreachable")
    assert "Traceback" not in done.stderr


def test_migrate_refuses_an_unknown_store_scheme() -> None:
    done = _migrate("--store", "redis://127.0.0.1/0")
    assert done.returncode == 2
    assert "unsupported store URL scheme" in done.stderr and "Traceback" not in done.stderr
