"""Receipt streams that resume from the last cursor.

pushsvc numbers receipts densely per app and per notification, and every
receipt carries an opaque `cursor`. A stream that ends with UNAVAILABLE (a
replica draining on SIGTERM, a restart, a lost connection, a load balancer
moving the caller to another replica) is reopened with `after=<last cursor>`:
the next receipt is the one after the last one yielded, so nothing is skipped
or repeated. Any other status ends the iteration with that error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import grpc

from pushsvc_client.v1 import push_pb2, push_pb2_grpc

DEFAULT_RESUME_TIMEOUT_S = 30.0


def _backoff_s(failures: int) -> float:
    """0.1 s, doubling per consecutive failure, at most 2 s."""
    return float(min(2.0, 0.1 * (2 ** max(0, failures - 1))))


class ReceiptStream:
    """Iterates the receipts of a notification (or an app's live feed), resuming
    after UNAVAILABLE from the last cursor.

    Iteration ends when the server ends the stream with OK (a notification's
    stream does once the notification is finished). If the server stays
    unavailable for `resume_timeout_s` the last UNAVAILABLE error is raised.
    `cursor` is the last cursor yielded (pass it as `after` to continue later),
    `resumes` counts the reopened streams.
    """

    def __init__(
        self,
        stub: push_pb2_grpc.PushServiceStub,
        app_id: str,
        notification_id: str = "",
        after: str = "",
        *,
        resume_timeout_s: float = DEFAULT_RESUME_TIMEOUT_S,
        on_resume: Callable[[grpc.RpcError], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = stub
        self._app_id = app_id
        self._notification_id = notification_id
        self.cursor = after
        self.resumes = 0
        self._resume_timeout_s = resume_timeout_s
        self._on_resume = on_resume
        self._sleep = sleep
        self._monotonic = monotonic
        self._call: grpc.Call | None = None
        self._cancelled = False

    def _request(self) -> push_pb2.StreamReceiptsRequest:
        return push_pb2.StreamReceiptsRequest(
            app_id=self._app_id, notification_id=self._notification_id, after=self.cursor
        )

    def __iter__(self) -> Iterator[push_pb2.Receipt]:
        failures = 0
        failing_since: float | None = None
        while not self._cancelled:
            call = self._stub.StreamReceipts(self._request())
            self._call = call
            try:
                for response in call:
                    failures, failing_since = 0, None
                    self.cursor = response.receipt.cursor
                    yield response.receipt
                return
            except grpc.RpcError as exc:
                if self._cancelled:
                    return
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                now = self._monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self._resume_timeout_s:
                    raise
                failures += 1
                self.resumes += 1
                if self._on_resume is not None:
                    self._on_resume(exc)
                self._sleep(_backoff_s(failures))
            finally:
                self._call = None

    def cancel(self) -> None:
        """Stops the stream (from another thread, for a live feed)."""
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()


class AsyncReceiptStream:
    """The asyncio counterpart of `ReceiptStream`, over a `grpc.aio` channel's stub."""

    def __init__(
        self,
        stub: push_pb2_grpc.PushServiceAsyncStub,
        app_id: str,
        notification_id: str = "",
        after: str = "",
        *,
        resume_timeout_s: float = DEFAULT_RESUME_TIMEOUT_S,
        on_resume: Callable[[grpc.RpcError], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = stub
        self._app_id = app_id
        self._notification_id = notification_id
        self.cursor = after
        self.resumes = 0
        self._resume_timeout_s = resume_timeout_s
        self._on_resume = on_resume
        self._sleep = sleep
        self._monotonic = monotonic

    async def __aiter__(self) -> AsyncIterator[push_pb2.Receipt]:
        failures = 0
        failing_since: float | None = None
        while True:
            request = push_pb2.StreamReceiptsRequest(
                app_id=self._app_id, notification_id=self._notification_id, after=self.cursor
            )
            call = self._stub.StreamReceipts(request)
            try:
                async for response in call:
                    failures, failing_since = 0, None
                    self.cursor = response.receipt.cursor
                    yield response.receipt
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                now = self._monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self._resume_timeout_s:
                    raise
                failures += 1
                self.resumes += 1
                if self._on_resume is not None:
                    self._on_resume(exc)
                await self._sleep(_backoff_s(failures))
            finally:
                call.cancel()
