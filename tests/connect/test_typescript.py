"""A generated TypeScript client (Connect-ES: @connectrpc/connect-node, protoc-gen-es via buf) drives
every RPC over Connect JSON, Connect binary and gRPC-web, with the auth matrix's key cases."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.connect.conftest import ConnectStack

CLIENT = Path(__file__).parent / "ts"


def _tool(name: str) -> str:
    path = shutil.which(name) or (str(Path(sys.executable).parent / name) if (Path(sys.executable).parent / name).exists() else None)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="module")
def node() -> str:
    """node, with the client's pinned packages installed (npm ci), its code generated (buf) and compiled (tsc)."""
    node, npm, buf = _tool("node"), _tool("npm"), _tool("buf")
    if not (CLIENT / "node_modules/.package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=CLIENT, check=True, timeout=400)
    shutil.rmtree(CLIENT / "gen", ignore_errors=True)
    subprocess.run([buf, "generate", "../../../protos", "--template", "buf.gen.yaml"], cwd=CLIENT, check=True, timeout=120)
    subprocess.run([str(CLIENT / "node_modules/.bin/tsc"), "-p", "."], cwd=CLIENT, check=True, timeout=300)
    return node


async def test_every_rpc_over_each_protocol(node: str, stack: ConnectStack) -> None:
    credentials = {**stack.keys, "readJwt": stack.jwts["read"]}
    env = {"PATH": "/usr/bin:/bin", "PUSHSVC_TEST_CREDENTIALS": json.dumps(credentials)}
    out = await asyncio.to_thread(
        subprocess.run, [node, "dist/client.js", stack.base_url], cwd=CLIENT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert set(results) == {"connectJson", "connectBinary", "grpcWeb"}
    for name, seen in results.items():
        assert seen["registerCreated"] is True, name
        assert seen["batchOutcomes"] == [1, 1], name  # REGISTRATION_OUTCOME_CREATED
        assert seen["targeted"] == 3 and seen["receiptTokens"] == seen["sentTokens"], name
        assert seen["gotId"] is True and seen["removed"] is True and seen["pruneWouldRemove"] == 0, name
        assert seen["noCredential"] == {"code": "Unauthenticated", "fields": []}, name
        assert seen["wrongApp"] == {"code": "PermissionDenied", "fields": []}, name
        assert seen["wrongAction"] == {"code": "PermissionDenied", "fields": []}, name
        assert seen["badInput"] == {"code": "InvalidArgument", "fields": ["token"]}, name
        assert seen["streamWrongApp"] == {"code": "PermissionDenied", "fields": []}, name
