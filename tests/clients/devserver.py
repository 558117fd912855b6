"""A `pushsvc dev` subprocess on a fixed port that a test can restart."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
PUSHSVC = Path(sys.executable).with_name("pushsvc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServer:
    """Runs `pushsvc dev --port PORT --store STORE`; `restart()` is SIGTERM (the
    server's drain) and a start on the same store and port."""

    def __init__(self, store_url: str, state_dir: Path, port: int | None = None) -> None:
        self.store_url = store_url
        self.state_dir = state_dir
        self.port = port or free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.log = state_dir / "server.log"
        self._proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 60.0) -> None:
        """Starts the server and returns once its health check says SERVING."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.log.open("a")
        self._proc = subprocess.Popen(
            [str(PUSHSVC), "dev", "--port", str(self.port), "--store", self.store_url,
             "--state-dir", str(self.state_dir / "dev")],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"pushsvc dev exited with {self._proc.returncode}:\n{self.log.read_text()}")
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"pushsvc dev not SERVING after {timeout_s}s:\n{self.log.read_text()}")
                time.sleep(0.1)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM: the server drains (streams end with UNAVAILABLE) and exits."""
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise

    def emulator_fcm_url(self) -> str:
        """The FCM (and control) URL of the emulator this run of `pushsvc dev` started, from its log."""
        urls = re.findall(r"FCM (https://127\.0\.0\.1:\d+)", self.log.read_text())
        if not urls:
            raise RuntimeError(f"no emulator URL in the log:\n{self.log.read_text()}")
        return urls[-1]

    def load_scenario(self, toml_text: str) -> None:
        """Loads an emulator scenario into this run (a restart starts a fresh emulator with the defaults)."""
        ca = self.state_dir / "dev" / "ca.pem"
        response = httpx.post(f"{self.emulator_fcm_url()}/_emulator/scenario", content=toml_text.encode(),
                              verify=ssl.create_default_context(cafile=str(ca)), timeout=10)
        response.raise_for_status()

    def restart(self) -> None:
        """Drains, then starts again on the same store and port."""
        rc = self.stop()
        assert rc == 0, f"pushsvc dev exited with {rc} on SIGTERM:\n{self.log.read_text()}"
        self.start()


class CutDriver:
    """Restarts the server when a client test signals it has read part of a stream.

    The client creates CUT_DIR/ready, and keeps its stream open without reading
    while the server restarts; `go` tells it to read on."""

    def __init__(self, server: DevServer, cut_dir: Path, timeout_s: float = 240.0) -> None:
        self.server = server
        self.cut_dir = cut_dir
        self.timeout_s = timeout_s
        self.restarted = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cut-driver", daemon=True)

    def __enter__(self) -> CutDriver:
        self.cut_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        try:
            while not (self.cut_dir / "ready").exists():
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                time.sleep(0.02)
            self.server.restart()
            self.restarted.set()
        except BaseException as exc:  # reported by the test that owns the driver
            self.error = exc
        finally:
            (self.cut_dir / "go").touch()
