"""The pushsvc emulator as a benchmark endpoint: `pushsvc emulator` in a subprocess, on free ports.

It runs in a process of its own so that it never shares an event loop (or a
CPU account) with the client under measurement.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

from pushsvc.emulator.credentials import MANIFEST, DemoCredentials, read_manifest

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class EmulatorEndpoint:
    """Runs `pushsvc emulator` until the `with` block ends; exposes its URLs, credentials and pid."""

    def __init__(self, *, apns_streams_before_auth: int = 1000, cpu: int | None = None) -> None:
        # A real APNs connection allows 1 stream until a valid JWT arrived.
        # Load generators (h2load) open their first burst of streams before
        # that, and would see it refused; clients are measured after warm-up,
        # when the limit is 1000 either way.
        self._apns_streams_before_auth = apns_streams_before_auth
        # One core, as in the ceiling measurements: the emulator is one asyncio
        # process, and unpinned it would borrow the client's core.
        self._cpu = cpu
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.urls: dict[str, str] = {}
        """apns_url, apns_sandbox_url, fcm_url, token_uri (from the manifest)."""
        self.credentials: DemoCredentials | None = None

    @property
    def pid(self) -> int:
        """The emulator's pid (one process serves every port)."""
        assert self._process is not None, "the emulator is not running"
        return self._process.pid

    @property
    def manifest(self) -> Path:
        """The emulator's manifest (URLs and demo credentials)."""
        assert self._dir is not None, "the emulator is not running"
        return self._dir / MANIFEST

    def cpu_s(self) -> float:
        """The emulator's CPU seconds so far (user + system, from /proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # After the command: state(0) ... utime(11) stime(12), in clock ticks.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> EmulatorEndpoint:
        self._dir = Path(tempfile.mkdtemp(prefix="pushsvc-bench-emulator-"))
        try:
            self._start()
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._cleanup()

    def _start(self) -> None:
        assert self._dir is not None
        log = open(self._dir / "emulator.log", "wb")  # noqa: SIM115 - the child writes to it until stopped
        with log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pushsvc", "emulator", "--apns-port", "0", "--apns-sandbox-port", "0",
                 "--fcm-port", "0", "--apns-streams-before-auth", str(self._apns_streams_before_auth),
                 "--state-dir", str(self._dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=None if self._cpu is None else lambda: os.sched_setaffinity(0, {self._cpu}),  # type: ignore[arg-type]  # typeshed wants a no-argument callable returning Any; this one returns None
            )
        manifest = self._dir / MANIFEST
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not manifest.exists():
            if self._process.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self._process.returncode}: {self._log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        # The manifest is written in one call but not atomically; read it once it parses.
        while True:
            try:
                self.urls, self.credentials = read_manifest(manifest)
                return
            except ValueError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _log(self) -> str:
        assert self._dir is not None
        try:
            return (self._dir / "emulator.log").read_text(errors="replace").strip()[-2000:]
        except OSError:
            return ""

    def _cleanup(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
