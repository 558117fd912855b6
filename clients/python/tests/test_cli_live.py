"""`pushsvc-client` against a live `pushsvc dev` (tests/clients sets PUSHSVC_TARGET)."""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pushsvc_client import connect
from pushsvc_client.v1 import push_pb2, push_pb2_grpc

TARGET = os.environ.get("PUSHSVC_TARGET", "")
APP = os.environ.get("PUSHSVC_APP_ID", "demo")
CLI = str(Path(sys.executable).with_name("pushsvc-client"))

pytestmark = pytest.mark.skipif(not TARGET, reason="PUSHSVC_TARGET is not set (tests/clients sets it)")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([CLI, "--server", TARGET, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def _register(user: str) -> list[str]:
    tokens = ["ab" + secrets.token_hex(31) for _ in range(3)]
    with connect(TARGET) as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        for token in tokens:
            stub.RegisterToken(push_pb2.RegisterTokenRequest(
                app_id=APP, token=token, platform=push_pb2.PLATFORM_APNS, user_id=user))
    return tokens


def test_send_then_receipts_as_json_lines_and_resume_after_a_cursor() -> None:
    user = f"cli-{secrets.token_hex(4)}"
    tokens = _register(user)
    nid = cli("send", "--app", APP, "--user", user, "--title", "Hi", "--data", "k=v").stdout.strip()
    assert nid and "\n" not in nid
    out = cli("receipts", "--app", APP, "--notification", nid)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["token"] for r in rows) == sorted(tokens)
    assert {r["status"] for r in rows} == {"DELIVERY_STATUS_DELIVERED"}
    assert f"--after {rows[-1]['cursor']}" in out.stderr
    rest = cli("receipts", "--app", APP, "--notification", nid, "--after", rows[0]["cursor"])
    assert [json.loads(line)["token"] for line in rest.stdout.splitlines()] == [r["token"] for r in rows[1:]]


def test_send_from_a_json_file_and_a_table(tmp_path: Path) -> None:
    token = "ab" + secrets.token_hex(31)
    request = {"target": {"devices": {"devices": [{"token": token, "platform": "PLATFORM_APNS"}]}},
               "message": {"title": "from a file"}, "idempotencyKey": f"cli-{secrets.token_hex(4)}"}
    path = tmp_path / "send.json"
    path.write_text(json.dumps(request))
    nid = cli("send", "--app", APP, "--file", str(path)).stdout.strip()
    again = cli("send", "--app", APP, "--file", str(path))
    assert again.stdout.strip() == nid and "repeat" in again.stderr
    table = cli("receipts", "--app", APP, "--notification", nid, "--format", "table").stdout.splitlines()
    assert table[0].split() == ["CURSOR", "STATUS", "PLATFORM", "ATTEMPTS", "PROVIDER_STATUS", "REASON", "TOKEN"]
    assert len(table) == 2 and table[1].endswith(token) and table[1].split()[1:5] == ["DELIVERED", "APNS", "1", "200"]
    # Aligned: each value starts under its heading.
    for heading in ("STATUS", "PLATFORM", "ATTEMPTS", "TOKEN"):
        assert table[1][table[0].index(heading) - 1] == " " and table[1][table[0].index(heading)] != " "


def test_validate_only_sends_nothing() -> None:
    user = f"cli-{secrets.token_hex(4)}"
    _register(user)
    out = cli("send", "--app", APP, "--user", user, "--title", "Hi", "--validate-only")
    assert out.stdout == "valid: would send to 3 token(s)\n"


def test_follow_the_live_feed_until_interrupted() -> None:
    proc = subprocess.Popen([CLI, "--server", TARGET, "receipts", "--app", APP, "--follow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None

    def read_lines() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    try:
        time.sleep(1.0)  # the live feed starts at "now": subscribe before sending
        token = "ab" + secrets.token_hex(31)
        cli("send", "--app", APP, "--token", f"apns:{token}", "--title", "live")
        deadline = time.monotonic() + 30
        seen = False
        while not seen and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen = json.loads(line)["token"] == token
        assert seen, "the live feed never showed the receipt"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=10)
        err = proc.stderr.read() if proc.stderr else ""
        assert proc.returncode == 0, err
        assert "resume with --after" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_prune_dry_run_counts_and_removes_nothing() -> None:
    out = cli("prune", "--app", APP, "--stale-after-days", "30", "--dry-run")
    assert out.stdout.startswith("would remove ") and out.stdout.rstrip().endswith("token(s)")
    out = cli("prune", "--app", APP, "--platform", "fcm", "--stale-after-days", "365")
    assert out.stdout.startswith("removed ")


def test_caller_mistakes_exit_non_zero_with_a_reason() -> None:
    out = cli("send", "--app", APP, "--title", "no target", check=False)
    assert out.returncode == 2 and "give a target" in out.stderr
    out = cli("send", "--app", APP, "--token", "nope", check=False)
    assert out.returncode == 2 and "apns:TOKEN" in out.stderr
    out = cli("send", "--app", "", "--all", check=False)
    assert out.returncode == 1 and "INVALID_ARGUMENT" in out.stderr
    out = cli("receipts", "--app", APP, check=False)
    assert out.returncode == 2 and "--follow" in out.stderr


def test_cancel_a_scheduled_send_then_list_it_and_the_users_tokens(tmp_path: Path) -> None:
    user = f"cli-{secrets.token_hex(4)}"
    tokens = _register(user)
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    request = tmp_path / "later.json"
    request.write_text(json.dumps({"target": {"users": {"userIds": [user]}}, "message": {"title": "later"}, "sendAt": later}))
    nid = cli("send", "--app", APP, "--file", str(request)).stdout.strip()
    out = cli("cancel", "--app", APP, nid)
    assert out.stdout.startswith(f"{nid}: ") and ("cancelling" in out.stdout or "cancelled" in out.stdout)
    rows = [json.loads(line) for line in cli("receipts", "--app", APP, "--notification", nid).stdout.splitlines()]
    assert sorted(r["token"] for r in rows) == sorted(tokens)
    assert {(r["status"], r["reason"]) for r in rows} == {("DELIVERY_STATUS_CANCELLED", "NotificationCancelled")}
    again = cli("cancel", "--app", APP, nid)  # twice is not an error
    assert f"{nid}: cancelled (0 delivered, 3 not sent)" in again.stdout

    listed = cli("notifications", "list", "--app", APP, "--state", "cancelled", "--page-size", "2")
    found = [json.loads(line) for line in listed.stdout.splitlines()]
    mine = [n for n in found if n["notification_id"] == nid]
    assert len(mine) == 1 and mine[0]["state"] == "NOTIFICATION_STATE_CANCELLED" and mine[0]["cancelled"] == "3"
    table = cli("notifications", "list", "--app", APP, "--limit", "1", "--format", "table").stdout.splitlines()
    assert table[0].split()[:3] == ["NOTIFICATION_ID", "STATE", "CREATED_AT"] and len(table) == 2

    rows = [json.loads(line) for line in cli("tokens", "list", "--app", APP, "--user", user, "--page-size", "2").stdout.splitlines()]
    assert sorted(r["token"] for r in rows) == sorted(tokens) and {r["user_id"] for r in rows} == {user}
    one = cli("tokens", "list", "--app", APP, "--user", user, "--platform", "apns", "--limit", "1", "--format", "table")
    lines = one.stdout.splitlines()
    assert lines[0].split() == ["PLATFORM", "USER_ID", "LAST_SEEN_AT", "LOCALE", "TOKEN"] and len(lines) == 2
    assert lines[1].split()[0] == "APNS" and lines[1].split()[-1] in tokens
    assert cli("tokens", "list", "--app", APP, "--user", user, "--platform", "fcm").stdout == ""


def test_cancel_and_list_mistakes_exit_non_zero_with_a_reason() -> None:
    out = cli("cancel", "--app", APP, "n-does-not-exist", check=False)
    assert out.returncode == 1 and "NOT_FOUND" in out.stderr
    out = cli("tokens", "list", "--app", APP, "--last-seen-before", "yesterday", check=False)
    assert out.returncode == 2 and "ISO 8601" in out.stderr
    out = cli("notifications", "list", "--app", APP, "--page-size", "0", check=False)
    assert out.returncode == 2 and "--page-size" in out.stderr


def test_send_at_local_time_waits_for_each_zone_then_cancel() -> None:
    user = f"cli-{secrets.token_hex(4)}"
    tokens = _register(user)
    # Two hours from now on the UTC wall clock: the fallback zone of these tokens (registered without one).
    at = time.strftime("%H:%M", time.gmtime(time.time() + 7200))
    nid = cli("send", "--app", APP, "--user", user, "--title", "at nine", "--local-time", at,
              "--fallback-timezone", "UTC", "--if-passed", "next-day").stdout.strip()
    with connect(TARGET) as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        n = stub.GetNotification(push_pb2.GetNotificationRequest(app_id=APP, notification_id=nid)).notification
    assert (n.state, n.waiting, n.targeted) == (push_pb2.NOTIFICATION_STATE_SCHEDULED, 3, 3)
    cli("cancel", "--app", APP, nid)
    rows = [json.loads(line) for line in cli("receipts", "--app", APP, "--notification", nid).stdout.splitlines()]
    assert sorted(r["token"] for r in rows) == sorted(tokens)
    assert {r["status"] for r in rows} == {"DELIVERY_STATUS_CANCELLED"}
    out = cli("send", "--app", APP, "--all", "--local-time", "25:00", check=False)
    assert out.returncode == 2 and "HH:MM" in out.stderr
    out = cli("send", "--app", APP, "--all", "--if-passed", "send-now", check=False)
    assert out.returncode == 2 and "--local-time" in out.stderr
    out = cli("send", "--app", APP, "--all", "--local-time", "09:00", "--fallback-timezone", "Mars/Base", check=False)
    assert out.returncode == 1 and "INVALID_ARGUMENT" in out.stderr and "fallback_timezone" in out.stderr


def test_send_with_a_rate_and_a_negative_rate_named() -> None:
    user = f"cli-{secrets.token_hex(4)}"
    _register(user)
    nid = cli("send", "--app", APP, "--user", user, "--title", "Hi", "--max-per-second", "20").stdout.strip()
    with connect(TARGET) as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        got = stub.GetNotification(push_pb2.GetNotificationRequest(app_id=APP, notification_id=nid))
    assert got.notification.max_per_second == 20
    bad = cli("send", "--app", APP, "--user", user, "--title", "Hi", "--max-per-second", "-5", check=False)
    assert bad.returncode != 0 and "max_per_second" in bad.stderr and "Traceback" not in bad.stderr
    huge = cli("send", "--app", APP, "--user", user, "--max-per-second", str(2**31), check=False)
    assert huge.returncode == 2 and "--max-per-second: out of range" in huge.stderr
