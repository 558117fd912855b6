"""`pushsvc tokens import` end to end: the real command in a subprocess against a real server on port 0 (memory://).

The server runs in the test's event loop; the command is the dev venv's
`pushsvc` (which hands `tokens import` to pushsvc-client), so what is tested
is what an operator runs. Every row of each file is accounted for: the
summary's counts, the bad rows' line numbers and reasons, and the store
(each good row looked up, with its fields).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pushsvc import models
from pushsvc.bootstrap import Application, build_application
from pushsvc.clock import SystemClock
from pushsvc.config import Settings
from pushsvc.storage import TargetQuery, TokenStore, open_stores

try:
    import pushsvc_client  # noqa: F401 - only its presence matters: `pushsvc tokens import` needs it
except ImportError:  # pragma: no cover - scripts/install installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("pushsvc-client is not installed in this venv (scripts/install installs it)", allow_module_level=True)

PUSHSVC = str(Path(sys.executable).with_name("pushsvc"))
APP = "imports"
COMMAND_TIMEOUT_S = 120.0


@pytest.fixture
async def server() -> AsyncIterator[Application]:
    """pushsvc on a fresh memory:// store and a free port, with the system clock."""
    app = build_application(Settings(store_url="memory://imports", host="127.0.0.1", port=0), providers={})
    await app.start()
    try:
        yield app
    finally:
        await app.stop(0)


SERVE_STORES = ["ferretdb", "postgres"]
"""The `store_url` backends (tests/conftest.py) that the import into `pushsvc serve` runs on: the production schemes."""


@contextlib.asynccontextmanager
async def serving(store_url: str, root: Path) -> AsyncIterator[int]:
    """`pushsvc serve` on `store_url`, loopback only and without auth; yields its port once health says SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = root / "serve.toml"
    config.write_text(f'store_url = "{store_url}"\nhost = "127.0.0.1"\nport = {port}\n')
    log = root / "serve.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            PUSHSVC, "serve", "--config", str(config), "--insecure-no-auth", stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert proc.returncode is None, log.read_text()[-3000:]
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                assert time.monotonic() < deadline, "serve never became SERVING: " + log.read_text()[-3000:]
                await asyncio.sleep(0.1)
        yield port
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def run_import(app: Application | int, path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    """Runs the command to completion against `app` (or a port); returns its exit status, JSON summary and stderr."""
    port = app.port if isinstance(app, Application) else app
    proc = await asyncio.create_subprocess_exec(
        PUSHSVC, "tokens", "import", str(path), "--server", f"127.0.0.1:{port}", "--app", APP, "--json", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_S)
    assert proc.returncode is not None
    return proc.returncode, json.loads(out), err.decode()


def bad_lines(stderr: str, path: Path) -> dict[int, str]:
    """{line: reason} of the `FILE:LINE: reason` lines."""
    out = {}
    for line in stderr.splitlines():
        if line.startswith(f"{path}:"):
            number, _, reason = line.removeprefix(f"{path}:").partition(": ")
            out[int(number)] = reason
    return out


def good_csv_row(i: int) -> tuple[str, str, str]:
    """Row i's (line text, platform, token): alternately APNs with topics and FCM with a device id."""
    if i % 2:
        token = f"{i:064x}"
        return f"{token},apns,user-{i % 997},news;sport,,,sandbox", "apns", token
    token = f"fcm-import-{i}"
    return f"{token},FCM,user-{i % 997},,device-{i},en-GB,", "fcm", token


BAD_CSV_ROWS = {
    "bad platform": ("tok-1,windows,u,,,,", "platform: must be apns, fcm, webpush or hms (got 'windows')"),
    "empty token": (",fcm,u,,,,", "token: must not be empty"),
    "bad hex APNs token": ("zz" * 32 + ",apns,u,,,,", "token: an APNs device token must be hexadecimal"),
    "malformed CSV": ('"quoted"garbage,fcm,u,,,,', "malformed CSV: ',' expected after '\"'"),
    "too few fields": ("short-row,fcm", "has 2 fields; the header has 7"),
    "bad environment": ("ab" * 32 + ",apns,u,,,,staging", "apns_environment: must be production or sandbox (got 'staging')"),
}


