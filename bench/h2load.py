"""An endpoint's ceiling: h2load (Debian `nghttp2-client`) sending the same request the clients send."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class Ceiling:
    """What h2load reached, and how it was asked."""

    req_per_s: float | None
    """None when h2load is missing, failed or timed out."""
    requests: int
    ok_2xx: int
    failed: int
    command: str
    """The h2load options (without headers or URL), for the table's footnote."""
    error: str = ""

    @property
    def shown(self) -> str:
        """The figure for a table cell."""
        if self.req_per_s is None:
            return "n/a"
        suffix = "" if self.ok_2xx == self.requests else "!"
        return f"{self.req_per_s:,.0f}{suffix}"


def available() -> bool:
    """Whether h2load is installed."""
    return shutil.which("h2load") is not None


def measure(
    url: str,
    headers: Sequence[str],
    body: bytes,
    *,
    requests: int = 50_000,
    connections: int = 4,
    streams: int = 100,
    timeout_s: float = TIMEOUT_S,
    cpu: int | None = None,
    paths: Sequence[str] = (),
) -> Ceiling:
    """POSTs `body` to `url` with `headers` ("name: value"), `requests` times.

    With `paths`, the requests go to those paths of `url`'s origin in turn
    (h2load's `-i`), as a fan-out sends each to its own device token; the
    `:path` then differs per request, and so does the server's work to decode
    it (h2load's one repeated path would reach the server's caches instead).
    """
    options = ["-n", str(requests), "-c", str(connections), "-m", str(streams)]
    shown = "h2load " + " ".join(options) + (f" -i <{len(paths):,} paths>" if paths else "")
    if not available():
        return Ceiling(None, requests, 0, 0, shown, "h2load not installed (apt-get install nghttp2-client)")
    with tempfile.TemporaryDirectory(prefix="pushsvc-bench-h2load-") as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(body)
        command = ["h2load", *options, "-d", str(body_file)]
        for header in headers:
            command += ["-H", header]
        if paths:
            # h2load takes the first URI's origin for all; the others give only their paths.
            origin = url.split("/", 3)
            uris = Path(tmp) / "uris"
            uris.write_text("".join(f"{origin[0]}//{origin[2]}{path}\n" for path in paths))
            command += ["-i", str(uris)]
        else:
            command.append(url)
        try:
            output = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
            ).stdout
        except subprocess.TimeoutExpired:
            return Ceiling(None, requests, 0, 0, shown, f"timed out after {timeout_s:.0f} s")
    rate = re.search(r"^finished in [^,]+, ([\d.]+) req/s", output, re.M)
    status = re.search(r"^status codes: (\d+) 2xx", output, re.M)
    failed = re.search(r"^requests: .*?(\d+) failed", output, re.M)
    if rate is None:
        return Ceiling(None, requests, 0, 0, shown, output.strip()[-500:])
    return Ceiling(
        float(rate.group(1)),
        requests,
        int(status.group(1)) if status else 0,
        int(failed.group(1)) if failed else 0,
        shown,
    )


@dataclasses.dataclass(frozen=True)
class Load:
    """One h2load request kind: where, with which headers and body, how many times."""

    url: str
    headers: Sequence[str]
    body: bytes
    requests: int
    paths: Sequence[str] = ()
    """Paths to send to in turn (see `measure`); empty: `url` every time."""


def measure_mix(loads: Sequence[Load], *, connections: int = 1, streams: int = 100, cpu: int | None = None) -> Ceiling:
    """Runs one h2load per load at the same time; the mix's rate is all requests over the slowest run.

    h2load sends one body to one origin per run, and APNs and FCM are two
    origins, so a 50/50 mix is two concurrent runs (each with `connections`
    connections of `streams` streams, as the gateway holds per provider).
    """
    with concurrent.futures.ThreadPoolExecutor(len(loads)) as pool:
        ceilings = list(pool.map(
            lambda load: measure(load.url, load.headers, load.body, requests=load.requests,
                                 connections=connections, streams=streams, cpu=cpu, paths=load.paths),
            loads,
        ))
    requests = sum(c.requests for c in ceilings)
    shown = " + ".join(f"({c.command})" for c in ceilings)
    errors = "; ".join(c.error for c in ceilings if c.error)
    if any(c.req_per_s is None for c in ceilings):
        return Ceiling(None, requests, 0, 0, shown, errors)
    slowest_s = max(c.requests / c.req_per_s for c in ceilings if c.req_per_s)
    return Ceiling(requests / slowest_s, requests, sum(c.ok_2xx for c in ceilings),
                   sum(c.failed for c in ceilings), shown, errors)
