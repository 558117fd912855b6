"""A google-auth transport over HTTP/2, for OAuth endpoints that refuse HTTP/1.1.

google-auth refreshes service-account tokens through `requests`, which speaks
HTTP/1.1 only. The pushsvc emulator's OAuth endpoint is HTTP/2-only (like the
real FCM send API), so a bench that needs an access token from it fetches one
through this transport instead.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport
import httpx
from google.oauth2 import service_account

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


class _Response(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class Http2Request(google.auth.transport.Request):
    """A google-auth `Request` that sends over httpx with HTTP/2, trusting one CA file."""

    def __init__(self, ca_file: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        self._client = httpx.Client(http2=True, verify=context)

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        try:
            response = self._client.request(method, url, content=body, headers=headers, timeout=timeout or 30.0)
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(exc) from exc
        return _Response(response)

    def close(self) -> None:
        """Closes the connection."""
        self._client.close()


def fetch_access_token(service_account_file: Path, ca_file: Path) -> str:
    """An FCM access token for the service account, fetched from its token_uri over HTTP/2."""
    credentials = service_account.Credentials.from_service_account_file(
        str(service_account_file), scopes=[FCM_SCOPE]
    )
    request = Http2Request(ca_file)
    try:
        credentials.refresh(request)
    finally:
        request.close()
    return str(credentials.token)