def write_csv(path: Path, rows: int, bad_at: dict[int, str]) -> dict[str, tuple[str, str]]:
    """`rows` data rows (line = index + 2), bad ones at the given indexes; returns the good rows' tokens."""
    good: dict[str, tuple[str, str]] = {}
    with path.open("w") as f:
        f.write("token,platform,user_id,topics,device_id,locale,apns_environment\n")
        for i in range(rows):
            if i in bad_at:
                f.write(BAD_CSV_ROWS[bad_at[i]][0] + "\n")
                continue
            text, platform, token = good_csv_row(i)
            f.write(text + "\n")
            good[token] = (platform, f"user-{i % 997}")
    return good


async def assert_registered(app: Application | TokenStore, good: dict[str, tuple[str, str]]) -> None:
    """Each good row is in the store with its fields, and nothing else is."""
    tokens = app.stores.tokens if isinstance(app, Application) else app
    assert await tokens.count_targets(APP, TargetQuery("all")) == len(good)
    for token, (platform, user) in good.items():
        stored = await tokens.get(APP, models.Platform(platform), token)
        assert stored is not None, token
        assert stored.user_id == user
        if platform == "apns":
            assert stored.topics == ("news", "sport") and stored.apns_environment is models.ApnsEnvironment.SANDBOX
        else:
            assert stored.device_id.startswith("device-") and stored.locale == "en-GB"


async def test_a_100k_row_csv_with_bad_rows_counts_every_row_and_names_each_bad_line(
    server: Application, tmp_path: Path
) -> None:
    rows = 100_000
    bad_at = {17: "bad platform", 4_000: "empty token", 50_001: "bad hex APNs token", 77_777: "malformed CSV",
              88_888: "too few fields", 99_999: "bad environment"}
    path = tmp_path / "tokens.csv"
    good = write_csv(path, rows, bad_at)
    status, summary, stderr = await run_import(server, path, "--progress", "lines")
    assert status == 1, stderr  # bad rows make the exit status non-zero
    assert summary == {
        "rows": rows, "created": rows - len(bad_at), "updated": 0, "bad": len(bad_at), "not_attempted": 0,
        "skipped": 0, "resume_after": rows + 1, "complete": True, "stopped_because": "",
    }
    assert bad_lines(stderr, path) == {i + 2: BAD_CSV_ROWS[kind][1] for i, kind in bad_at.items()}
    assert f"{rows:,} of ~{rows:,} rows (100%)" in stderr  # the final progress line
    await assert_registered(server, good)

    # Importing the same file again is safe: every good row is an update, the bad ones are bad again.
    status, again, stderr = await run_import(server, path, "--progress", "none")
    assert status == 1
    assert (again["created"], again["updated"], again["bad"], again["rows"]) == (0, rows - len(bad_at), len(bad_at), rows)
    await assert_registered(server, good)


