"""Without the connect extra, a config that turns the port on is a config error naming the install line,
and `pushsvc dev` says how to get the port instead of failing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_WITHOUT = """\
import importlib.abc, sys

class _Uninstalled(importlib.abc.MetaPathFinder):
    # Stands in for a venv without the `connect` extra, in this subprocess only.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"connectrpc", "uvicorn"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Uninstalled())
"""


def test_check_config_names_the_extra(tmp_path: Path) -> None:
    config = tmp_path / "pushsvc.toml"
    config.write_text(
        'store_url = "postgresql://pushsvc@127.0.0.1:5432/pushsvc"\nconnect_port = 8080\n'
        '[[auth.api_keys]]\nname = "ci"\nhash = "sha256:' + "0" * 64 + '"\napps = ["*"]\nactions = ["send"]\n'
    )
    out = subprocess.run([sys.executable, "-c", _WITHOUT + f"from pushsvc.cli import main\nsys.exit(main({['check-config', str(config)]!r}))\n"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0, out.stdout + out.stderr
    assert "connect_port: serving Connect and gRPC-web needs the connect extra: pip install 'pushsvc[connect]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_dev_runs_without_it_and_says_how_to_add_it() -> None:
    from pushsvc.cli import _DEV_NO_CONNECT

    assert "pip install 'pushsvc[connect]'" in _DEV_NO_CONNECT
    code = "from pushsvc.cli import _dev_connect_port; print(_dev_connect_port('127.0.0.1', 0))"
    out = subprocess.run([sys.executable, "-c", _WITHOUT + code],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "None", out.stderr
