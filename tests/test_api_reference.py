"""docs/api/reference.md is the proto's reference: current, complete, and made from its comments."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from pushsvc.v1 import push_pb2

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "api" / "reference.md"


def _generator() -> ModuleType:
    # scripts/ is not a package: load the generator from its file, as scripts/gen-api-docs runs it.
    spec = importlib.util.spec_from_file_location("api_reference", ROOT / "scripts" / "api_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_is_current() -> None:
    # A comment, field or RPC changed in the proto without scripts/gen-api-docs fails here.
    assert PAGE.read_text() == _generator().render(), "run scripts/gen-api-docs and commit docs/api/reference.md"


def test_every_rpc_message_enum_and_field_is_documented() -> None:
    text = PAGE.read_text()
    headings = set(re.findall(r"^### (\w+)$", text, flags=re.MULTILINE))
    service = push_pb2.DESCRIPTOR.services_by_name["PushService"]
    assert {m.name for m in service.methods} <= headings
    assert set(push_pb2.DESCRIPTOR.enum_types_by_name) <= headings
    messages = push_pb2.DESCRIPTOR.message_types_by_name
    assert set(messages) <= headings
    for message in messages.values():
        section = text.split(f"\n### {message.name}\n", 1)[1].split("\n### ", 1)[0]
        for field in message.fields:
            assert f"| `{field.name}` | {field.number} |" in section, f"{message.name}.{field.name} is not in the reference"
    for enum in push_pb2.DESCRIPTOR.enum_types_by_name.values():
        section = text.split(f"\n### {enum.name}\n", 1)[1].split("\n### ", 1)[0]
        for value in enum.values:
            assert f"| `{value.name}` | {value.number} |" in section


def test_the_proto_comments_reach_the_page() -> None:
    # Comments are the page's content: one from each kind of element, as the proto words it.
    module = _generator()
    file = module.descriptor()
    text = module.render(file)
    assert "PushService registers device tokens, sends notifications through APNs and" in text  # the service
    assert "Durably accepts a notification for asynchronous fan-out." in text  # an RPC
    assert "| `stale_after` | 2 | [`google.protobuf.Duration`]" in text  # a well-known type, linked
    assert "Tokens whose last_seen_at is older than this are removed. Absent means the configured default (60 days)." in text
    assert "| `DELIVERY_STATUS_TOKEN_INVALID` | 3 | The token is dead; removed if it was registered. |" in text  # an enum value
    assert "| `devices` | 1 | [`DeviceList`](#devicelist) | One of `kind`. |" in text  # a oneof member
    assert "| `would_remove` | 2 | optional `int64` |" in text  # proto3 optional
    assert "| `headers` | 2 | `map<string, string>` |" in text  # a map
    assert "rpc StreamReceipts(StreamReceiptsRequest) returns (stream StreamReceiptsResponse);" in text


def test_a_changed_comment_changes_the_page(tmp_path: Path) -> None:
    # The page follows the proto: a reworded comment in a copy of it shows up in the rendered text.
    proto = (ROOT / "protos" / "pushsvc" / "v1" / "push.proto").read_text()
    before = "// Removes a device token. Unknown tokens are not an error."
    assert before in proto
    copy = tmp_path / "pushsvc" / "v1" / "push.proto"
    copy.parent.mkdir(parents=True)
    copy.write_text(proto.replace(before, "// Forgets a device token, reworded for this test."))
    module = _generator()
    text = module.render(module.descriptor(tmp_path))
    assert "Forgets a device token, reworded for this test." in text
    assert "Unknown tokens are not an error." not in text
