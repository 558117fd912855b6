"""Demo credentials, runtime registration and the `pushsvc emulator` entry point."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pushsvc.emulator import Emulator, EmulatorConfig, make_demo_credentials

from .conftest import JWT_GRANT, ssl_ctx_from


async def test_demo_credentials_work_against_the_emulator(tmp_path: Path):
    async with Emulator(EmulatorConfig()) as emulator:
        creds, apns_key, fcm_account = make_demo_credentials(
            tmp_path / "state", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        for path in (creds.apns_key_file, creds.fcm_service_account_file, creds.ca_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert creds.ca_file.read_bytes() == emulator.ca_pem
        assert len(creds.apns_key_id) == 10 and len(creds.apns_team_id) == 10
        assert (creds.apns_bundle_id, creds.fcm_project_id) == ("com.example.demo", "pushsvc-demo")
        assert apns_key.bundle_ids == ("com.example.demo",)
        p8 = load_pem_private_key(creds.apns_key_file.read_bytes(), password=None)
        assert isinstance(p8, ec.EllipticCurvePrivateKey) and isinstance(p8.curve, ec.SECP256R1)
        account = json.loads(creds.fcm_service_account_file.read_text())
        assert account["type"] == "service_account"
        assert account["token_uri"] == emulator.token_uri
        assert account["project_id"] == fcm_account.project_id == "pushsvc-demo"
        assert account["client_email"] == fcm_account.client_email
        assert {"private_key_id", "private_key", "client_id"} <= set(account)

        async with httpx.AsyncClient(http2=True, verify=ssl_ctx_from(emulator.ca_pem)) as client:
            token = jwt.encode(
                {"iss": creds.apns_team_id, "iat": int(time.time())},
                creds.apns_key_file.read_bytes(),
                algorithm="ES256",
                headers={"kid": creds.apns_key_id},
            )
            push = {"authorization": f"bearer {token}", "apns-topic": creds.apns_bundle_id}
            url = f"{emulator.apns_url}/3/device/{'ab' * 32}"
            before = await client.post(url, headers=push, content=b'{"aps":{}}')
            assert before.json()["reason"] == "InvalidProviderToken"  # not registered yet
            emulator.add_apns_key(apns_key)
            emulator.add_fcm_account(fcm_account)
            assert (await client.post(url, headers=push, content=b'{"aps":{}}')).status_code == 200

            now = int(time.time())
            assertion = jwt.encode(
                {
                    "iss": account["client_email"],
                    "aud": "https://oauth2.googleapis.com/token",
                    "iat": now,
                    "exp": now + 3600,
                    "scope": "https://www.googleapis.com/auth/cloud-platform",
                },
                account["private_key"],
                algorithm="RS256",
                headers={"kid": account["private_key_id"]},
            )
            token_response = await client.post(account["token_uri"], data={"grant_type": JWT_GRANT, "assertion": assertion})
            access = token_response.json()["access_token"]
            sent = await client.post(
                f"{emulator.fcm_url}/v1/projects/{account['project_id']}/messages:send",
                headers={"authorization": f"Bearer {access}"},
                json={"message": {"token": "x"}},
            )
            assert sent.status_code == 200


async def test_cli_runs_until_sigterm(tmp_path: Path):
    state = tmp_path / "state"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushsvc.emulator",
        "--apns-port",
        "0",
        "--apns-sandbox-port",
        "0",
        "--fcm-port",
        "0",
        "--state-dir",
        str(state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: list[str] = []
        async with asyncio.timeout(15):
            while not any("CA certificate" in line for line in lines):
                line = (await process.stdout.readline()).decode()
                assert line, (await process.stderr.read()).decode()
                lines.append(line)
        apns_url = next(line.split()[-1] for line in lines if "APNs production" in line)
        ca = (state / "ca.pem").read_bytes()
        async with httpx.AsyncClient(http2=True, verify=ssl_ctx_from(ca)) as client:
            assert (await client.get(apns_url + "/_emulator/stats")).status_code == 200
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
