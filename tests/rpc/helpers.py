"""Reading rich gRPC errors the way a client would."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


async def violations(call: Awaitable[object]) -> dict[str, str]:
    """Awaits a call that must fail with INVALID_ARGUMENT; returns {field: description}."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "INVALID_ARGUMENT must carry a google.rpc.Status"
    out: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            for v in bad.field_violations:
                # A field may be named more than once (e.g. message: one per platform).
                out[v.field] = f"{out[v.field]}; {v.description}" if v.field in out else v.description
    assert out, "INVALID_ARGUMENT must carry a BadRequest with field violations"
    return out


async def status_of(call: Awaitable[object]) -> grpc.StatusCode:
    """Awaits a call that must fail; returns its status code."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code()
