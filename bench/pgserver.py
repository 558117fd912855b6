"""A throw-away PostgreSQL cluster for the benchmarks, with the CPU its processes use.

It runs with PostgreSQL's durable defaults (fsync and synchronous_commit on),
unlike the test suite's cluster, so the figures are those of a store that
keeps what it acknowledged.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process, its reaped children and its live children.

    For the postmaster that is the whole server: backends that exited were
    reaped by it, and their time is in its children's fields.
    """
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid ... utime(11) stime(12) cutime(13) cstime(14), 0-based from state.
        if int(entry.name) == pid:
            total += sum(int(x) for x in fields[11:15]) / _TICK
        elif int(fields[1]) == pid:
            total += sum(int(x) for x in fields[11:13]) / _TICK
    return total


class PostgresServer:
    """`scripts/postgres start` in a temp dir with durable settings; stopped and deleted on exit."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="pushsvc-bench-pg-"))
        self.url = ""
        self.pid = 0

    def __enter__(self) -> PostgresServer:
        env = dict(os.environ, PUSHSVC_PG_DURABLE="1")
        out = subprocess.run([str(ROOT / "scripts/postgres"), "start", str(self._dir)], capture_output=True, text=True,
                             check=True, timeout=120, env=env)
        self.url = out.stdout.split()[-1]
        self.pid = int((self._dir / "pid").read_text().strip())
        return self

    def store_url(self, schema: str = "") -> str:
        """The URL with a fresh schema (or the one named)."""
        return f"{self.url}?schema={schema or 'b' + uuid.uuid4().hex[:12]}"

    def cpu_s(self) -> float:
        return tree_cpu_s(self.pid)

    def __exit__(self, *exc: object | TracebackType) -> None:
        subprocess.run([str(ROOT / "scripts/postgres"), "stop", str(self._dir)], check=False, timeout=60)
