"""Hypothesis strategies built from the proto descriptors, so new fields are fuzzed without edits.

`requests(descriptor)` walks a message's fields and draws encoded requests, per field type:
strings with odd unicode (control characters, NUL, bidi and zero-width marks,
non-characters, astral planes, very long runs) and a few realistic values so
some requests get past validation; integers at the edges of their range; any
enum number, known or not; nested messages, repeated fields and maps.
`google.protobuf.Struct` fields get JSON values with NaN, ±Infinity, extreme
floats and nesting from shallow to well past the 32-level limit.

`raw_bytes(descriptor)` draws request bytes: random bytes, valid encodings
cut short or corrupted, invalid UTF-8 in string fields, wrong wire types,
endless varints and payloads nested past the decoder's depth limit.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from google.protobuf import descriptor as d
from google.protobuf import message, message_factory, struct_pb2
from hypothesis import strategies as st

from pushsvc.v1 import push_pb2 as pb

F = d.FieldDescriptor

ODD_CHARS = (
    "\x00\x01\x07\x08\t\n\r\x1b\x7f\x85\xa0\xad"  # C0, DEL, C1 (NEL), NBSP, soft hyphen
    "\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202e\u2066\u2069"  # zero-width, separators, bidi overrides
    "\u0301\u0489\u1160\u3000\ufeff\ufff9\ufffd\ufffe\uffff"  # combining marks, ideographic space, BOM, non-characters
    "\U0001f600\U0001f469\u200d\U0001f52c\U000e0001\U0010ffff"  # emoji, ZWJ sequence, tag char, last code point
    "İı߷ǅ$.{}\"'\\/%:*"  # case-folding oddities and characters stores and shells care about
)
"""Characters that have broken parsers, logs, stores or terminals somewhere."""

REALISTIC: dict[str, list[str]] = {
    "app_id": ["demo", "demo", "demo", "other-app", "demo\n", "a" * 128, "a" * 129],
    "token": ["ab" * 32, "04" + "10" * 31, "quota-x", "fcm-token-1", "AB" * 100, "f" * 4096, "x" * 4097],
    "notification_id": ["", "0" * 32, "n" * 128],
    "after": ["", "0.0", "1.2", "9" * 30 + ".1", "².1", "١.٢", "-1.0", "1.", ".1", "1.2.3"],
    "idempotency_key": ["", "k1", "k\x00"],
    "topic": ["news", "", "t" * 257],
    "user_ids": ["alice", "bob", ""],
    "user_id": ["alice", ""],
    # IANA zones: known ones (whole, quarter-hour, UTC), unknown names, a directory of the database, paths.
    "timezone": ["Europe/Paris", "Asia/Kathmandu", "UTC", "", "Nowhere/Land", "Europe", "../../etc/passwd", "/etc/localtime"],
    "fallback_timezone": ["Europe/Paris", "Pacific/Kiritimati", "", "Nowhere/Land", "America", "..", "UTC\x00"],
    # Page tokens: empty, not base64, base64 of "{}", well-formed for other filters, a key of numbers, a list, padding, too long.
    "page_token": ['', 'garbage', 'e30', 'eyJ2IjogMSwgImYiOiAiMDAwMDAwMDAwMDAwMDAwMCIsICJrIjogWyJmY20iLCAieCJdfQ', 'eyJ2IjogMSwgImYiOiAiMDAwMDAwMDAwMDAwMDAwMCIsICJrIjogWzEsIDJdfQ', 'WzFd', '=======', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
}
"""Values that make part of the requests valid, so fuzzing reaches past the first check."""

INT32 = (-(2**31), -1, 0, 1, 2**31 - 1)
INT64 = (-(2**63), -(2**53) - 1, -1, 0, 1, 2**53 + 1, 2**63 - 1)
UINT32 = (0, 1, 2**32 - 1)
UINT64 = (0, 1, 2**64 - 1)
_RANGES = {
    F.TYPE_INT32: (INT32, -(2**31), 2**31 - 1),
    F.TYPE_SINT32: (INT32, -(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (INT32, -(2**31), 2**31 - 1),
    F.TYPE_INT64: (INT64, -(2**63), 2**63 - 1),
    F.TYPE_SINT64: (INT64, -(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (INT64, -(2**63), 2**63 - 1),
    F.TYPE_UINT32: (UINT32, 0, 2**32 - 1),
    F.TYPE_FIXED32: (UINT32, 0, 2**32 - 1),
    F.TYPE_UINT64: (UINT64, 0, 2**64 - 1),
    F.TYPE_FIXED64: (UINT64, 0, 2**64 - 1),
}
EXTREME_FLOATS = (math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308, 2.0**53 + 1, -(2.0**63))

MAX_REPEATED = 12


def text() -> st.SearchStrategy[str]:
    """Short odd strings, long runs, and ordinary printable text."""
    odd = st.text(alphabet=st.sampled_from(ODD_CHARS) | st.characters(exclude_categories=("Cs",)), max_size=40)
    long_run = st.builds(lambda c, n: c * n, st.sampled_from(("a", "é", "😀", "\x00", "f")), st.integers(60, 5000))
    return st.one_of(odd, long_run, st.text(max_size=20))


def _string(field: d.FieldDescriptor) -> st.SearchStrategy[str]:
    known = REALISTIC.get(field.name)
    return st.one_of(st.sampled_from(known), text()) if known else text()


def _integer(field: d.FieldDescriptor) -> st.SearchStrategy[int]:
    edges, lo, hi = _RANGES[field.type]
    small = st.integers(max(lo, -3), min(hi, 200))
    return st.one_of(st.sampled_from(edges), small, st.integers(lo, hi))


def _enum(field: d.FieldDescriptor) -> st.SearchStrategy[int]:
    known = [v.number for v in field.enum_type.values]
    return st.one_of(st.sampled_from(known), st.sampled_from(INT32), st.integers(-(2**31), 2**31 - 1))


# ------------------------------------------------------------------ Struct


def _json_leaf() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(EXTREME_FLOATS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**53), 2**53).map(float),
        text(),
    )


def _keys() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(("aps", "$where", "a.b", "", "\x00", "data", "notification", "$set")), text())


def json_values() -> st.SearchStrategy[Any]:
    """JSON-like values: shallow and wide, or a single deep spine of objects and arrays."""
    wide = st.recursive(
        _json_leaf(),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_keys(), inner, max_size=5),
        max_leaves=30,
    )
    deep = st.builds(_spine, st.integers(1, 60), st.lists(st.booleans(), min_size=1, max_size=8), _json_leaf())
    return st.one_of(wide, deep)


def _spine(depth: int, shape: list[bool], leaf: Any) -> Any:
    """`depth` nested containers; `shape` says, cyclically, which are arrays."""
    value = leaf
    for i in range(depth):
        value = [value] if shape[i % len(shape)] else {"k": value}
    return value


def structs() -> st.SearchStrategy[struct_pb2.Struct]:
    """Struct messages holding `json_values()`; the top level is always an object."""
    return st.dictionaries(_keys(), json_values(), max_size=4).map(_to_struct)


def _to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


# ------------------------------------------------------------------ messages


def requests(desc: d.Descriptor) -> st.SearchStrategy[bytes]:
    """Encoded requests of type `desc`: half wholly random, half a valid request with a few fields drawn at random.

    The second half gets past the first checks, into rendering, the store and
    the receipt feed. It is the valid request's encoding followed by the
    random fields' encoding, which a decoder merges (the last value of a
    scalar wins, repeated fields append, messages merge).
    """
    wild = _messages(desc, sparse=False, depth=0).map(_encode)
    templates = VALID.get(desc.full_name)
    if templates is None:
        return wild
    near = st.builds(lambda base, changes: _encode(base) + _encode(changes), templates, _messages(desc, sparse=True, depth=0))
    return st.one_of(wild, near)


def _encode(msg: message.Message) -> bytes:
    return msg.SerializeToString()


def _messages(desc: d.Descriptor, *, sparse: bool, depth: int) -> st.SearchStrategy[message.Message]:
    """Messages of type `desc` with every field unset (mostly, when sparse) or drawn from its type's strategy."""
    if desc.full_name == "google.protobuf.Struct":
        return structs()
    cls = message_factory.GetMessageClass(desc)
    fields = {f.name: _maybe(_field(f, depth, sparse), sparse) for f in desc.fields}
    return st.fixed_dictionaries(fields).map(lambda values: _build(cls, values))


