"""A google-auth transport over HTTP/2, for OAuth endpoints that refuse HTTP/1.1.

google-auth refreshes service-account tokens through `requests`, which speaks
HTTP/1.1 only. The pushsvc emulator's OAuth endpoint now also speaks HTTP/1.1,
so this is the fallback for one that does not: pushsvc's own
`HttpxAuthRequest` over an HTTP/2 httpx client.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from google.oauth2 import service_account

from pushsvc.providers.fcm_auth import FCM_SCOPE, HttpxAuthRequest


class Http2Request(HttpxAuthRequest):
    """A google-auth `Request` that sends over httpx with HTTP/2, trusting one CA file."""

    def __init__(self, ca_file: Path) -> None:
        super().__init__(httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(ca_file))))


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
