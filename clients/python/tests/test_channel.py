"""The channel helper against a real grpc server on port 0 that records what it receives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from pushsvc_client import AsyncReceiptStream, ReceiptStream, connect, connect_aio
from pushsvc_client.v1 import push_pb2, push_pb2_grpc


class RecordingServicer(push_pb2_grpc.PushServiceServicer):
    """Fails the first `failures` calls of each method with UNAVAILABLE; records metadata and attempts."""

    def __init__(self, failures: int = 0, delay_s: float = 0.0) -> None:
        self.failures = failures
        self.delay_s = delay_s
        self.attempts: dict[str, int] = {}
        self.metadata: list[dict[str, str]] = []

    def _attempt(self, method: str, context: grpc.ServicerContext) -> None:
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
        n = self.attempts[method] = self.attempts.get(method, 0) + 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if n <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")

    def RegisterToken(self, request: push_pb2.RegisterTokenRequest, context: grpc.ServicerContext) -> push_pb2.RegisterTokenResponse:  # noqa: N802
        self._attempt("RegisterToken", context)
        return push_pb2.RegisterTokenResponse(created=True)

    def RegisterTokens(self, request: push_pb2.RegisterTokensRequest, context: grpc.ServicerContext) -> push_pb2.RegisterTokensResponse:  # noqa: N802
        self._attempt("RegisterTokens", context)
        return push_pb2.RegisterTokensResponse(created=len(request.items))

    def Send(self, request: push_pb2.SendRequest, context: grpc.ServicerContext) -> push_pb2.SendResponse:  # noqa: N802
        self._attempt("Send", context)
        return push_pb2.SendResponse(notification_id="n1")

    def UnregisterToken(self, request: push_pb2.UnregisterTokenRequest, context: grpc.ServicerContext) -> push_pb2.UnregisterTokenResponse:  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    def GetNotification(self, request: push_pb2.GetNotificationRequest, context: grpc.ServicerContext) -> push_pb2.GetNotificationResponse:  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    def Prune(self, request: push_pb2.PruneRequest, context: grpc.ServicerContext) -> push_pb2.PruneResponse:  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    def CancelNotification(  # noqa: N802
        self, request: push_pb2.CancelNotificationRequest, context: grpc.ServicerContext
    ) -> push_pb2.CancelNotificationResponse:
        self._attempt("CancelNotification", context)
        return push_pb2.CancelNotificationResponse(notification=push_pb2.Notification(notification_id=request.notification_id))

    def GetToken(self, request: push_pb2.GetTokenRequest, context: grpc.ServicerContext) -> push_pb2.GetTokenResponse:  # noqa: N802
        self._attempt("GetToken", context)
        return push_pb2.GetTokenResponse(token=push_pb2.Token(token=request.token))

    def ListTokens(self, request: push_pb2.ListTokensRequest, context: grpc.ServicerContext) -> push_pb2.ListTokensResponse:  # noqa: N802
        self._attempt("ListTokens", context)
        return push_pb2.ListTokensResponse(tokens=[push_pb2.Token(token="t1")])

    def ListNotifications(  # noqa: N802
        self, request: push_pb2.ListNotificationsRequest, context: grpc.ServicerContext
    ) -> push_pb2.ListNotificationsResponse:
        self._attempt("ListNotifications", context)
        return push_pb2.ListNotificationsResponse(notifications=[push_pb2.Notification(notification_id="n1")])

    def StreamReceipts(  # noqa: N802
        self, request: push_pb2.StreamReceiptsRequest, context: grpc.ServicerContext
    ) -> Iterator[push_pb2.StreamReceiptsResponse]:
        # Two receipts per stream, then UNAVAILABLE on the first stream: the helper
        # must resume after the second cursor and see receipts 3 and 4 once.
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
        start = int(request.after or 0)
        for i in range(start + 1, min(start + 2, 4) + 1):
            yield push_pb2.StreamReceiptsResponse(receipt=push_pb2.Receipt(cursor=str(i), token=f"t{i}"))
        if start + 2 < 4:
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining")


def _serve(servicer: RecordingServicer) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    push_pb2_grpc.add_PushServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def flaky() -> Iterator[tuple[RecordingServicer, str]]:
    servicer = RecordingServicer(failures=2)
    server, target = _serve(servicer)
    yield servicer, target
    server.stop(0)


def test_idempotent_calls_are_retried_on_unavailable_and_send_is_not(flaky: tuple[RecordingServicer, str]) -> None:
    servicer, target = flaky
    with connect(target) as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        assert stub.RegisterToken(push_pb2.RegisterTokenRequest(app_id="a")).created
        batch = push_pb2.RegisterTokensRequest(app_id="a", items=[push_pb2.TokenRegistration(token="t")])
        assert stub.RegisterTokens(batch).created == 1
        with pytest.raises(grpc.RpcError) as err:
            stub.Send(push_pb2.SendRequest(app_id="a"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.attempts == {"RegisterToken": 3, "RegisterTokens": 3, "Send": 1}


def test_cancel_and_the_lookups_are_retried_on_unavailable(flaky: tuple[RecordingServicer, str]) -> None:
    servicer, target = flaky
    with connect(target) as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        cancelled = stub.CancelNotification(push_pb2.CancelNotificationRequest(app_id="a", notification_id="n9"))
        assert cancelled.notification.notification_id == "n9"
        assert stub.GetToken(push_pb2.GetTokenRequest(app_id="a", token="t9")).token.token == "t9"
        assert [t.token for t in stub.ListTokens(push_pb2.ListTokensRequest(app_id="a")).tokens] == ["t1"]
        listed = stub.ListNotifications(push_pb2.ListNotificationsRequest(app_id="a"))
        assert [n.notification_id for n in listed.notifications] == ["n1"]
    assert servicer.attempts == {"CancelNotification": 3, "GetToken": 3, "ListTokens": 3, "ListNotifications": 3}


def test_unary_calls_get_the_deadline() -> None:
    servicer = RecordingServicer(delay_s=2.0)
    server, target = _serve(servicer)
    try:
        with connect(target, deadline_s=0.3) as channel:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                push_pb2_grpc.PushServiceStub(channel).Send(push_pb2.SendRequest(app_id="a"))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 1.5
    finally:
        server.stop(0)


@pytest.mark.parametrize(
    ("creds", "header"),
    [({"api_key": "k1"}, ("authorization", "Bearer k1")), ({"jwt": "e.y.j"}, ("authorization", "Bearer e.y.j"))],
)
def test_credentials_travel_as_metadata_on_unary_and_streaming_calls(
    creds: dict[str, str], header: tuple[str, str]
) -> None:
    servicer = RecordingServicer()
    server, target = _serve(servicer)
    try:
        with connect(target, **creds) as channel:  # type: ignore[arg-type]
            stub = push_pb2_grpc.PushServiceStub(channel)
            stub.RegisterToken(push_pb2.RegisterTokenRequest(app_id="a"))
            list(ReceiptStream(stub, "a", "n1", after="2"))

        async def run_aio() -> None:
            async with connect_aio(target, **creds) as aio_channel:  # type: ignore[arg-type]
                await push_pb2_grpc.PushServiceStub(aio_channel).Send(push_pb2.SendRequest(app_id="a"))

        asyncio.run(run_aio())
    finally:
        server.stop(0)
    assert len(servicer.metadata) == 3
    assert all(md.get(header[0]) == header[1] for md in servicer.metadata)


def test_api_key_and_jwt_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        connect("127.0.0.1:1", api_key="k", jwt="j")


def test_receipt_streams_resume_after_the_last_cursor() -> None:
    server, target = _serve(RecordingServicer())
    try:
        with connect(target) as channel:
            stream = ReceiptStream(push_pb2_grpc.PushServiceStub(channel), "a", "n1")
            assert [r.token for r in stream] == ["t1", "t2", "t3", "t4"]
            assert (stream.resumes, stream.cursor) == (1, "4")

        async def run_aio() -> tuple[list[str], int]:
            async with connect_aio(target) as aio_channel:
                aio_stream = AsyncReceiptStream(push_pb2_grpc.PushServiceStub(aio_channel), "a", "n1")
                return [r.token async for r in aio_stream], aio_stream.resumes

        assert asyncio.run(run_aio()) == (["t1", "t2", "t3", "t4"], 1)
    finally:
        server.stop(0)
