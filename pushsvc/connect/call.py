"""ConnectCall: what the gRPC handler chain reads from its servicer context, for a Connect or gRPC-web call.

The chain (pushsvc.rpc.telemetry, .calls, .auth,
pushsvc.rpc.methods and .servicers) touches grpc's context only through
`invocation_metadata`, `auth_context`, `abort`, `code` and
`add_done_callback`. This class gives those from the HTTP request, and turns
an abort, which grpc ends with `grpc.aio.AbortError`, into the Connect error
with the same code and the same `google.rpc.Status` details.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

import grpc
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.request import RequestContext
from google.rpc import status_pb2
from protobuf.wkt import Any as WireAny

_DETAILS_KEY = "grpc-status-details-bin"
_SKIPPED = frozenset({"content-type", "content-length", "host", "connection", "accept-encoding", "content-encoding", "te"})
"""HTTP's own headers, which grpc does not hand a handler as metadata either."""


def connect_code(code: grpc.StatusCode) -> Code:
    """The Connect code of a gRPC status code (the two lists are the same but for CANCELLED's spelling)."""
    if code is grpc.StatusCode.CANCELLED:
        return Code.CANCELED
    return Code[code.name] if code.name in Code.__members__ else Code.UNKNOWN


class ConnectCall:
    """A servicer-context stand-in for one Connect or gRPC-web call; see the module docstring."""

    __slots__ = ("_callbacks", "_code", "_details", "_metadata", "_trailing")

    def __init__(self, ctx: RequestContext[Any, Any]) -> None:
        self._metadata = _metadata(ctx.request_headers.allitems())
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing: Sequence[tuple[str, str | bytes]] = ()
        self._callbacks: list[Callable[[Any], None]] = []

    def invocation_metadata(self) -> Sequence[tuple[str, str | bytes]]:
        """The request's headers as gRPC metadata: lower-case keys, `-bin` values decoded."""
        return self._metadata

    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        """No TLS peer: the Connect port is plaintext (see ConnectServer)."""
        return {}

    def code(self) -> grpc.StatusCode | None:
        """The status the call was aborted with; None while it has not been."""
        return self._code

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """`callback(self)` runs when the call ends (`finish`)."""
        self._callbacks.append(callback)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        """Ends the call as grpc's does: records the status, raises AbortError."""
        self._code, self._details, self._trailing = code, details, tuple(trailing_metadata or ())
        raise grpc.aio.AbortError()

    def error(self) -> ConnectError:
        """The Connect error of the recorded abort, with the rich status's details."""
        details: list[ErrorDetail] = []
        for key, value in self._trailing:
            if key == _DETAILS_KEY and isinstance(value, bytes):
                rich = status_pb2.Status.FromString(value)
                details.extend(ErrorDetail(WireAny(type_url=d.type_url, value=d.value)) for d in rich.details)
        return ConnectError(connect_code(self._code or grpc.StatusCode.UNKNOWN), self._details, details)

    def finish(self) -> None:
        """Runs the done callbacks (once)."""
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


def _metadata(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str | bytes]]:
    out: list[tuple[str, str | bytes]] = []
    for key, value in headers:
        key = key.lower()
        if key in _SKIPPED or key.startswith(("connect-", "grpc-", "x-grpc-web")):
            continue
        if key.endswith("-bin"):
            try:
                out.append((key, base64.b64decode(value + "=" * (-len(value) % 4))))
            except (binascii.Error, ValueError):
                continue  # grpc drops a -bin value that does not decode, too
        else:
            out.append((key, value))
    return out
