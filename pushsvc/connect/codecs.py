"""Codecs for the Connect runtime that decode the way the gRPC port does.

A request that does not decode is not refused by the runtime (which would
answer before auth, with no field named): it is handed on as the same
`Unparsable` marker the gRPC port's deserializer makes, so the handler chain
authenticates the caller first and then answers INVALID_ARGUMENT with a
`BadRequest` naming the field, exactly as over gRPC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf import json_format, message

from pushsvc.rpc.methods import Unparsable

Deserializer = Callable[[bytes], Any]

_JSON_FIELD = re.compile(r"Failed to parse (\w+) field")


class BinaryCodec:
    """application/proto (and gRPC-web's +proto): the gRPC port's own deserializers, per request type."""

    def __init__(self, deserializers: Mapping[type[message.Message], Deserializer]) -> None:
        self._deserializers = dict(deserializers)

    def name(self) -> str:
        """The codec's content-type suffix."""
        return "proto"

    def encode(self, msg: message.Message) -> bytes:
        """Serializes a response."""
        return msg.SerializeToString()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        """A request message, or `Unparsable`."""
        return self._deserializers[message_class](bytes(data))


class JsonCodec:
    """application/json: the proto3 JSON mapping (field names in lowerCamelCase or as in the proto)."""

    def name(self) -> str:
        """The codec's content-type suffix."""
        return "json"

    def encode(self, msg: message.Message) -> bytes:
        """Serializes a response in lowerCamelCase, as Connect clients expect."""
        return json_format.MessageToJson(msg, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        """A request message, or `Unparsable` naming the field the JSON parser stopped at."""
        msg = message_class()
        try:
            # Unknown fields are ignored, as the binary decoder keeps them without
            # looking: a newer client's fields do not break an older server.
            json_format.Parse(bytes(data) or b"{}", msg, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
            # The parser's text can quote the caller's value; only field names are kept.
            field = ".".join(_JSON_FIELD.findall(str(exc)))
            return Unparsable(message_class.DESCRIPTOR.full_name, "not valid JSON for this message", field)
        return msg
