"""The kustomize base rendered for the tests: with kustomize (or kubectl kustomize) when installed, else by reading it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BASE = DEPLOY / "kubernetes" / "base"


def kustomize_command() -> list[str] | None:
    """How to run kustomize here, or None."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def build(directory: Path) -> list[dict[str, Any]]:
    """The resources `kubectl apply -k directory` would apply."""
    command = kustomize_command()
    if command is None:
        return read_base(directory)
    out = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=60, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def read_base(directory: Path) -> list[dict[str, Any]]:
    """kustomization.yaml's resources and generated ConfigMaps, without kustomize (no name hashes, no labels)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization.get("resources", []):
        docs += [doc for doc in yaml.safe_load_all((directory / name).read_text()) if doc]
    for generator in kustomization.get("configMapGenerator", []):
        data = {Path(f).name: (directory / f).read_text() for f in generator.get("files", [])}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One resource per kind (the base has one of each)."""
    kinds = [doc["kind"] for doc in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {doc["kind"]: doc for doc in docs}