def _maybe(strategy: st.SearchStrategy[Any], sparse: bool) -> st.SearchStrategy[Any]:
    """Unset (None) half the time, or seven times in eight when sparse."""
    if not sparse:
        return st.none() | strategy
    return st.integers(0, 7).flatmap(lambda k: strategy if k == 0 else st.none())


def _field(field: d.FieldDescriptor, depth: int, sparse: bool) -> st.SearchStrategy[Any]:
    if _is_map(field):
        key_f, value_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_single(key_f, depth, sparse), _single(value_f, depth, sparse), max_size=MAX_REPEATED)
    one = _single(field, depth, sparse)
    if field.is_repeated:
        return st.lists(one, max_size=MAX_REPEATED)
    return one


def _single(field: d.FieldDescriptor, depth: int, sparse: bool) -> st.SearchStrategy[Any]:
    t = field.type
    if t == F.TYPE_STRING:
        return _string(field)
    if t == F.TYPE_BYTES:
        return st.binary(max_size=100)
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.sampled_from(EXTREME_FLOATS) | st.floats(allow_nan=True, allow_infinity=True, width=64 if t == F.TYPE_DOUBLE else 32)
    if t == F.TYPE_ENUM:
        return _enum(field)
    if t == F.TYPE_MESSAGE:
        if depth > 6:
            return st.none()
        return st.deferred(lambda: _messages(field.message_type, sparse=sparse, depth=depth + 1))
    return _integer(field)


