"""The API reference (docs/api/reference.md), made from protos/pushsvc/v1/push.proto's comments.

protoc (grpcio-tools) compiles the proto into a descriptor set with its source
info, which keeps every comment beside the element it documents; this module
walks that set and writes one Markdown page: the service and each RPC, then
every message and enum in the order the proto declares them. The page is
generated so that the documentation and the contract cannot drift:
scripts/check and tests/test_api_reference.py fail when the committed page
differs from what this produces. Run scripts/gen-api-docs after changing the
proto.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO = "pushsvc/v1/push.proto"

# Field numbers of FileDescriptorProto, DescriptorProto, ServiceDescriptorProto and
# EnumDescriptorProto, which SourceCodeInfo's location paths are made of.
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_FIELD, _ONEOF = 2, 8
_METHOD = 2
_VALUE = 2

_TYPES = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}

# Well-known types link to their own reference.
_WELL_KNOWN = "https://protobuf.dev/reference/protobuf/google.protobuf/#"


@dataclass(frozen=True)
class Comments:
    """A proto element's comments, keyed by its source-info path."""

    by_path: dict[tuple[int, ...], str]
    line_of: dict[tuple[int, ...], int]

    def text(self, path: tuple[int, ...]) -> str:
        return self.by_path.get(path, "")

    def line(self, path: tuple[int, ...]) -> int:
        return self.line_of.get(path, 0)


def descriptor(proto_root: Path = ROOT / "protos") -> descriptor_pb2.FileDescriptorProto:
    """Compiles the proto with protoc and returns its file descriptor, comments included."""
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "push.pb"
        rc = protoc.main(
            ["protoc", f"-I{proto_root}", f"-I{well_known}", f"--descriptor_set_out={out}", "--include_source_info", PROTO]
        )
        if rc != 0:
            raise SystemExit(f"protoc failed on {PROTO} (exit {rc})")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (file,) = (f for f in files.file if f.name == PROTO)
    return file


def comments(file: descriptor_pb2.FileDescriptorProto) -> Comments:
    by_path: dict[tuple[int, ...], str] = {}
    line_of: dict[tuple[int, ...], int] = {}
    for loc in file.source_code_info.location:
        path = tuple(loc.path)
        line_of.setdefault(path, loc.span[0])
        text = "\n".join(part.strip("\n") for part in (loc.leading_comments, loc.trailing_comments) if part.strip())
        if text:
            by_path[path] = _unindent(text)
    return Comments(by_path, line_of)


def _unindent(text: str) -> str:
    # protoc keeps the one space after "//"; paragraphs are separated by blank comment lines.
    return "\n".join(line[1:] if line.startswith(" ") else line for line in text.splitlines()).strip()


