"""Turning transport failures and Retry-After headers into provider results.

Both adapters promise never to raise for provider or network errors; the
transport maps every library error to a `TransportError`, and this module
turns that into a RETRYABLE result.
"""

from __future__ import annotations

import datetime
import email.utils
import math

from pushsvc.providers import base
from pushsvc.providers.transport import TransportError


def transport_failure(exc: TransportError) -> base.ProviderResult:
    """Classifies a request that got no HTTP answer as RETRYABLE.

    The reason is the transport's short, secret-free name ("ConnectFailed",
    "ConnectionLost (outcome unknown)", "Timeout (outcome unknown)", ...), never
    the exception text, which may quote hosts or paths (and so tokens).
    """
    return base.ProviderResult(
        outcome=base.Outcome.RETRYABLE, provider_status=0, reason=exc.reason, outcome_unknown=exc.sent_maybe
    )


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
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)
