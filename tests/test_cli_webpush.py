"""`pushsvc webpush keys`, as a person runs it."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

BIN = Path(sys.executable).parent


def test_webpush_keys_prints_a_matching_pair_and_the_application_server_key() -> None:
    out = subprocess.run([str(BIN / "pushsvc"), "webpush", "keys"], capture_output=True, text=True, timeout=60, check=True).stdout
    pem = re.search(r"-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----\n", out, re.S)
    assert pem is not None
    key = serialization.load_pem_private_key(pem.group(0).encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    [server_key] = re.findall(r"applicationServerKey: ([A-Za-z0-9_-]+)\n", out)
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert base64.urlsafe_b64decode(server_key + "=") == public and "=" not in server_key
    [raw] = re.findall(r"private key \(base64url\): ([A-Za-z0-9_-]+)\n", out)
    assert int.from_bytes(base64.urlsafe_b64decode(raw + "="), "big") == key.private_numbers().private_value
    # Two runs, two keys.
    again = subprocess.run([str(BIN / "pushsvc"), "webpush", "keys"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert re.findall(r"applicationServerKey: (\S+)\n", again) != [server_key]


def test_deliver_sends_to_a_subscription_the_emulator_minted(tmp_path: Path) -> None:
    import json
    import ssl
    import time

    import httpx

    state = tmp_path / "emu"
    emu = subprocess.Popen(
        [str(BIN / "pushsvc"), "emulator", "--apns-port", "0", "--apns-sandbox-port", "0", "--fcm-port", "0", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        manifest = state / "emulator.json"
        deadline = time.monotonic() + 20
        while not manifest.exists():
            assert time.monotonic() < deadline, "no emulator manifest"
            time.sleep(0.05)
        urls = json.loads(manifest.read_text())
        with httpx.Client(verify=ssl.create_default_context(cafile=str(state / "ca.pem"))) as client:
            sub = client.post(f"{urls['webpush_url']}/_emulator/webpush/subscriptions").json()
            out = subprocess.run(
                [str(BIN / "pushsvc"), "deliver", "--manifest", str(manifest), "--webpush-token", json.dumps(sub),
                 "--title", "Hi", "--body", "browser"],
                capture_output=True, text=True, timeout=60,
            )
            assert out.returncode == 0, out.stdout + out.stderr
            assert "WEBPUSH: delivered status=201" in out.stdout
            [entry] = client.get(f"{urls['webpush_url']}/_emulator/inbox?platform=webpush").json()
        assert entry["token"] == sub["endpoint"] and entry["payload"] == {"title": "Hi", "body": "browser"}
    finally:
        emu.terminate()
        assert emu.wait(15) in (0, -15)
