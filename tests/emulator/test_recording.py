"""Recorded runs: the inbox exported as JSON lines after real sends, checked offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pushsvc.emulator import recording

from .conftest import BUNDLE, PROJECT, hex_token

ALERT = {
    "aps": {
        "alert": {"title": "Order shipped", "subtitle": "#1042", "body": "Arrives Friday"},
        "badge": 3,
        "sound": "chime.caf",
        "category": "ORDER",
    },
    "image-url": "https://example.com/box.png",
}


async def record_a_run(client, emulator, make_jwt, access_token) -> None:
    headers = {"apns-topic": BUNDLE, "authorization": f"bearer {make_jwt()}"}
    for token in (hex_token("aa"), hex_token("0410")):
        await client.post(f"{emulator.apns_url}/3/device/{token}", headers=headers, content=json.dumps(ALERT).encode())
    message = {
        "token": "quota-pixel",
        "notification": {"title": "Hi", "body": "from FCM", "image": "https://example.com/a.png"},
        "android": {"notification": {"sound": "ping", "click_action": "OPEN"}},
        "apns": {"payload": {"aps": {"badge": 1}}},
    }
    for _ in range(2):  # 429 QUOTA_EXCEEDED first, then accepted
        await client.post(
            f"{emulator.fcm_url}/v1/projects/{PROJECT}/messages:send",
            headers={"authorization": f"Bearer {access_token}"},
            json={"message": message},
        )


async def export(client, emulator, tmp_path: Path, query: str = "format=jsonl&rejected=1") -> Path:
    response = await client.get(f"{emulator.fcm_url}/_emulator/inbox?{query}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jsonl"
    path = tmp_path / "run.jsonl"
    path.write_bytes(response.content)
    return path


async def test_export_and_check_offline(client, emulator, make_jwt, access_token, tmp_path):
    await record_a_run(client, emulator, make_jwt, access_token)
    run = recording.load(await export(client, emulator, tmp_path))
    assert [(r.platform, r.status, r.reason) for r in run.records] == [
        ("apns", 200, ""),
        ("apns", 410, "Unregistered"),
        ("fcm", 429, "RESOURCE_EXHAUSTED/QUOTA_EXCEEDED"),
        ("fcm", 200, ""),
    ]
    shipped = run.records[0].display
    assert (shipped.app, shipped.title, shipped.subtitle, shipped.body) == (BUNDLE, "Order shipped", "#1042", "Arrives Friday")
    assert (shipped.badge, shipped.sound, shipped.category, shipped.image) == (3, "chime.caf", "ORDER", "https://example.com/box.png")
    fcm = run.records[3].display
    assert (fcm.app, fcm.title, fcm.body, fcm.image, fcm.sound, fcm.category, fcm.badge) == (
        PROJECT, "Hi", "from FCM", "https://example.com/a.png", "ping", "OPEN", 1
    )
    run.expect(token="quota-pixel", status=429, count=1)
    run.expect(prefix="0410", status=410, reason="Unregistered")
    run.expect(platform="apns", title="Order shipped", at_least=2, at_most=2)
    run.expect(app=PROJECT, status=200, count=1)
    with pytest.raises(AssertionError, match=r"title='Nope': expected at least 1, found 0"):
        run.expect(title="Nope")
    with pytest.raises(recording.RecordingError, match="unknown expectation key 'titel'"):
        run.expect(titel="x")


async def test_jsonl_without_rejected_and_plain_json_unchanged(client, emulator, make_jwt, access_token, tmp_path):
    await record_a_run(client, emulator, make_jwt, access_token)
    run = recording.load(await export(client, emulator, tmp_path, "format=jsonl"))
    assert [r.status for r in run.records] == [200, 200]
    plain = (await client.get(f"{emulator.fcm_url}/_emulator/inbox")).json()
    assert len(plain) == 2 and "status" not in plain[0]
    merged = (await client.get(f"{emulator.fcm_url}/_emulator/inbox?rejected=1&platform=fcm")).json()
    assert [(e["token"], e["status"]) for e in merged] == [("quota-pixel", 429), ("quota-pixel", 200)]


async def test_replay_command(client, emulator, make_jwt, access_token, tmp_path):
    await record_a_run(client, emulator, make_jwt, access_token)
    run = await export(client, emulator, tmp_path)
    good = tmp_path / "good.toml"
    good.write_text('[[expect]]\ntoken = "quota-pixel"\nstatus = 200\ncount = 1\n\n[[expect]]\nbadge = 3\nat_least = 1\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[[expect]]\nplatform = "fcm"\nstatus = 200\ncount = 5\n')
    typo = tmp_path / "typo.toml"
    typo.write_text('[[expect]]\ntokn = "x"\n')

    def replay(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pushsvc.emulator", "replay", str(run), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    ok = replay("--expect", str(good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "4 records, 2 expectations, 0 failed" in ok.stdout
    failed = replay("--expect", str(good), "--expect", str(bad))
    assert failed.returncode == 1
    assert "FAIL platform='fcm', status=200: expected exactly 5, found 1" in failed.stdout
    broken = replay("--expect", str(typo))
    assert broken.returncode == 2 and "expect[0]: unknown key 'tokn'" in broken.stderr


def test_a_bad_line_is_named():
    with pytest.raises(recording.RecordingError, match="line 2"):
        recording.loads('{"platform":"fcm","token":"t","environment":"","headers":{},"payload":{},'
                        '"message_id":"m","received_at":1}\n[1, 2]\n')


def test_select_by_pushsvcs_notification_id():
    lines = [
        {"platform": "fcm", "token": "t1", "environment": "", "headers": {}, "message_id": "projects/p/messages/1",
         "received_at": 1.0, "payload": {"data": {"pushsvc_notification_id": "n1", "k": "v"}}},
        {"platform": "apns", "token": "t2", "environment": "production", "headers": {"apns-topic": "b"},
         "message_id": "m2", "received_at": 2.0, "payload": {"aps": {}, "pushsvc_notification_id": "n1"}},
        {"platform": "apns", "token": "t3", "environment": "production", "headers": {"apns-topic": "b"},
         "message_id": "m3", "received_at": 3.0, "payload": {"aps": {}, "pushsvc_notification_id": "n2"}},
    ]
    run = recording.loads("\n".join(json.dumps(line) for line in lines))
    assert [r.token for r in run.select(notification_id="n1")] == ["t1", "t2"]
    run.expect(notification_id="n2", count=1)
    assert run.records[0].display.data == {"pushsvc_notification_id": "n1", "k": "v"}
