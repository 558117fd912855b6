"""The credential step both adapters share: authorize, send, and refresh once if told the credential is stale.

APNs (a JWT signed with the app's key) and FCM (an OAuth access token) differ
in how a credential is made, not in how a stale one is handled: when the
provider answers that the credential has expired, mint or fetch a new one and
resend once; a second rejection stands, and the dispatcher fails the whole
notification on it. Concurrent sends that hit the same rejection share one
refresh, because each credential source refreshes once per rejected value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from pushsvc.providers import base


class CredentialUnavailable(Exception):
    """No credential could be obtained; `result` is the outcome to report instead of sending."""

    def __init__(self, result: base.ProviderResult) -> None:
        super().__init__(result.reason)
        self.result = result


async def send_authorized(
    send: Callable[[str | None], Awaitable[base.ProviderResult]],
    authorize: Callable[[], str | None | Awaitable[str | None]],
    reject: Callable[[str], None],
) -> base.ProviderResult:
    """Sends with the current credential; on a stale-credential answer, refreshes once and resends.

    Args:
        send: Sends one request with the given authorization header value (None: none).
        authorize: Returns the current authorization value, or an awaitable
            of it when it must be fetched; raises `CredentialUnavailable` when
            none can be had. (A plain value spares a coroutine per send on the
            hot path: the cached JWT or access token.)
        reject: Tells the credential source that a value was rejected as stale.

    Returns:
        The last answer.
    """
    result: base.ProviderResult | None = None
    for refreshed in (False, True):
        try:
            credential = authorize()
            if credential is not None and not isinstance(credential, str):
                credential = await credential
        except CredentialUnavailable as exc:
            return exc.result
        result = await send(credential)
        if not result.credential_stale or credential is None or refreshed:
            break
        reject(credential)
    assert result is not None
    return result


async def send_batch_authorized(
    send: Callable[[str | None, Sequence[int]], Awaitable[list[base.ProviderResult]]],
    authorize: Callable[[], str | None | Awaitable[str | None]],
    reject: Callable[[str], None],
    count: int,
) -> list[base.ProviderResult]:
    """`send_authorized` for a batch: one credential for the batch, one refresh for the stale answers.

    Args:
        send: Sends the requests at the given indices (of `count`) with the
            given authorization value, as one batch; returns their results in
            the indices' order.
        authorize: As for `send_authorized`.
        reject: As for `send_authorized`.
        count: The batch's size.

    Returns:
        The last answer of each request, in order. The requests the provider
        called stale are refreshed once and resent together; a second stale
        answer stands.
    """
    try:
        credential = authorize()
        if credential is not None and not isinstance(credential, str):
            credential = await credential
    except CredentialUnavailable as exc:
        return [exc.result] * count
    results = await send(credential, range(count))
    if credential is None:
        return results
    stale = [index for index, result in enumerate(results) if result.credential_stale]
    if not stale:
        return results
    reject(credential)
    try:
        fresh = authorize()
        if fresh is not None and not isinstance(fresh, str):
            fresh = await fresh
    except CredentialUnavailable as exc:
        for index in stale:
            results[index] = exc.result
        return results
    for index, result in zip(stale, await send(fresh, stale), strict=True):
        results[index] = result
    return results
