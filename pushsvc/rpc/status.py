"""The one place where domain errors become gRPC statuses.

INVALID_ARGUMENT carries a `google.rpc.BadRequest` detail naming each bad
field. Anything unexpected becomes INTERNAL and is logged with its traceback:
bad input must never get there, so an INTERNAL is always a bug to fix.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from pushsvc import errors

log = logging.getLogger("pushsvc.rpc")

_CODES: dict[type[errors.PushError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
}


def status_code(exc: errors.PushError) -> grpc.StatusCode:
    """The gRPC status code for a domain error."""
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls]  # type: ignore[index]
    return grpc.StatusCode.INTERNAL


def to_grpc_status(exc: errors.PushError) -> grpc.Status:
    """A rich status: code, message and, for bad input, a BadRequest detail."""
    code = status_code(exc)
    rich = status_pb2.Status(code=getattr(code_pb2, code.name), message=str(exc))
    if isinstance(exc, errors.InvalidArgument):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in exc.violations
                ]
            )
        )
        rich.details.append(detail)
    return rpc_status.to_status(rich)


async def abort(context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> None:
    """Ends the call with the status that `exc` maps to."""
    if isinstance(exc, errors.PushError):
        status = to_grpc_status(exc)
        await context.abort(status.code, status.details, status.trailing_metadata)
    log.exception("unexpected error", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
