"""The grpcurl calls of docs/operations/security.md, against the secured server: an independent client over TLS and mTLS."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.auth.conftest import Secured

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
pytestmark = pytest.mark.skipif(GRPCURL is None, reason="grpcurl is not installed (the dev extra brings it)")


async def grpcurl(s: Secured, tmp_path: Path, cert: str, *args: str) -> tuple[int, str]:
    """Runs grpcurl with the server's CA and the named client certificate; returns (exit status, output)."""
    (tmp_path / "ca.crt").write_bytes(s.ca.cert_pem.bytes())
    pem = s.plain_cert if cert == "plain" else s.certs[cert]
    (tmp_path / "client.crt").write_bytes(pem.cert_pem)
    (tmp_path / "client.key").write_bytes(pem.key_pem)
    proc = await asyncio.create_subprocess_exec(
        str(GRPCURL), "-cacert", str(tmp_path / "ca.crt"), "-cert", str(tmp_path / "client.crt"),
        "-key", str(tmp_path / "client.key"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


async def test_grpcurl_with_api_key_and_with_mesh_identity(secured: Secured, tmp_path: Path) -> None:
    target = f"127.0.0.1:{secured.app.port}"
    body = json.dumps({"app_id": "alpha", "token": "a1" * 32, "platform": "PLATFORM_APNS"})
    method = "pushsvc.v1.PushService/RegisterToken"
    code, out = await grpcurl(
        secured, tmp_path, "plain", "-H", f"authorization: Bearer {secured.keys['register']}", "-d", body, target, method
    )
    assert code == 0 and '"created": true' in out, out
    code, out = await grpcurl(secured, tmp_path, "register", "-d", body, target, method)
    assert code == 0 and '"token"' in out, out
    code, out = await grpcurl(secured, tmp_path, "plain", "-d", body, target, method)
    assert code != 0 and "Unauthenticated" in out, out
    code, out = await grpcurl(secured, tmp_path, "send", "-d", body, target, method)
    assert code != 0 and "PermissionDenied" in out, out


async def test_health_check_through_reflection_needs_a_credential_and_works_with_one(secured: Secured, tmp_path: Path) -> None:
    # grpcurl asks reflection for the method first, and reflection needs a credential
    # (kubelet's probes, which need none, do not use it): the -H form of docs/operations/security.md.
    target = f"127.0.0.1:{secured.app.port}"
    method = "grpc.health.v1.Health/Check"
    code, out = await grpcurl(secured, tmp_path, "plain", target, method)
    assert code != 0 and "Unauthenticated" in out, out
    key = secured.keys["register"]
    code, out = await grpcurl(secured, tmp_path, "plain", "-H", f"authorization: Bearer {key}", target, method)
    assert code == 0 and '"status": "SERVING"' in out, out


GHZ = shutil.which("ghz") or next((str(p) for p in [Path.home() / "go/bin/ghz"] if p.exists()), None)


@pytest.mark.skipif(GHZ is None, reason="ghz is not installed (go install github.com/bojand/ghz/cmd/ghz@v0.120.0)")
async def test_ghz_needs_reflect_metadata_for_the_credential_of_its_reflection_call(secured: Secured, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(secured.ca.cert_pem.bytes())
    (tmp_path / "client.crt").write_bytes(secured.plain_cert.cert_pem)
    (tmp_path / "client.key").write_bytes(secured.plain_cert.key_pem)
    bearer = json.dumps({"authorization": f"Bearer {secured.keys['register']}"})

    async def ghz(*flags: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            str(GHZ), "--cacert", str(tmp_path / "ca.crt"), "--cert", str(tmp_path / "client.crt"),
            "--key", str(tmp_path / "client.key"), "--call", "pushsvc.v1.PushService/RegisterToken",
            "-d", json.dumps({"app_id": "alpha", "token": "b1" * 32, "platform": "PLATFORM_APNS"}),
            "-n", "5", "-c", "1", "-O", "json", *flags, f"127.0.0.1:{secured.app.port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode()

    # --metadata goes on the calls only; reflection, first, is refused without its own.
    code, out = await ghz("--metadata", bearer)
    assert code != 0 and "nauthenticated" in out, out
    code, out = await ghz("--metadata", bearer, "--reflect-metadata", bearer)
    assert code == 0, out
    assert json.loads(out)["statusCodeDistribution"] == {"OK": 5}, out