def _one_line(text: str) -> str:
    """A comment as one table cell: paragraphs joined, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _anchor(name: str) -> str:
    # The heading's id as MkDocs' toc extension makes it: lower-cased, for a bare identifier.
    return name.lower()


def _type_name(field: descriptor_pb2.FieldDescriptorProto, package: str) -> str:
    if field.type in _TYPES:
        return f"`{_TYPES[field.type]}`"
    name = field.type_name.lstrip(".")
    if name.startswith("google.protobuf."):
        short = name.removeprefix("google.protobuf.")
        return f"[`{name}`]({_WELL_KNOWN}{short.lower()})"
    local = name.removeprefix(f"{package}.")
    return f"[`{local}`](#{_anchor(local)})"


def _map_entries(message: descriptor_pb2.DescriptorProto) -> dict[str, descriptor_pb2.DescriptorProto]:
    return {f".{n.name}": n for n in message.nested_type if n.options.map_entry}


def _field_type(
    field: descriptor_pb2.FieldDescriptorProto, message: descriptor_pb2.DescriptorProto, package: str, full_name: str
) -> str:
    entries = {f".{package}.{full_name}{suffix}": entry for suffix, entry in _map_entries(message).items()}
    if field.type_name in entries:
        key, value = entries[field.type_name].field
        # One code span: a bare "<" would start an HTML tag in Markdown.
        shown = f"`map<{_TYPES[key.type]}, {_TYPES.get(value.type) or value.type_name.lstrip('.').removeprefix(f'{package}.')}>`"
        return shown if value.type in _TYPES else f"{shown} ({_type_name(value, package)})"
    kind = _type_name(field, package)
    if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
        return f"repeated {kind}"
    if field.proto3_optional:
        return f"optional {kind}"
    return kind


def _service(file: descriptor_pb2.FileDescriptorProto, notes: Comments) -> Iterable[str]:
    for s, service in enumerate(file.service):
        path = (_SERVICE, s)
        yield f"## {service.name}\n"
        yield f"`{file.package}.{service.name}`. {notes.text(path)}\n"
        yield "| RPC | request | response | what it does |"
        yield "|---|---|---|---|"
        for m, method in enumerate(service.method):
            request = method.input_type.lstrip(".").removeprefix(f"{file.package}.")
            response = method.output_type.lstrip(".").removeprefix(f"{file.package}.")
            stream = "stream " if method.server_streaming else ""
            yield (
                f"| [{method.name}](#{_anchor(method.name)}) | [`{request}`](#{_anchor(request)}) "
                f"| {stream}[`{response}`](#{_anchor(response)}) | {_one_line(notes.text(path + (_METHOD, m)))} |"
            )
        yield ""
        for m, method in enumerate(service.method):
            request = method.input_type.lstrip(".").removeprefix(f"{file.package}.")
            response = method.output_type.lstrip(".").removeprefix(f"{file.package}.")
            stream = "stream " if method.server_streaming else ""
            yield f"### {method.name}\n"
            yield "```proto"
            yield f"rpc {method.name}({request}) returns ({stream}{response});"
            yield "```\n"
            yield f"{notes.text(path + (_METHOD, m))}\n"
            yield (
                f"Request [`{request}`](#{_anchor(request)}), response [`{response}`](#{_anchor(response)}); "
                f"its errors: [Errors, {method.name}](errors.md#{_anchor(method.name)}).\n"
            )


def _message(
    message: descriptor_pb2.DescriptorProto, path: tuple[int, ...], file: descriptor_pb2.FileDescriptorProto, notes: Comments
) -> Iterable[str]:
    yield f"### {message.name}\n"
    if notes.text(path):
        yield f"{notes.text(path)}\n"
    if message.reserved_name or message.reserved_range:
        reserved = [f"`{n}`" for n in message.reserved_name] + [
            str(r.start) if r.end == r.start + 1 else f"{r.start}–{r.end - 1}" for r in message.reserved_range
        ]
        yield f"Reserved: {', '.join(reserved)}.\n"
    if not message.field:
        yield "No fields.\n"
        return
    oneofs = [
        o.name for i, o in enumerate(message.oneof_decl) if not any(f.proto3_optional and f.oneof_index == i for f in message.field)
    ]
    yield "| field | number | type | description |"
    yield "|---|---|---|---|"
    for f, field in enumerate(message.field):
        described = _one_line(notes.text(path + (_FIELD, f)))
        if field.HasField("oneof_index") and not field.proto3_optional:
            described = f"One of `{message.oneof_decl[field.oneof_index].name}`. {described}".strip()
        kind = _field_type(field, message, file.package, message.name)
        yield f"| `{field.name}` | {field.number} | {kind} | {described} |"
    yield ""
    for o, name in enumerate(oneofs):
        text = notes.text(path + (_ONEOF, o))
        if text:
            yield f"`{name}`: {_one_line(text)}\n"


def _enum(enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], notes: Comments) -> Iterable[str]:
    yield f"### {enum.name}\n"
    if notes.text(path):
        yield f"{notes.text(path)}\n"
    yield "| value | number | description |"
    yield "|---|---|---|"
    for v, value in enumerate(enum.value):
        yield f"| `{value.name}` | {value.number} | {_one_line(notes.text(path + (_VALUE, v)))} |"
    yield ""


def render(file: descriptor_pb2.FileDescriptorProto | None = None) -> str:
    """docs/api/reference.md's text."""
    file = file or descriptor()
    notes = comments(file)
    lines = [
        "# API reference\n",
        "<!-- Made by scripts/gen-api-docs from protos/pushsvc/v1/push.proto; do not edit by hand. -->\n",
        f"The gRPC contract, package `{file.package}`, from `protos/{file.name}`: every RPC, message and enum with the "
        "comments the proto gives it. Each RPC's errors are listed in [Errors](errors.md), and calls in four "
        "languages are in [Examples](examples.md).\n",
        *_service(file, notes),
        "## Messages and enums\n",
        "In the order the proto declares them.\n",
    ]
    declared: list[tuple[int, Iterable[str]]] = []
    for i, message in enumerate(file.message_type):
        path = (_MESSAGE, i)
        declared.append((notes.line(path), _message(message, path, file, notes)))
    for i, enum in enumerate(file.enum_type):
        path = (_ENUM, i)
        declared.append((notes.line(path), _enum(enum, path, notes)))
    for _, section in sorted(declared, key=lambda pair: pair[0]):
        lines.extend(section)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
