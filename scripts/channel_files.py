"""Lists the hand-written files outside a channel's own modules that name it (issue 19's goal).

"A new channel touches at most 4 hand-written files outside its own package
(proto, registry entry, docs), plus generated code." This counts, for one
channel, the tracked files that name it, leaving out its own modules (its
package and its emulator handler), generated code, tests and benches, and
sorting the rest into the allowed kinds (the proto, the registry entry, docs)
and everything else, which should be nothing. `python scripts/channel_files.py
webpush` prints them; tests/test_channel_files.py holds the count.

Some names are not the channel: FCM's own `webpush` block (FcmOptions.webpush,
FCM HTTP v1's WebpushConfig) and FCM's error text, and the reference
document's file name; those lines are listed in `NOT_THE_CHANNEL`, by file,
so any other mention in those files still counts.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PATTERNS = {
    "webpush": re.compile(r"web[ _-]?push", re.IGNORECASE),
    "hms": re.compile(r"(?<![a-z])hms(?![a-z])|huawei|push kit", re.IGNORECASE),
}
"""How each channel's name is written anywhere (identifiers, prose, file names)."""

OWN = {
    "webpush": ("pushsvc/channels/webpush/", "pushsvc/emulator/webpush.py", "docs/api/webpush.md"),
    "hms": ("pushsvc/channels/hms/", "pushsvc/emulator/hms.py", "docs/api/hms.md"),
}
"""A channel's own modules: its package, its emulator handler and its own page of the docs."""

GENERATED = (
    "pushsvc/v1/", "clients/python/src/pushsvc_client/v1/", "clients/go/pushsvc/", "clients/typescript/src/gen/",
    "clients/java/src/main/java/dev/pushsvc/v1/", "docs/config.md", "docs/api/reference.md",
)
"""Made by scripts/gen, scripts/gen-clients, scripts/gen-config-reference and scripts/gen-api-docs."""

NOT_HAND_WRITTEN_PRODUCT = ("tests/", "bench/")
"""Tests and benchmarks: they exercise a channel, the product does not need them to have it."""

ALLOWED = {"proto": ("protos/",), "registry entry": ("pushsvc/channels/registry.py",), "docs": ("docs/", "README.md", "mkdocs.yml")}
"""The kinds of file a new channel may touch, by path prefix."""

NOT_THE_CHANNEL: dict[str, tuple[str, ...]] = {
    "*": (r"protocols-webpush-hms\.md",),  # the reference document of both channels' protocols
    "pushsvc/providers/fcm.py": (
        r"APNs/Web Push credentials", r"`\.apns` and `\.webpush` are deep-merged", r'\("webpush", message\.fcm\.webpush\)',
    ),
    "pushsvc/models.py": (r"^    webpush: Mapping\[str, Any\] = dataclasses\.field\(default_factory=dict\)$",),  # FcmOptions
    "pushsvc/validation.py": (r"m\.fcm\.webpush",),
    "pushsvc/rpc/convert.py": (r'webpush=_struct\(m\.fcm, "webpush"\)',),
    "pushsvc/emulator/fcm.py": (r'Auth error from APNS or Web Push', r'^        "webpush",$'),  # FCM's message fields
    "pushsvc/emulator/default_scenario.toml": (r"Auth error from APNS or Web Push Service",),  # FCM's error text
    "protos/pushsvc/v1/push.proto": (r"google\.protobuf\.Struct webpush = 3;",),  # FcmOptions.webpush
    # pywebpush: the conformance tests' independent sender (the dev extra), not the product.
    "pyproject.toml": (r"pywebpush==", r"# Web Push conformance", r"independent decoder of what pushsvc sends"),
}
"""Lines that name something else (FCM's `webpush` block and error text), or name the channel only for tests."""


@dataclasses.dataclass(frozen=True)
class Mention:
    """A file outside the channel's own modules that names it, and the first line that does."""

    path: str
    kind: str
    """"proto", "registry entry", "docs", or "other" (code or data a new channel should not need to touch)."""
    line: str


def mentions(channel: str, root: Path = ROOT) -> list[Mention]:
    """Every tracked, hand-written product file outside `channel`'s own modules that names it (in the checkout at `root`)."""
    pattern = PATTERNS[channel]
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for path in files:
        if path.startswith((*OWN[channel], *GENERATED, *NOT_HAND_WRITTEN_PRODUCT)) or path == "scripts/channel_files.py":
            continue
        try:
            text = (root / path).read_text("utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary (images), or a submodule
        exempt = [re.compile(p) for p in (*NOT_THE_CHANNEL["*"], *NOT_THE_CHANNEL.get(path, ()))]
        for line in text.splitlines():
            if pattern.search(line) and not any(e.search(line) for e in exempt):
                kind = next((k for k, prefixes in ALLOWED.items() if path.startswith(prefixes)), "other")
                found.append(Mention(path, kind, line.strip()[:120]))
                break
    return found


def main(argv: list[str]) -> int:
    channel = argv[0] if argv else "webpush"
    found = mentions(channel)
    for m in found:
        print(f"{m.kind:15} {m.path}: {m.line}")
    others = [m for m in found if m.kind == "other"]
    print(f"{len(found)} files outside {channel}'s own modules name it; {len(found) - len(others)} proto, registry or docs, {len(others)} other")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
