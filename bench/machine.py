"""What a benchmark table's header states: the machine, the software, the date and the commit."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class RunContext:
    """The facts every benchmark prints above its table and writes into its JSON."""

    cpu: str
    cores: int
    """CPUs this process may run on."""
    ram_gib: float
    load_average: tuple[float, float, float]
    """At the start: on a shared machine, it says how busy the run was."""
    python: str
    date_utc: str
    commit: str
    """Short hash, with "-dirty" when tracked files differ from it."""
    versions: dict[str, str]

    @property
    def header(self) -> str:
        """Two lines for the top of a table."""
        load = ", ".join(f"{x:.2f}" for x in self.load_average)
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return (
            f"machine: {self.cores} x {self.cpu}, {self.ram_gib:.1f} GiB RAM, load average {load}\n"
            f"Python {self.python}; {versions}\n"
            f"date: {self.date_utc}   commit: {self.commit}"
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return 0.0


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _commit() -> str:
    short = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{short}-dirty" if dirty else short


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].split()[-1].split("/")[-1] if text else "unknown"


def run_context(packages: tuple[str, ...] = (), tools: dict[str, list[str]] | None = None) -> RunContext:
    """Collects the facts now; `packages` and `tools` name the versions worth stating."""
    versions = {name: _version(name) for name in packages}
    for name, command in (tools or {}).items():
        versions[name] = _tool_version(command)
    return RunContext(
        cpu=_cpu_model(),
        cores=len(os.sched_getaffinity(0)),
        ram_gib=_ram_gib(),
        load_average=os.getloadavg(),
        python=platform.python_version(),
        date_utc=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        commit=_commit(),
        versions=versions,
    )