def _is_map(field: d.FieldDescriptor) -> bool:
    return field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _build(cls: type[message.Message], values: dict[str, Any]) -> message.Message:
    msg = cls()
    for name, value in values.items():
        if value is None:
            continue
        field = cls.DESCRIPTOR.fields_by_name[name]
        target = getattr(msg, name) if field.is_repeated or field.type == F.TYPE_MESSAGE else None
        if _is_map(field) and field.message_type.fields_by_name["value"].type == F.TYPE_MESSAGE:
            for key, item in value.items():  # a map of messages takes no update(): each entry is copied in
                if item is not None:
                    target[key].CopyFrom(item)  # type: ignore[index]
        elif _is_map(field):
            target.update(value)  # type: ignore[union-attr]
        elif field.is_repeated:
            target.extend(v for v in value if v is not None)  # type: ignore[union-attr]
        elif field.type == F.TYPE_MESSAGE:
            target.CopyFrom(value)  # type: ignore[union-attr]
        else:
            setattr(msg, name, value)
    return msg


_hex_tokens = st.binary(min_size=32, max_size=32).map(bytes.hex)
_fcm_tokens = st.integers(0, 10**6).map(lambda n: f"fuzz-{n}")

# Web Push subscriptions: well-formed ones (on loopback, where nothing listens on port 9, or off the
# allow-list, so no fuzzed Send leaves the machine), with bad keys, bad expiry, or not JSON at all.
_P256 = (  # valid uncompressed P-256 points (0x04 ‖ X ‖ Y), base64url: RFC 8291's example key, a random key, and G
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
    "BC-fX_bPEI7Z39o6gkI_ok-5b9Sp1yn72aJi_uJSZMcauAQDobv3g9iEgYYcte7oU0xkxNN_f5tKcYH0XaubTms",
    "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
)
_subscriptions = st.builds(
    lambda host, path, p256dh, auth, expiry: json.dumps(
        {"endpoint": f"https://{host}/wp/{path}", "expirationTime": expiry, "keys": {"p256dh": p256dh, "auth": auth}}
    ),
    st.sampled_from(["127.0.0.1:9", "push.invalid", "localhost:9"]),
    st.text(max_size=20),
    # ...and 65 bytes off the curve, which only the provider's point parsing rejects.
    st.one_of(st.sampled_from(_P256), st.just("BA" + "A" * 85), st.text(max_size=90)),
    st.binary(max_size=24).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()),
    st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=3)),
)
_webpush_tokens = st.one_of(_subscriptions, st.text(max_size=60))
_platform_tokens = st.one_of(
    st.tuples(st.just(pb.PLATFORM_APNS), _hex_tokens), st.tuples(st.just(pb.PLATFORM_FCM), _fcm_tokens),
    st.tuples(st.just(pb.PLATFORM_WEBPUSH), _webpush_tokens), st.tuples(st.just(pb.PLATFORM_HMS), _fcm_tokens),
)
_local_times = st.one_of(
    st.none(),
    st.builds(
        lambda hour, minute, zone, passed: pb.LocalTime(hour=hour, minute=minute, fallback_timezone=zone, if_passed=passed),
        st.integers(-1, 24), st.integers(-1, 60), st.sampled_from(["", "Europe/Paris", "Asia/Kolkata", "Nowhere/Land"]),
        st.sampled_from([*pb.LocalTimePassed.values(), 3, -1]),
    ),
)
_targets = st.one_of(
    st.just(pb.Target(all=True)),
    st.just(pb.Target(topic="news")),
    st.just(pb.Target(users=pb.UserList(user_ids=["alice", "bob"]))),
    _platform_tokens.map(lambda pt: pb.Target(devices=pb.DeviceList(devices=[pb.Device(platform=pt[0], token=pt[1])]))),
)
VALID: dict[str, st.SearchStrategy[message.Message]] = {
    "pushsvc.v1.RegisterTokenRequest": _platform_tokens.map(
        lambda pt: pb.RegisterTokenRequest(
            app_id="demo", platform=pt[0], token=pt[1], user_id="alice", topics=["news"], timezone="Asia/Kathmandu"
        )
    ),
    "pushsvc.v1.RegisterTokensRequest": st.lists(_platform_tokens, min_size=1, max_size=5).map(
        lambda pts: pb.RegisterTokensRequest(
            app_id="demo", items=[pb.TokenRegistration(platform=p, token=t, user_id="alice") for p, t in pts]
        )
    ),
    "pushsvc.v1.UnregisterTokenRequest": _platform_tokens.map(
        lambda pt: pb.UnregisterTokenRequest(app_id="demo", platform=pt[0], token=pt[1])
    ),
    "pushsvc.v1.SendRequest": st.builds(
        lambda target, validate_only, rate, local_time: pb.SendRequest(
            app_id="demo", target=target, message=pb.Message(title="hi", body="there"), validate_only=validate_only,
            max_per_second=rate, local_time=local_time,
        ),
        # The rate: unset, negative (INVALID_ARGUMENT), throttled, or at the int32 edges.
        _targets, st.booleans(), st.one_of(st.sampled_from([0, -1, 50, 2**31 - 1, -(2**31)]), st.integers(-(2**31), 2**31 - 1)),
        _local_times,
    ),
    "pushsvc.v1.GetNotificationRequest": st.just(pb.GetNotificationRequest(app_id="demo", notification_id="0" * 32)),
    "pushsvc.v1.PruneRequest": st.just(pb.PruneRequest(app_id="demo", dry_run=True)),
    "pushsvc.v1.StreamReceiptsRequest": st.just(pb.StreamReceiptsRequest(app_id="demo")),
    "pushsvc.v1.CancelNotificationRequest": st.just(pb.CancelNotificationRequest(app_id="demo", notification_id="0" * 32)),
    "pushsvc.v1.GetTokenRequest": _platform_tokens.map(
        lambda pt: pb.GetTokenRequest(app_id="demo", platform=pt[0], token=pt[1])
    ),
    "pushsvc.v1.ListTokensRequest": st.builds(
        lambda size, platform: pb.ListTokensRequest(app_id="demo", page_size=size, platform=platform),
        st.integers(0, 5), st.sampled_from([pb.PLATFORM_UNSPECIFIED, pb.PLATFORM_APNS, pb.PLATFORM_FCM]),
    ),
    "pushsvc.v1.ListNotificationsRequest": st.builds(
        lambda size, state: pb.ListNotificationsRequest(app_id="demo", page_size=size, state=state),
        st.integers(0, 5), st.sampled_from(list(pb.NotificationState.values())),
    ),
}
"""Valid requests (for the dev stack's app "demo") that `requests` overlays random fields on."""

