"""Caller security: principals, API keys, JWTs, mTLS identities, and the interceptor that enforces them."""

from pushsvc.auth.authenticator import Authenticator, CredentialAuthenticator, OpenAuthenticator
from pushsvc.auth.build import build_authenticator, build_tls
from pushsvc.auth.interceptor import AuthInterceptor
from pushsvc.auth.principal import Action, AppScope, Principal
from pushsvc.auth.tls import CertificateReloader, TlsFiles

__all__ = [
    "Action",
    "AppScope",
    "AuthInterceptor",
    "Authenticator",
    "CertificateReloader",
    "CredentialAuthenticator",
    "OpenAuthenticator",
    "Principal",
    "TlsFiles",
    "build_authenticator",
    "build_tls",
]
