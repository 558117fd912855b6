"""A google-auth transport over HTTP/2, for OAuth endpoints that refuse HTTP/1.1.

google-auth refreshes service-account tokens through `requests`, which speaks
HTTP/1.1 only. The pushsvc emulator's OAuth endpoint now also speaks HTTP/1.1,
so this is the fallback for one that does not: a google-auth `Request` over
an HTTP/2 httpx client (httpx comes with the dev extra, not with the server).
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

from pushsvc.providers.fcm_auth import FCM_SCOPE, UrllibAuthResponse


class Http2Request(google.auth.transport.Request):
    """A google-auth `Request` that sends over httpx with HTTP/2, trusting one CA file."""

    def __init__(self, ca_file: Path) -> None:
        self._client = httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(ca_file)))

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> UrllibAuthResponse:
        try:
            response = self._client.request(method, url, content=body, headers=dict(headers or {}), timeout=timeout or 30.0)
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(type(exc).__name__) from exc
        return UrllibAuthResponse(response.status_code, response.headers, response.content)

    def close(self) -> None:
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
