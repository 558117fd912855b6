"""Provider adapters: APNs and FCM behind one small Protocol.

`base` defines the port (`Provider`, `Outcome`, `ProviderResult`,
`RenderedMessage`, `Delivery`); `apns` and `fcm` render messages and send them;
`aps` is Apple's vocabulary both renderers share; `apns_jwt` and `fcm_auth`
hold the shared credentials and `credentials` the refresh-once step;
`transport` is the one HTTP/2 transport (libcurl through pycurl) the adapters
send through.
"""

from pushsvc.providers.apns import ApnsProvider, apns_client_tls, render_apns
from pushsvc.providers.apns_jwt import ApnsTokenSigner
from pushsvc.providers.base import Delivery, Outcome, Provider, ProviderResult, RenderedMessage
from pushsvc.providers.fcm import FcmProvider, render_fcm
from pushsvc.providers.fcm_auth import FcmAccessTokenSource
from pushsvc.providers.transport import Http2Transport, TlsConfig, Transport

__all__ = [
    "ApnsProvider",
    "ApnsTokenSigner",
    "Delivery",
    "FcmAccessTokenSource",
    "FcmProvider",
    "Http2Transport",
    "Outcome",
    "Provider",
    "ProviderResult",
    "RenderedMessage",
    "TlsConfig",
    "Transport",
    "apns_client_tls",
    "render_apns",
    "render_fcm",
]
