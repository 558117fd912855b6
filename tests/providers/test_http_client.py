"""make_http_client and DirectPostClient."""

from __future__ import annotations

import httpx

from pushsvc.providers.http_client import DirectPostClient, make_http_client


async def test_direct_post_reaches_the_transport_with_merged_headers_and_timeouts() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, headers={"x-answer": "42"}, content=b"body", request=request)

    client = DirectPostClient(transport=httpx.MockTransport(handler), timeout=httpx.Timeout(3.0))
    client.headers["user-agent"] = "pushsvc"
    async with client:
        response = await client.post("https://example.test/p?q=1", content=b"payload", headers={"a": "b"})
    assert (response.status_code, response.headers["x-answer"], response.content) == (201, "42", b"body")
    request = seen[0]
    assert request.method == "POST" and request.url.raw_path == b"/p?q=1" and request.content == b"payload"
    assert request.headers["a"] == "b" and request.headers["user-agent"] == "pushsvc"
    assert request.extensions["timeout"] == {"connect": 3.0, "read": 3.0, "write": 3.0, "pool": 3.0}
    assert response.request is request


async def test_make_http_client_drops_browser_defaults() -> None:
    for fast in (True, False):
        async with make_http_client(fast=fast) as client:
            assert "accept" not in client.headers and "accept-encoding" not in client.headers
            assert "connection" not in client.headers
            assert client.headers["user-agent"] == "pushsvc"
            assert isinstance(client, DirectPostClient) is fast
