"""The Connect port shares the gRPC port's gate and drain: a receipt stream open when the drain begins
ends with UNAVAILABLE (the caller resumes by cursor elsewhere), and the port then closes."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest

from tests.connect.conftest import ConnectStack, envelope, unenvelope


async def test_open_stream_ends_unavailable_on_drain(stack: ConnectStack) -> None:
    exe = shutil.which("curl")
    if exe is None:
        pytest.skip("curl is not installed")
    url = stack.base_url + "/pushsvc.v1.PushService/StreamReceipts"
    # The app's live feed: runs until cancelled, or until the drain.
    proc = await asyncio.create_subprocess_exec(
        exe, "-sS", "-N", "--max-time", "30", "-H", "content-type: application/connect+json",
        "-H", f"authorization: Bearer {stack.keys['read']}", "--data-binary", "@-", url,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(envelope(json.dumps({"appId": "alpha"}).encode()))
    proc.stdin.close()
    await asyncio.sleep(1.0)  # the stream is open and waiting for receipts
    assert proc.returncode is None
    stack.stopped = True
    await stack.app.stop(5)
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    [(flags, end)] = unenvelope(out)
    assert flags == 2 and json.loads(end)["error"]["code"] == "unavailable", end
    refused = await asyncio.to_thread(
        subprocess.run, [exe, "-sS", "--max-time", "5", "-X", "POST", url], capture_output=True, timeout=10
    )
    assert refused.returncode != 0, "the port is closed after the drain"
