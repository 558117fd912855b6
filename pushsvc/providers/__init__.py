"""Provider adapters: APNs and FCM behind one small Protocol.

`base` defines the port (`Provider`, `Outcome`, `ProviderResult`,
`RenderedMessage`, `Delivery`); `apns` and `fcm` render messages and send them;
`apns_jwt` and `fcm_auth` hold the shared credentials; `http_client` and
`h2transport` build the HTTP/2 client the adapters send through.
"""

from pushsvc.providers.apns import ApnsProvider, apns_client_tls_context, render_apns
from pushsvc.providers.apns_jwt import ApnsTokenSigner
from pushsvc.providers.base import Delivery, Outcome, Provider, ProviderResult, RenderedMessage
from pushsvc.providers.fcm import FcmProvider, render_fcm
from pushsvc.providers.fcm_auth import FcmAccessTokenSource
from pushsvc.providers.h2transport import H2Transport
from pushsvc.providers.http_client import make_http_client

__all__ = [
    "ApnsProvider",
    "ApnsTokenSigner",
    "Delivery",
    "FcmAccessTokenSource",
    "FcmProvider",
    "H2Transport",
    "Outcome",
    "Provider",
    "ProviderResult",
    "RenderedMessage",
    "apns_client_tls_context",
    "make_http_client",
    "render_apns",
    "render_fcm",
]
