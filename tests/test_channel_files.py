"""Issue 19's goal: a new channel touches at most 4 hand-written files outside its own package (proto, registry entry, docs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.channel_files import mentions

STILL_NAMED: dict[str, set[str]] = {"webpush": set(), "hms": set()}
"""The product files outside the proto, the registry and the docs that still name a channel: none. The
emulator's web inbox shows a channel through its handler (`HandlerSpec.display`, label, icon, colour)."""


@pytest.mark.parametrize("channel", ["webpush", "hms"])
def test_a_channel_is_named_only_by_the_proto_the_registry_and_the_docs(channel: str) -> None:
    found = mentions(channel)
    by_kind: dict[str, set[str]] = {}
    for m in found:
        by_kind.setdefault(m.kind, set()).add(m.path)
    assert by_kind["proto"] == {"protos/pushsvc/v1/push.proto"}
    assert by_kind["registry entry"] == {"pushsvc/channels/registry.py"}
    # Nothing else may start naming it; what still does is listed, and shrinks.
    assert by_kind.get("other", set()) == STILL_NAMED[channel], by_kind.get("other")
    # Code and data besides the docs: the proto, the registry entry, and at most what is listed above.
    assert len(by_kind["proto"] | by_kind["registry entry"] | by_kind.get("other", set())) <= 4


def test_a_new_mention_is_caught(tmp_path: Path) -> None:
    # The count cannot pass by construction: a platform switch outside the channel is "other",
    # FCM's own webpush block is not the channel, and the channel's own modules are left out.
    files = {
        "pushsvc/bootstrap.py": 'if platform is Platform.WEBPUSH:\n    pass\n',
        "pushsvc/validation.py": '        ("message.fcm.webpush", m.fcm.webpush),\n',
        "pushsvc/channels/webpush/channel.py": "WEBPUSH\n",
        "pushsvc/channels/registry.py": "from pushsvc.channels.webpush import channel as webpush\n",
        "tests/test_x.py": "webpush\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    assert {(m.path, m.kind) for m in mentions("webpush", tmp_path)} == {
        ("pushsvc/bootstrap.py", "other"), ("pushsvc/channels/registry.py", "registry entry"),
    }
