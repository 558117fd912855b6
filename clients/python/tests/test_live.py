"""Runs against a live `pushsvc dev` (tests/clients starts it and sets the env).

PUSHSVC_TARGET names the server; the resume test also takes PUSHSVC_CUT_DIR and
PUSHSVC_CUT_AFTER: after that many receipts it creates CUT_DIR/ready and waits
for CUT_DIR/go while the driver restarts the server, so the stream is cut
mid-way. Each test writes its findings to PUSHSVC_RESULT_DIR/<test>.json.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from pushsvc_client import ReceiptStream, connect
from pushsvc_client.v1 import push_pb2, push_pb2_grpc

TARGET = os.environ.get("PUSHSVC_TARGET", "")
APP = os.environ.get("PUSHSVC_APP_ID", "demo")

pytestmark = pytest.mark.skipif(not TARGET, reason="PUSHSVC_TARGET is not set (tests/clients sets it)")


def _write_result(name: str, result: dict[str, object]) -> None:
    out = Path(os.environ.get("PUSHSVC_RESULT_DIR", "."))
    (out / f"{name}.json").write_text(json.dumps(result))


def _register_all(
    stub: push_pb2_grpc.PushServiceStub, user: str, tokens: list[tuple[str, push_pb2.Platform.ValueType]]
) -> None:
    for token, platform in tokens:
        stub.RegisterToken(
            push_pb2.RegisterTokenRequest(app_id=APP, token=token, platform=platform, user_id=user)
        )


def _send_to_user(stub: push_pb2_grpc.PushServiceStub, user: str) -> str:
    sent = stub.Send(
        push_pb2.SendRequest(
            app_id=APP,
            target=push_pb2.Target(users=push_pb2.UserList(user_ids=[user])),
            message=push_pb2.Message(title="client test", body="python"),
        )
    )
    return sent.notification_id


def test_example_program() -> None:
    example = Path(__file__).resolve().parent.parent / "examples/send_and_follow.py"
    out = subprocess.run(
        [sys.executable, str(example), "--server", TARGET, "--app", APP],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert "DELIVERED after 1 attempt(s)" in out.stdout
    assert out.stdout.rstrip().endswith("stream ended with OK")


def test_smoke() -> None:
    user = f"smoke-py-{secrets.token_hex(4)}"
    ok_token = "ab" + secrets.token_hex(31)
    dead_token = "0410" + secrets.token_hex(30)
    fcm_token = f"py-smoke-{secrets.token_hex(6)}"
    with connect(TARGET) as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        _register_all(
            stub, user,
            [(ok_token, push_pb2.PLATFORM_APNS), (dead_token, push_pb2.PLATFORM_APNS), (fcm_token, push_pb2.PLATFORM_FCM)],
        )
        nid = _send_to_user(stub, user)
        # The generated stub itself: the stream ends by itself, with OK.
        call = stub.StreamReceipts(push_pb2.StreamReceiptsRequest(app_id=APP, notification_id=nid), timeout=60)
        receipts = [r.receipt for r in call]
        assert call.code() == grpc.StatusCode.OK
    statuses = {r.token: push_pb2.DeliveryStatus.Name(r.status) for r in receipts}
    assert statuses == {
        ok_token: "DELIVERY_STATUS_DELIVERED",
        dead_token: "DELIVERY_STATUS_TOKEN_INVALID",
        fcm_token: "DELIVERY_STATUS_DELIVERED",
    }
    assert all(r.cursor for r in receipts) and len({r.cursor for r in receipts}) == 3
    _write_result("smoke", {"notification_id": nid, "receipts": len(receipts), "status": "OK"})


def test_resume() -> None:
    cut_dir = Path(os.environ["PUSHSVC_CUT_DIR"]) if os.environ.get("PUSHSVC_CUT_DIR") else None
    if cut_dir is None:
        pytest.skip("PUSHSVC_CUT_DIR is not set: only tests/clients can restart the server")
    cut_after = int(os.environ.get("PUSHSVC_CUT_AFTER", "50"))
    user = f"resume-py-{secrets.token_hex(4)}"
    run = secrets.token_hex(4)
    # quota- tokens answer 429 with Retry-After: 1 first, so the notification is
    # still running when the stream is cut.
    tokens: list[tuple[str, push_pb2.Platform.ValueType]]
    tokens = [("ab" + secrets.token_hex(31), push_pb2.PLATFORM_APNS) for _ in range(200)]
    tokens += [(f"quota-{run}-{i}", push_pb2.PLATFORM_FCM) for i in range(100)]
    with connect(TARGET) as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        _register_all(stub, user, tokens)
        nid = _send_to_user(stub, user)
        stream = ReceiptStream(stub, APP, nid, resume_timeout_s=60)
        seen: list[push_pb2.Receipt] = []
        for receipt in stream:
            seen.append(receipt)
            if len(seen) == cut_after:
                (cut_dir / "ready").touch()
                deadline = time.monotonic() + 90
                while not (cut_dir / "go").exists():
                    assert time.monotonic() < deadline, "the driver never restarted the server"
                    time.sleep(0.05)
    got = [r.token for r in seen]
    assert len(got) == len(tokens), f"{len(got)} receipts for {len(tokens)} tokens"
    assert set(got) == {t for t, _ in tokens}
    assert len({r.cursor for r in seen}) == len(tokens)
    assert stream.resumes >= 1, "the stream was never cut"
    assert {push_pb2.DeliveryStatus.Name(r.status) for r in seen} == {"DELIVERY_STATUS_DELIVERED"}
    _write_result(
        "resume",
        {"notification_id": nid, "receipts": len(got), "unique_tokens": len(set(got)),
         "unique_cursors": len({r.cursor for r in seen}), "resumes": stream.resumes, "status": "OK"},
    )