async def test_json_lines_report_malformed_lines_and_per_item_errors(server: Application, tmp_path: Path) -> None:
    path = tmp_path / "tokens.jsonl"
    lines = [
        json.dumps({"token": "ab" * 32, "platform": "PLATFORM_APNS", "userId": "alice", "topics": ["news"]}),
        '{"token": "fcm-1", "platform": "fcm"',                                    # 2: cut short
        json.dumps({"token": "fcm-2", "platform": "fcm", "colour": "red"}),        # 3: unknown key
        "",                                                                        # blank: not a row
        json.dumps({"token": "fcm-3", "platform": "fcm", "topics": "news"}),       # 5: topics not a list
        json.dumps(["not", "an", "object"]),                                       # 6
        json.dumps({"token": "fcm-4", "platform": "fcm", "user_id": "bob\u0000"}),  # 7: the server refuses it
        json.dumps({"token": "fcm-5", "platform": "fcm", "app_id": "other-app"}),  # 8: its own app
    ]
    path.write_text("\n".join(lines) + "\n")
    status, summary, stderr = await run_import(server, path, "--progress", "none")
    assert status == 1
    assert (summary["rows"], summary["created"], summary["bad"], summary["not_attempted"]) == (7, 2, 5, 0)
    bad = bad_lines(stderr, path)
    assert sorted(bad) == [2, 3, 5, 6, 7]
    assert bad[2].startswith("malformed JSON")
    assert bad[3] == "unknown key(s) colour"
    assert bad[5] == "topics: must be a list of strings"
    assert bad[6] == "a JSON line must hold an object, not list"
    assert bad[7] == "user_id: must not contain control characters (such as NUL or a newline)"
    alice = await server.stores.tokens.get(APP, models.Platform.APNS, "ab" * 32)
    assert alice is not None and alice.user_id == "alice" and alice.topics == ("news",)
    assert await server.stores.tokens.get("other-app", models.Platform.FCM, "fcm-5") is not None


