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
