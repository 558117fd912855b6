"""Naming the field that made a request unparsable, from its protobuf wire format.

The decoder says only what went wrong ("String field had bad UTF-8",
"Exceeded upb_DecodeOptions_MaxDepth"), not where. A caller fixes a request
faster when told `message.apns.payload` or `topics[2]`, so on a failed parse
this module walks the fields of the raw bytes against the descriptors:

- for a depth failure it follows the deepest chain of nested messages;
- otherwise it finds the first string that is not UTF-8, or the first nested
  message that does not parse, or the field where the bytes end too soon.

Paths use the request's field names, with `[i]` for the i-th element of a
repeated field, as validation does. Inside a map or a `google.protobuf` type
(Struct, Duration, ...) the path stops at the field holding it. The walk is
iterative or depth-bounded, touches each field once, stops after
MAX_SCAN_FIELDS fields and is skipped for requests over MAX_SCAN_BYTES, so
a hostile request cannot make it expensive.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import descriptor, message, message_factory

MAX_SCAN_BYTES = 64 * 1024
"""Larger unparsable requests are reported without a field path."""
MAX_SCAN_FIELDS = 500
"""The walk gives up (and names no field) after this many fields: a few milliseconds of CPU at most."""
_MAX_DEPTH = 200
_F = descriptor.FieldDescriptor


class _Exhausted(Exception):
    pass


class _Budget:
    def __init__(self, fields: int) -> None:
        self.left = fields

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _Exhausted


class _Corrupt(Exception):
    def __init__(self, number: int | None) -> None:
        super().__init__(number)
        self.number = number


def bad_field(desc: descriptor.Descriptor, data: bytes, *, too_deep: bool) -> str:
    """The path of the field that made `data` unparsable as `desc`; "" when unknown or the request is too big."""
    if len(data) > MAX_SCAN_BYTES:
        return ""
    view, budget = memoryview(data), _Budget(MAX_SCAN_FIELDS)
    try:
        return _deepest(desc, view, budget) if too_deep else _first_bad(desc, view, "", 0, budget)
    except _Exhausted:
        return ""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(pos, min(pos + 10, len(data))):
        byte = data[i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i + 1
        shift += 7
    raise _Corrupt(None)


def _fields(data: memoryview, budget: _Budget) -> Iterator[tuple[int, int, memoryview | None]]:
    """(field number, wire type, payload of a length-delimited field) for each field; raises _Corrupt."""
    pos, end = 0, len(data)
    while pos < end:
        budget.spend()
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        chunk = None
        try:
            if wire_type == 0:
                _, pos = _varint(data, pos)
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            elif wire_type == 2:
                length, pos = _varint(data, pos)
                chunk, pos = data[pos : pos + length], pos + length
            else:
                raise _Corrupt(number)  # groups: proto3 has none
        except _Corrupt:
            raise _Corrupt(number) from None
        if pos > end:
            raise _Corrupt(number)
        yield number, wire_type, chunk


def _message_type(field: descriptor.FieldDescriptor) -> descriptor.Descriptor:
    """The message type of a TYPE_MESSAGE field (protobuf's stubs say it may be None)."""
    t = field.message_type
    assert t is not None, field.full_name
    return t


def _opaque(field: descriptor.FieldDescriptor) -> bool:
    """Map entries and google.protobuf types are reported as the field that holds them."""
    t = _message_type(field)
    return t.GetOptions().map_entry or t.full_name.startswith("google.protobuf.")


def _name(path: str, field: descriptor.FieldDescriptor, counts: dict[int, int]) -> str:
    name = f"{path}.{field.name}" if path else field.name
    if field.is_repeated and not (field.type == _F.TYPE_MESSAGE and _message_type(field).GetOptions().map_entry):
        i = counts.get(field.number, 0)
        counts[field.number] = i + 1
        name += f"[{i}]"
    return name


def _first_bad(desc: descriptor.Descriptor, data: memoryview, path: str, depth: int, budget: _Budget) -> str:
    if depth > _MAX_DEPTH:
        return path
    counts: dict[int, int] = {}
    try:
        for number, wire_type, chunk in _fields(data, budget):
            field = desc.fields_by_number.get(number)
            if field is None or chunk is None or wire_type != 2:
                continue
            name = _name(path, field, counts)
            if field.type == _F.TYPE_STRING:
                try:
                    bytes(chunk).decode("utf-8")
                except UnicodeDecodeError:
                    return name
            elif field.type == _F.TYPE_MESSAGE:
                if _opaque(field):
                    try:
                        message_factory.GetMessageClass(_message_type(field)).FromString(bytes(chunk))
                    except message.DecodeError:
                        return name
                else:
                    found = _first_bad(_message_type(field), chunk, name, depth + 1, budget)
                    if found:
                        return found
    except _Corrupt as exc:
        field = desc.fields_by_number.get(exc.number) if exc.number is not None else None
        return (f"{path}.{field.name}" if path else field.name) if field is not None else path
    return ""


def _deepest(desc: descriptor.Descriptor, data: memoryview, budget: _Budget) -> str:
    best_depth, best_path = 0, ""
    stack: list[tuple[descriptor.Descriptor, memoryview, str, int, bool]] = [(desc, data, "", 1, False)]
    while stack:
        d, chunk, path, depth, frozen = stack.pop()
        if depth > best_depth:
            best_depth, best_path = depth, path
        if depth > _MAX_DEPTH:
            continue
        counts: dict[int, int] = {}
        try:
            for number, wire_type, sub in _fields(chunk, budget):
                field = d.fields_by_number.get(number)
                if field is None or sub is None or wire_type != 2 or field.type != _F.TYPE_MESSAGE:
                    continue
                child_path = path if frozen else _name(path, field, counts)
                stack.append((_message_type(field), sub, child_path, depth + 1, frozen or _opaque(field)))
        except _Corrupt:
            pass
    return best_path