async def test_an_interrupted_import_resumes_to_completion_with_exact_counts(server: Application, tmp_path: Path) -> None:
    rows = 60_000
    bad_at = {5: "empty token", 30_000: "bad platform", 59_998: "malformed CSV"}
    path = tmp_path / "tokens.csv"
    good = write_csv(path, rows, bad_at)
    # Small batches, few in flight: the import takes seconds, so Ctrl-C lands mid-way.
    slow = ("--batch-size", "100", "--in-flight", "2", "--progress", "none")
    proc = await asyncio.create_subprocess_exec(
        PUSHSVC, "tokens", "import", str(path), "--server", f"127.0.0.1:{server.port}", "--app", APP, "--json", *slow,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(COMMAND_TIMEOUT_S):
        while await server.stores.tokens.count_targets(APP, TargetQuery("all")) < 5_000:
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = await proc.communicate()
    first = json.loads(out)
    assert proc.returncode == 130, err.decode()
    resume_from = first["resume_after"]
    assert f"stopped (interrupted) after line {resume_from}; resume with --resume-from {resume_from}" in err.decode()
    assert not first["complete"] and first["stopped_because"] == "interrupted"
    assert first["created"] >= 5_000 - 200 and first["not_attempted"] > 0, first  # it really stopped mid-way
    assert first["rows"] == rows
    assert first["created"] + first["updated"] + first["bad"] + first["not_attempted"] == rows
    # Every row up to the resume line has its answer; none after it was counted.
    assert first["created"] + first["updated"] + first["bad"] == resume_from - 1
    assert set(bad_lines(err.decode(), path)) == {i + 2 for i in bad_at if i + 2 <= resume_from}

    status, second, stderr = await run_import(server, path, "--resume-from", str(resume_from), "--progress", "none")
    assert status == 1  # the bad rows after the resume line
    assert second["complete"] and second["not_attempted"] == 0
    assert second["rows"] == rows and second["skipped"] == resume_from - 1
    assert second["created"] + second["updated"] + second["bad"] + second["skipped"] == rows
    # Between them, the two runs answered each row once: each good row created once (a batch in
    # flight at the interruption may have been stored, and then comes back "updated").
    assert first["created"] + second["created"] + second["updated"] == len(good)
    assert second["updated"] <= 2 * 100
    assert first["bad"] + second["bad"] == len(bad_at)
    assert set(bad_lines(stderr, path)) == {i + 2 for i in bad_at if i + 2 > resume_from}
    await assert_registered(server, good)


async def test_a_file_that_cannot_be_imported_is_refused_before_anything_is_sent(
    server: Application, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text("token,platform,colour\nab,fcm,red\n")
    proc = await asyncio.create_subprocess_exec(
        PUSHSVC, "tokens", "import", str(path), "--server", f"127.0.0.1:{server.port}", "--app", APP,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_S)
    assert proc.returncode == 2
    assert "unknown column(s) colour" in err.decode()
    assert await server.stores.tokens.count_targets(APP, TargetQuery("all")) == 0


class _Flaky:
    """A RegisterTokens server that answers UNAVAILABLE to its first `failures` calls, then "created" to each item."""

    def __init__(self, failures: int, code: Any = None) -> None:
        self.failures = failures
        self.code = code
        self.calls = 0
        self.items = 0

    async def register_tokens(self, request: Any, context: Any) -> Any:
        import grpc

        from pushsvc.v1 import push_pb2 as pb

        self.calls += 1
        if self.calls <= self.failures:
            await context.abort(self.code or grpc.StatusCode.UNAVAILABLE, "flaky: try again")
        self.items += len(request.items)
        n = len(request.items)
        return pb.RegisterTokensResponse(
            results=[pb.RegistrationResult(index=i, outcome=pb.REGISTRATION_OUTCOME_CREATED) for i in range(n)], created=n
        )


async def _flaky_server(flaky: _Flaky) -> tuple[Any, int]:
    import grpc

    from pushsvc.v1 import push_pb2 as pb

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("pushsvc.v1.PushService", {
        "RegisterTokens": grpc.unary_unary_rpc_method_handler(
            flaky.register_tokens, request_deserializer=pb.RegisterTokensRequest.FromString,
            response_serializer=pb.RegisterTokensResponse.SerializeToString,
        ),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_unavailable_is_retried_past_the_channels_own_retries(tmp_path: Path) -> None:
    from pushsvc_client import connect
    from pushsvc_client.importer import TokenImporter
    from pushsvc_client.tokenfile import TokenFile
    from pushsvc_client.v1 import push_pb2_grpc

    flaky = _Flaky(failures=7)  # the channel's retry policy makes 5 attempts; the importer must do the rest
    server, port = await _flaky_server(flaky)
    path = tmp_path / "tokens.csv"
    write_csv(path, 2_500, {})

    def run() -> Any:
        with connect(f"127.0.0.1:{port}") as channel, TokenFile(path, "csv") as tokens:
            importer = TokenImporter(push_pb2_grpc.PushServiceStub(channel), default_app=APP, in_flight=1,
                                     retry_budget_s=30)
            return importer.run(tokens)

    try:
        summary = await asyncio.wait_for(asyncio.to_thread(run), 60)
    finally:
        await server.stop(0)
    assert (summary.complete, summary.created, summary.bad, summary.not_attempted) == (True, 2_500, 0, 0)
    assert flaky.items == 2_500 and flaky.calls == 7 + 3


# --- the progress bar, as a person sees it: the real command in a terminal (tmux), its screen read back

BAR_LINE = re.compile(r"^\s*(\d+)%\|[^|]*\| ([\d,]+)/([\d,]+) rows \[[^\]]*\](?:, (.*))?$")
"""tqdm's bar as BarProgress draws it: percent, rows done, rows expected, and the status after a comma."""


class _Terminal:
    """A tmux session on a private socket running one command; `screen()` is what a person would see."""

    def __init__(self, directory: Path, command: list[str]) -> None:
        self._socket = str(directory / "tmux.sock")
        # The command's exit status is printed after it, and the pane stays for reading.
        line = " ".join(shlex.quote(part) for part in command) + '; echo "[exit $?]"; sleep 600'
        self._command = ["tmux", "-S", self._socket, "new-session", "-d", "-x", "220", "-y", "40", line]

    async def __aenter__(self) -> _Terminal:
        await self._tmux(*self._command[3:])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._tmux("kill-server", check=False)

    async def screen(self) -> list[str]:
        return (await self._tmux("capture-pane", "-p")).rstrip("\n").splitlines()

    async def finished(self, timeout_s: float = COMMAND_TIMEOUT_S) -> list[str]:
        async with asyncio.timeout(timeout_s):
            while True:
                screen = await self.screen()
                if any(line.startswith("[exit ") for line in screen):
                    return screen
                await asyncio.sleep(0.1)

    async def _tmux(self, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-S", self._socket, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0 or not check, err.decode()
        return out.decode()


needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed")


@needs_tmux
async def test_the_progress_bar_counts_rows_and_keeps_bad_rows_off_its_line(server: Application, tmp_path: Path) -> None:
    rows = 20_000
    bad_at = {3: "empty token", 9_000: "bad platform", 19_990: "too few fields"}
    path = tmp_path / "tokens.csv"
    write_csv(path, rows, bad_at)
    command = [PUSHSVC, "tokens", "import", str(path), "--server", f"127.0.0.1:{server.port}", "--app", APP,
               "--batch-size", "200", "--in-flight", "1"]
    async with _Terminal(tmp_path, command) as terminal:
        screen = await terminal.finished()
    shown = "\n".join(screen)
    # Each bad row on a line of its own, whole, with nothing of the bar in it.
    for i, kind in bad_at.items():
        assert f"{path}:{i + 2}: {BAD_CSV_ROWS[kind][1]}" in screen, shown
    bars = [m for line in screen if (m := BAR_LINE.match(line))]
    assert len(bars) == 1, shown  # one bar, redrawn in place below the messages
    assert bars[0].groups() == ("100", f"{rows:,}", f"{rows:,}", None), shown
    assert f"{rows - len(bad_at):,} created" in shown and "[exit 1]" in screen, shown  # bad rows: exit 1
    assert "k/" not in shown and ".00/" not in shown, shown


class _Stumbling:
    """RegisterTokens that answers UNAVAILABLE to its first `failures` calls, then once takes `slow_s`, then is prompt."""

    def __init__(self, failures: int, slow_s: float) -> None:
        self.failures, self.slow_s, self.calls = failures, slow_s, 0

    async def register_tokens(self, request: Any, context: Any) -> Any:
        import grpc

        from pushsvc.v1 import push_pb2 as pb

        self.calls += 1
        if self.calls <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "stumbling: try again")
        if self.calls == self.failures + 1:
            await asyncio.sleep(self.slow_s)
        n = len(request.items)
        return pb.RegisterTokensResponse(
            results=[pb.RegistrationResult(index=i, outcome=pb.REGISTRATION_OUTCOME_CREATED) for i in range(n)], created=n
        )


@needs_tmux
async def test_the_progress_bar_says_so_while_the_client_waits_and_retries(tmp_path: Path) -> None:
    import grpc

    from pushsvc.v1 import push_pb2 as pb

    # 5 failures use up the channel's own attempts: the importer retries; then an answer takes 3 s.
    stumbling = _Stumbling(failures=5, slow_s=3.0)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("pushsvc.v1.PushService", {
        "RegisterTokens": grpc.unary_unary_rpc_method_handler(
            stumbling.register_tokens, request_deserializer=pb.RegisterTokensRequest.FromString,
            response_serializer=pb.RegisterTokensResponse.SerializeToString,
        ),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    path = tmp_path / "tokens.csv"
    write_csv(path, 2_500, {})
    command = [PUSHSVC, "tokens", "import", str(path), "--server", f"127.0.0.1:{port}", "--app", APP, "--in-flight", "1"]
    statuses: list[str] = []
    try:
        async with _Terminal(tmp_path, command) as terminal, asyncio.timeout(COMMAND_TIMEOUT_S):
            while True:
                screen = await terminal.screen()
                statuses += [m.group(4) or "" for line in screen if (m := BAR_LINE.match(line))]
                if any(line.startswith("[exit ") for line in screen):
                    break
                await asyncio.sleep(0.1)
    finally:
        await server.stop(0)
    shown = "\n".join(screen)
    assert "[exit 0]" in screen, shown
    assert any(s.startswith("UNAVAILABLE: retrying in 0.5 s (attempt 2,") for s in statuses), statuses
    assert "waiting for the server's answer (2 s, attempt 2)" in statuses, statuses
    # The status goes when the rows move again: the bar ends with none.
    assert statuses[-1] == "", statuses


async def test_an_import_stopped_by_a_failed_call_counts_every_row_as_not_attempted(tmp_path: Path) -> None:
    # The first answer is awaited when a batch beyond those in flight is sent,
    # while a row that does not fit the full batch is in hand: that row, too,
    # must be counted (it was lost: 19,999 of a 20,000-row file were reported).
    import grpc
    from pushsvc_client import connect
    from pushsvc_client.importer import TokenImporter
    from pushsvc_client.tokenfile import TokenFile
    from pushsvc_client.v1 import push_pb2_grpc

    refusing = _Flaky(failures=10**9, code=grpc.StatusCode.PERMISSION_DENIED)
    server, port = await _flaky_server(refusing)
    rows = 20_000
    path = tmp_path / "tokens.csv"
    write_csv(path, rows, {})

    def run() -> Any:
        with connect(f"127.0.0.1:{port}") as channel, TokenFile(path, "csv") as tokens:
            importer = TokenImporter(push_pb2_grpc.PushServiceStub(channel), default_app=APP, in_flight=4)
            return importer.run(tokens)

    try:
        summary = await asyncio.wait_for(asyncio.to_thread(run), 60)
    finally:
        await server.stop(0)
    assert summary.stopped_because.startswith("PERMISSION_DENIED"), summary
    assert (summary.complete, summary.rows, summary.not_attempted, summary.resume_after) == (False, rows, rows, 1)
    assert summary.created + summary.updated + summary.bad + summary.skipped == 0


@pytest.mark.parametrize("store_url", SERVE_STORES, indirect=True)
async def test_an_import_into_pushsvc_serve_counts_every_row_and_a_second_import_refreshes_them(
    store_url: str, tmp_path: Path
) -> None:
    # The same command as above, against the production server on a real store.
    # The second import refreshes registered tokens in bulk: on FerretDB that
    # was the bulk write that hung the store for good. It is smaller, because
    # FerretDB's updates cost a scan each (tests/storage/README.md).
    rows, again_rows = 2_000, 300
    bad_at = {7: "bad platform", 1_000: "empty token", 1_998: "malformed CSV"}
    path, again_path = tmp_path / "tokens.csv", tmp_path / "again.csv"
    good = write_csv(path, rows, bad_at)
    again_good = write_csv(again_path, again_rows, {7: "bad platform"})
    assert set(again_good) <= set(good)
    async with serving(store_url, tmp_path) as port:
        status, summary, stderr = await run_import(port, path, "--progress", "none")
        assert status == 1, stderr  # the bad rows
        assert summary == {
            "rows": rows, "created": rows - len(bad_at), "updated": 0, "bad": len(bad_at), "not_attempted": 0,
            "skipped": 0, "resume_after": rows + 1, "complete": True, "stopped_because": "",
        }
        assert bad_lines(stderr, path) == {i + 2: BAD_CSV_ROWS[kind][1] for i, kind in bad_at.items()}
        # Calls of 100 (each still more than one bulk write): FerretDB serves them one at a time, at
        # about 14 ms per refreshed token here, and four calls of 1,000 in flight would queue past
        # the 30 s deadline of the last one on a loaded machine.
        status, again, stderr = await run_import(port, again_path, "--progress", "none", "--batch-size", "100")
        assert status == 1, stderr
        assert again == {
            "rows": again_rows, "created": 0, "updated": again_rows - 1, "bad": 1, "not_attempted": 0,
            "skipped": 0, "resume_after": again_rows + 1, "complete": True, "stopped_because": "",
        }
    stores = open_stores(store_url, clock=SystemClock())
    try:
        await stores.prepare()
        await assert_registered(stores.tokens, good)
    finally:
        stores.close()
