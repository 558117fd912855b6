"""The TypeScript client (compiled with tsc, run by node's test runner) against a live server."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from tests.clients.conftest import ROOT, LiveRun, assert_resumed, assert_smoke, require_tool
from tests.clients.devserver import CutDriver, DevServer

CLIENT = ROOT / "clients/typescript"


@pytest.fixture(scope="module")
def node() -> str:
    """node, with the package's pinned dependencies installed (npm ci) and compiled (tsc)."""
    node = require_tool("node")
    npm = require_tool("npm")
    if not (CLIENT / "node_modules/.package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=CLIENT, check=True, timeout=400)
    subprocess.run([npm, "run", "--silent", "build"], cwd=CLIENT, check=True, timeout=400)
    return node


def _node_test(node: str, name: str) -> list[str]:
    return [node, "--test", "--test-reporter=spec", f"--test-name-pattern=^{name}$", str(Path("dist/test/live.test.js"))]


def test_typescript_smoke(node: str, smoke_server: DevServer, live: LiveRun) -> None:
    env = live.env(smoke_server)
    out = live.run([node, "dist/examples/send-and-follow.js", smoke_server.target], env, CLIENT, 120)
    assert "DELIVERY_STATUS_DELIVERED after 1 attempt(s)" in out.stdout
    assert out.stdout.rstrip().endswith("stream ended with OK")
    out = live.run(_node_test(node, "smoke"), env, CLIENT, 120)
    assert "ℹ pass 1" in out.stdout and "ℹ fail 0" in out.stdout
    assert_smoke(live.result("smoke"))


def test_typescript_resume(node: str, resume_server: DevServer, live: LiveRun) -> None:
    with CutDriver(resume_server, live.cut_dir) as driver:
        out = live.run(_node_test(node, "resume"), live.env(resume_server, cut=True), CLIENT, 240)
    assert "ℹ pass 1" in out.stdout and "ℹ fail 0" in out.stdout
    assert_resumed(live.result("resume"), resume_server, driver)


# Both module systems load the installed package and make one real call with it: a
# RegisterToken (retried by connect's service config, so idempotent) to the live server.
_CJS_CHECK = """
const { connect, Platform, RegisterTokenRequest, unary } = require("@pushsvc/client");
const client = connect(process.env.PUSHSVC_TARGET);
const request = RegisterTokenRequest.fromPartial({
  appId: process.env.PUSHSVC_APP_ID, token: "cjs-package-check", platform: Platform.PLATFORM_FCM, userId: "pkg" });
unary((cb) => client.registerToken(request, cb)).then((r) => {
  console.log("cjs " + r.created + " " + r.token.token + " " + require.resolve("@pushsvc/client"));
  client.close();
});
"""
_ESM_CHECK = """
import { connect, Platform, RegisterTokenRequest, unary } from "@pushsvc/client";
const client = connect(process.env.PUSHSVC_TARGET);
const request = RegisterTokenRequest.fromPartial({
  appId: process.env.PUSHSVC_APP_ID, token: "esm-package-check", platform: Platform.PLATFORM_FCM, userId: "pkg" });
const r = await unary((cb) => client.registerToken(request, cb));
console.log("esm " + r.created + " " + r.token.token + " " + import.meta.resolve("@pushsvc/client"));
client.close();
"""


def test_typescript_package_is_dual_with_readme_and_license(
    node: str, smoke_server: DevServer, live: LiveRun, tmp_path: Path
) -> None:
    npm = require_tool("npm")
    out = live.run([npm, "pack", "--dry-run", "--json", "--silent"], dict(live.env(smoke_server)), CLIENT, 240)
    files = {f["path"] for f in json.loads(out.stdout)[0]["files"]}
    for wanted in ("README.md", "LICENSE", "package.json", "dist/cjs/index.js", "dist/cjs/index.d.ts",
                   "dist/esm/index.js", "dist/esm/index.d.ts", "dist/esm/package.json"):
        assert wanted in files, (wanted, sorted(files))
    assert not [f for f in files if f.startswith(("dist/test", "dist/examples", "dist/src", "src/"))], sorted(files)
    assert "Apache License" in (CLIENT / "LICENSE").read_text()
    manifest = json.loads((CLIENT / "package.json").read_text())
    assert manifest["license"] == "Apache-2.0"

    # The packed tarball installed into a scratch project, as a user would.
    packed = live.run([npm, "pack", "--silent", "--pack-destination", str(tmp_path)], live.env(smoke_server), CLIENT, 240)
    tarball = tmp_path / packed.stdout.strip().splitlines()[-1]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "package.json").write_text('{"name": "scratch", "private": true}\n')
    live.run([npm, "install", "--no-audit", "--no-fund", "--silent", "--prefer-offline", str(tarball)],
             live.env(smoke_server), scratch, 300)
    (scratch / "check.cjs").write_text(_CJS_CHECK)
    (scratch / "check.mjs").write_text(_ESM_CHECK)
    cjs = live.run([node, "check.cjs"], live.env(smoke_server), scratch, 60).stdout.split()
    esm = live.run([node, "check.mjs"], live.env(smoke_server), scratch, 60).stdout.split()
    # Each module system got its own build (exports' require and import conditions).
    assert cjs[0] == "cjs" and cjs[3].endswith("node_modules/@pushsvc/client/dist/cjs/index.js"), cjs
    assert esm[0] == "esm" and urllib.parse.unquote(esm[3]).endswith("node_modules/@pushsvc/client/dist/esm/index.js"), esm
    # The live server registered each token anew.
    assert cjs[1:3] == ["true", "cjs-package-check"] and esm[1:3] == ["true", "esm-package-check"], (cjs, esm)
