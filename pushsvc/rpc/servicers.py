"""PushServicer: translates protobuf to domain calls and back, nothing else.

Errors it raises become gRPC statuses in the method handlers that call it
(`pushsvc.rpc.methods`, through `pushsvc.rpc.status`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from pushsvc import errors
from pushsvc.rpc import convert
from pushsvc.service import PushService
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc as pb_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


class PushServicer(pb_grpc.PushServiceServicer):
    """The pushsvc.v1.PushService gRPC surface."""

    def __init__(self, service: PushService, draining: asyncio.Event) -> None:
        self._service = service
        self._draining = draining

    async def RegisterToken(self, request: pb.RegisterTokenRequest, context: Ctx) -> pb.RegisterTokenResponse:  # noqa: N802
        """See push.proto."""
        token, created = await self._service.register_token(convert.registration(request))
        answer = pb.RegisterTokenResponse(created=created)
        convert.token(token, answer.token)
        return answer

    async def RegisterTokens(self, request: pb.RegisterTokensRequest, context: Ctx) -> pb.RegisterTokensResponse:  # noqa: N802
        """See push.proto."""
        results = await self._service.register_tokens(request.app_id, convert.registrations(request))
        return convert.registration_results(results)

    async def UnregisterToken(self, request: pb.UnregisterTokenRequest, context: Ctx) -> pb.UnregisterTokenResponse:  # noqa: N802
        """See push.proto."""
        kind = convert.platform(request.platform)
        removed = await self._service.unregister_token(request.app_id, kind, convert.canonical_token(kind, request.token))
        return pb.UnregisterTokenResponse(removed=removed)

    async def Prune(self, request: pb.PruneRequest, context: Ctx) -> pb.PruneResponse:  # noqa: N802
        """See push.proto."""
        count = await self._service.prune(convert.prune(request))
        # A dry run removed nothing: its count has a field of its own, so it is never read as done.
        return pb.PruneResponse(would_remove=count) if request.dry_run else pb.PruneResponse(removed=count)

    async def Send(self, request: pb.SendRequest, context: Ctx) -> pb.SendResponse:  # noqa: N802
        """See push.proto."""
        return convert.send_result(await self._service.send(convert.send(request)))

    async def GetNotification(self, request: pb.GetNotificationRequest, context: Ctx) -> pb.GetNotificationResponse:  # noqa: N802
        """See push.proto."""
        view = await self._service.get_notification(request.app_id, request.notification_id)
        return pb.GetNotificationResponse(notification=convert.notification(view))

    async def CancelNotification(  # noqa: N802
        self, request: pb.CancelNotificationRequest, context: Ctx
    ) -> pb.CancelNotificationResponse:
        """See push.proto."""
        view = await self._service.cancel_notification(request.app_id, request.notification_id)
        return pb.CancelNotificationResponse(notification=convert.notification(view))

    async def GetToken(self, request: pb.GetTokenRequest, context: Ctx) -> pb.GetTokenResponse:  # noqa: N802
        """See push.proto."""
        found = await self._service.get_token(request.app_id, convert.platform(request.platform), request.token)
        answer = pb.GetTokenResponse()
        convert.token(found, answer.token)
        return answer

    async def ListTokens(self, request: pb.ListTokensRequest, context: Ctx) -> pb.ListTokensResponse:  # noqa: N802
        """See push.proto."""
        tokens, next_token = await self._service.list_tokens(
            convert.token_filter(request), request.page_size, request.page_token
        )
        answer = pb.ListTokensResponse(next_page_token=next_token)
        add = answer.tokens.add
        for t in tokens:
            convert.token(t, add())
        return answer

    async def ListNotifications(  # noqa: N802
        self, request: pb.ListNotificationsRequest, context: Ctx
    ) -> pb.ListNotificationsResponse:
        """See push.proto."""
        views, next_token = await self._service.list_notifications(
            convert.notification_filter(request), request.page_size, request.page_token
        )
        return pb.ListNotificationsResponse(
            notifications=[convert.notification(v) for v in views], next_page_token=next_token
        )

    async def StreamReceipts(  # noqa: N802
        self, request: pb.StreamReceiptsRequest, context: Ctx
    ) -> AsyncIterator[pb.StreamReceiptsResponse]:
        """See push.proto. On drain, ends with UNAVAILABLE so the caller resumes by cursor elsewhere."""
        receipts = await self._service.stream_receipts(request.app_id, request.notification_id, request.after)
        async for receipt in _until(receipts, self._draining):
            yield convert.receipt(receipt)


async def _until(items: AsyncIterator[Any], stop: asyncio.Event) -> AsyncIterator[Any]:
    """Yields from `items` until `stop` is set, then raises ShuttingDown."""
    stopper = asyncio.ensure_future(stop.wait())
    nxt: asyncio.Future[Any] | None = None
    try:
        while True:
            nxt = asyncio.ensure_future(anext(items))
            await asyncio.wait({nxt, stopper}, return_when=asyncio.FIRST_COMPLETED)
            # The drain wins over a receipt that is ready, and over the stream's
            # own end: what is written during the drain (a fan-out's last batch)
            # is read from the cursor on another replica, so the stream always
            # ends UNAVAILABLE once the drain has begun.
            if stop.is_set():
                raise errors.ShuttingDown("server is shutting down; resume with the last cursor")
            try:
                item = nxt.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        stopper.cancel()
        if nxt is not None and not nxt.done():
            # Let the pending read unwind before closing the generator it runs in.
            nxt.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await nxt
        with contextlib.suppress(Exception):
            await items.aclose()  # type: ignore[attr-defined]
