"""Turning transport failures and Retry-After headers into provider results.

Both adapters promise never to raise for provider or network errors; this is
the one place that decides which exceptions count as such.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import ssl

import h2.exceptions
import httpx

from pushsvc.providers import base

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,
    httpx.TimeoutException,
    TimeoutError,
    OSError,
    ssl.SSLError,
    h2.exceptions.H2Error,
    EOFError,
)
"""Exceptions that mean "no usable answer from the provider": retry later."""


def transport_failure(exc: BaseException) -> base.ProviderResult:
    """Classifies an exception raised while talking to a provider as RETRYABLE.

    The reason is a short, secret-free name ("Timeout", "ConnectError",
    "RemoteProtocolError", ...), never the exception text, which may quote URLs
    or headers.
    """
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        reason = "Timeout"
    elif isinstance(exc, httpx.HTTPError):
        reason = type(exc).__name__
    elif isinstance(exc, h2.exceptions.H2Error):
        reason = "ProtocolError"
    else:
        reason = "ConnectionError"
    return base.ProviderResult(outcome=base.Outcome.RETRYABLE, provider_status=0, reason=reason)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Parses a Retry-After header: delta seconds or an HTTP date.

    Args:
        value: The header value, or None when absent.
        now: The current time in epoch seconds, for HTTP dates.

    Returns:
        Seconds to wait (never negative), or None when absent or unparseable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; an unzoned one is read the same way.
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - now)
