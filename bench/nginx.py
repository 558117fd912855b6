"""A static HTTP/2 endpoint on loopback: Debian's nginx-light answering like APNs, FCM, Web Push and OAuth.

It answers without doing any work, so a client measured against it is measured
on its own cost, and h2load shows how far the endpoint itself could go. The
routes are the few a provider client needs:

- `POST /3/device/<token>`: 200, an empty body, and `apns-id` echoing the
  request's (clients such as aioapns match responses by it), or a fresh UUID.
- `POST /v1/projects/<project>/messages:send`: 200 `{"name":"projects/<project>/messages/<id>"}`.
- `POST /token`: 200 with an OAuth access token valid for an hour.
- `POST /wp/<anything>`: 201 (Created), an empty body and a `location` header,
  as a Web Push service answers a push message (RFC 8030 §5).
- anything else: 404.

The endpoint never looks at credentials: any JWT or access token is accepted.

Usage:
    with NginxEndpoint() as endpoint:
        endpoint.base_url, endpoint.ca_file, endpoint.pid, endpoint.worker_pids()

Needs `/usr/sbin/nginx` (Debian: `apt-get install nginx-light`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import types
from pathlib import Path

import trustme

NGINX_BINARY = "/usr/sbin/nginx"
ACCESS_TOKEN = "bench-access-token"
"""The access token `/token` hands out."""
STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_LOG_FLUSH_S = 1
"""How long nginx may hold access-log lines in its buffer (access_log=True)."""
_START_ATTEMPTS = 3
"""A free port can be taken between probing it and nginx binding it; then we try another."""

_CONFIG = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    {access_log}
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    # Since nginx 1.19.7 keepalive_requests also caps requests per HTTP/2
    # connection (default 1000, then GOAWAY); a benchmark keeps one connection.
    keepalive_requests 10000000;
    http2_max_concurrent_streams 1000;

    # APNs echoes the request's apns-id, or makes one: a UUID from $request_id.
    map $request_id $bench_uuid {{
        "~^(?<a>.{{8}})(?<b>.{{4}})(?<c>.{{4}})(?<d>.{{4}})(?<e>.{{12}})$" "$a-$b-$c-$d-$e";
    }}
    map $http_apns_id $bench_apns_id {{
        "" $bench_uuid;
        default $http_apns_id;
    }}

    server {{
        listen {host}:{port} ssl http2;
        server_name localhost;
        ssl_certificate {dir}/server.pem;
        ssl_certificate_key {dir}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;

        location ~ ^/3/device/[^/]+$ {{
            limit_except POST {{ deny all; }}
            add_header apns-id $bench_apns_id always;
            return 200;
        }}
        location ~ ^/v1/projects/([^/]+)/messages:send$ {{
            limit_except POST {{ deny all; }}
            default_type application/json;
            return 200 '{{"name":"projects/$1/messages/$request_id"}}';
        }}
        location = /token {{
            limit_except POST {{ deny all; }}
            default_type application/json;
            return 200 '{{"access_token":"{token}","expires_in":3600,"token_type":"Bearer"}}';
        }}
        location ~ ^/wp/.+$ {{
            limit_except POST {{ deny all; }}
            add_header location /m/$request_id always;
            return 201;
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""


class NginxError(RuntimeError):
    """nginx is missing, would not start, or did not answer in time."""


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


class NginxEndpoint:
    """Runs nginx on a free loopback port until the `with` block ends.

    Everything it writes (config, CA and leaf certificate, pid, error log, temp
    dirs) lives in one temporary directory, so it runs as root without
    touching /etc or /var.
    """

    host = "127.0.0.1"

    def __init__(self, *, binary: str = NGINX_BINARY, access_log: bool = False) -> None:
        self._binary = binary
        self._access_log = access_log
        """Log every request with its wall-clock time (`arrivals()`); off by default, as logging costs nginx CPU."""
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.ca_pem = b""
        """PEM of the CA that signed the endpoint's certificate."""

    @property
    def base_url(self) -> str:
        """`https://127.0.0.1:<port>`."""
        return f"https://{self.host}:{self.port}"

    @property
    def token_uri(self) -> str:
        """The OAuth endpoint, for a service account's `token_uri`."""
        return f"{self.base_url}/token"

    @property
    def ca_file(self) -> Path:
        """The CA certificate as a PEM file."""
        assert self._dir is not None, "the endpoint is not running"
        return self._dir / "ca.pem"

    @property
    def directory(self) -> Path:
        """The temporary directory the endpoint lives in."""
        assert self._dir is not None, "the endpoint is not running"
        return self._dir

    @property
    def pid(self) -> int:
        """The nginx master's pid."""
        assert self._process is not None, "the endpoint is not running"
        return self._process.pid

    @property
    def access_log_path(self) -> Path:
        """With `access_log=True`: one line per request, `<unix time, ms resolution> <status> <uri>`."""
        return self.directory / "access.log"

    def arrivals(self, offset: int = 0) -> list[tuple[float, int, str]]:
        """(wall-clock time, status, uri) of each request logged from byte `offset` on, in log order.

        nginx writes a line when it has answered the request, so the time is
        the answer's, a little after the request arrived. The log is buffered
        for at most `_LOG_FLUSH_S`: wait that long after the last request.
        """
        rows = []
        with self.access_log_path.open("rb") as log:
            log.seek(offset)
            for line in log.read().decode().splitlines():
                at, status, uri = line.split(" ", 2)
                rows.append((float(at), int(status), uri))
        return rows

    def worker_pids(self) -> list[int]:
        """The worker processes' pids: the ones that serve requests and spend the endpoint's CPU."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in children.read_text().split()]
        return []

    def __enter__(self) -> NginxEndpoint:
        if not (os.path.exists(self._binary) or shutil.which(self._binary)):
            raise NginxError(f"{self._binary} not found: apt-get install nginx-light")
        self._dir = Path(tempfile.mkdtemp(prefix="pushsvc-bench-nginx-"))
        try:
            self._write_certificates()
            for _ in range(_START_ATTEMPTS):
                if self._start():
                    return self
            raise NginxError(f"nginx did not start after {_START_ATTEMPTS} attempts: {self._error_log()}")
        except BaseException:
            self._cleanup()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._cleanup()

    def _write_certificates(self) -> None:
        assert self._dir is not None
        # nginx's workers drop root for "nobody" and still need the temp dirs.
        self._dir.chmod(0o755)
        ca = trustme.CA()
        leaf = ca.issue_cert(self.host, "localhost")
        self.ca_pem = ca.cert_pem.bytes()
        self.ca_file.write_bytes(self.ca_pem)
        leaf.cert_chain_pems[0].write_to_path(str(self._dir / "server.pem"))
        for extra in leaf.cert_chain_pems[1:]:
            with open(self._dir / "server.pem", "ab") as chain:
                chain.write(extra.bytes())
        key = self._dir / "server.key"
        leaf.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)

    def _start(self) -> bool:
        """Starts nginx on a fresh port; False if the port was taken meanwhile."""
        assert self._dir is not None
        self.port = _free_port(self.host)
        config = self._dir / "nginx.conf"
        access_log = (
            f"log_format arrivals '$msec $status $request_uri';\n"
            f"    access_log {self._dir}/access.log arrivals buffer=256k flush={_LOG_FLUSH_S}s;"
            if self._access_log else "access_log off;"
        )
        config.write_text(_CONFIG.format(dir=self._dir, host=self.host, port=self.port, token=ACCESS_TOKEN,
                                         access_log=access_log))
        self._process = subprocess.Popen(
            [self._binary, "-p", str(self._dir), "-e", str(self._dir / "error.log"), "-c", str(config),
             "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            if _answers(self.host, self.port) and self.worker_pids():
                return True
            time.sleep(0.05)
        self._stop()
        raise NginxError(f"nginx did not answer on {self.base_url} within {STARTUP_TIMEOUT_S:.0f} s")

    def _error_log(self) -> str:
        assert self._dir is not None
        with contextlib.suppress(OSError):
            return (self._dir / "error.log").read_text().strip()[-2000:]
        return ""

    def _stop(self) -> None:
        if self._process is None:
            return
        workers = self.worker_pids()
        process, self._process = self._process, None
        if process.poll() is not None:
            return
        # SIGTERM is nginx's fast shutdown: the master stops its workers first.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
            # A killed master leaves its workers behind; they are ours to end.
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _cleanup(self) -> None:
        self._stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
