"""`pushsvc-client` without a server: its options, its version, and the receipts table's layout."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from pushsvc_client import cli
from pushsvc_client.v1 import push_pb2

CLI = str(Path(sys.executable).with_name("pushsvc-client"))


def test_version() -> None:
    from importlib.metadata import version

    out = subprocess.run([CLI, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout == f"pushsvc-client {version('pushsvc-client')}\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_server_and_its_deprecated_name_target(where: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli._parser("pushsvc-client")

    def parse(*option: str) -> str:
        command = ["prune", "--app", "a"]
        argv = [*option, *command] if where == "before" else [*command, *option]
        return str(parser.parse_args(argv).server)

    assert parse() == cli.DEFAULT_SERVER
    assert parse("--server", "h:1") == "h:1"
    assert capsys.readouterr().err == ""
    assert parse("--target", "h:2") == "h:2"
    assert capsys.readouterr().err == "pushsvc-client: --target is deprecated; use --server\n"


def test_the_receipts_table_is_aligned_under_its_headings() -> None:
    receipts = [
        push_pb2.Receipt(cursor="1.1", status=push_pb2.DELIVERY_STATUS_DELIVERED, platform=push_pb2.PLATFORM_APNS,
                         token="ab" * 32, attempts=1, provider_status=200),
        push_pb2.Receipt(cursor="123456.78", status=push_pb2.DELIVERY_STATUS_TOKEN_INVALID,
                         platform=push_pb2.PLATFORM_FCM, token="fcm-1", attempts=12, provider_status=404,
                         reason="UNREGISTERED"),
    ]
    out = io.StringIO()
    cli._print_receipts(receipts, "table", out)
    lines = out.getvalue().splitlines()
    assert lines == [
        "CURSOR        STATUS         PLATFORM  ATTEMPTS  PROVIDER_STATUS  REASON                  TOKEN",
        "1.1           DELIVERED      APNS      1         200                                      " + "ab" * 32,
        "123456.78     TOKEN_INVALID  FCM       12        404              UNREGISTERED            fcm-1",
    ]


def test_the_bar_survives_more_rows_than_the_estimate() -> None:
    from pushsvc_client.progress import BarProgress

    out = io.StringIO()
    bar = BarProgress(5, out)
    bar.update(3)
    bar.write("tokens.csv:2: token: must not be empty")
    bar.update(4)  # the file grew after its lines were counted
    bar.close()
    shown = out.getvalue()
    assert "tokens.csv:2: token: must not be empty\n" in shown
    assert "7/7 rows" in shown.splitlines()[-1]