# ------------------------------------------------------------------ raw bytes


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    """A field key."""
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    """One wire-type-2 field."""
    return tag(number, 2) + varint(len(payload)) + payload


BAD_UTF8 = (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\x80b", b"\xe2\x82", b"\xf8\x88\x80\x80\x80")
"""Invalid UTF-8: stray bytes, overlong forms, an encoded surrogate, past U+10FFFF, truncated."""


def deep_struct_bytes(levels: int) -> bytes:
    """A Struct's encoding nested `levels` objects deep, built without recursion."""
    value = b"\x19" + b"\x00" * 8  # Value.number_value = 0.0
    for _ in range(levels):
        entry = length_delimited(1, b"k") + length_delimited(2, value)  # FieldsEntry{key, value}
        value = length_delimited(5, length_delimited(1, entry))  # Value.struct_value = Struct{fields: [entry]}
    return value


def raw_bytes(desc: d.Descriptor) -> st.SearchStrategy[bytes]:
    """Request bytes for a method whose input type is `desc`."""
    valid = requests(desc)
    string_fields = [f.number for f in desc.fields if f.type == F.TYPE_STRING] or [1]
    all_fields = [f.number for f in desc.fields] or [1]
    bad_string = st.builds(
        lambda prefix, number, bad: prefix + length_delimited(number, bad),
        valid, st.sampled_from(string_fields), st.sampled_from(BAD_UTF8),
    )
    wrong_wire = st.builds(
        lambda number, wire, body: tag(number, wire) + body,
        st.sampled_from(all_fields), st.integers(0, 7), st.binary(max_size=12),
    )
    endless_varint = st.integers(1, 40).map(lambda n: b"\x08" + b"\xff" * n)
    cut = st.builds(lambda b, frac: b[: int(len(b) * frac)], valid, st.floats(0, 1))
    flipped = st.builds(_flip, valid, st.integers(0, 2**16), st.integers(0, 255))
    streams: list[st.SearchStrategy[bytes]] = [
        st.binary(max_size=300), bad_string, wrong_wire, endless_varint, cut, flipped,
    ]
    nested = _path_to_struct(desc)
    if nested is not None:
        streams.append(st.integers(20, 120).map(lambda n: _wrap(nested, deep_struct_bytes(n))))
    return st.one_of(streams)


def _flip(data: bytes, position: int, value: int) -> bytes:
    if not data:
        return bytes([value])
    i = position % len(data)
    return data[:i] + bytes([value]) + data[i + 1 :]


def _path_to_struct(desc: d.Descriptor, _seen: frozenset[str] = frozenset()) -> list[int] | None:
    """Field numbers from `desc` down to the first Struct field, if there is one."""
    for f in desc.fields:
        if f.type != F.TYPE_MESSAGE or f.message_type.full_name in _seen:
            continue
        if f.message_type.full_name == "google.protobuf.Struct":
            return [f.number]
        rest = _path_to_struct(f.message_type, _seen | {desc.full_name})
        if rest is not None:
            return [f.number, *rest]
    return None


def _wrap(path: list[int], struct_fields: bytes) -> bytes:
    # deep_struct_bytes yields a Value; its struct_value's body is what a Struct field holds.
    body = length_delimited(1, length_delimited(1, b"k") + length_delimited(2, struct_fields))
    for number in reversed(path):
        body = length_delimited(number, body)
    return body
