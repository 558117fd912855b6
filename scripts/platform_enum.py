"""Prints pushsvc/v1/platform.py: push.proto's Platform enum as a plain Python enum (scripts/gen runs it).

The domain layer (pushsvc.models) uses this enum and imports no protobuf, and a
channel's platform comes from the proto alone: adding `PLATFORM_<NAME>` to
push.proto and running scripts/gen gives `Platform.<NAME>`, stored as "<name>".
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pushsvc.v1 import push_pb2  # noqa: E402  (after the repository root is on the path)

_PREFIX = "PLATFORM_"


def render() -> str:
    """The module's text: one member per proto value, in the proto's order; its value the lower-case name."""
    lines = [
        '"""Generated from protos/pushsvc/v1/push.proto\'s Platform enum by scripts/gen; never edit by hand."""',
        "",
        "from __future__ import annotations",
        "",
        "import enum",
        "",
        "",
        "class Platform(enum.Enum):",
        '    """The push provider a token belongs to. UNSPECIFIED only ever reaches validation, which rejects it."""',
        "",
    ]
    for value in push_pb2.DESCRIPTOR.enum_types_by_name["Platform"].values:
        name = value.name.removeprefix(_PREFIX)
        lines.append(f'    {name} = "{name.lower()}"')
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
