"""RetryPolicy: exponential backoff with jitter, honouring Retry-After."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before retrying a retryable outcome."""

    max_attempts: int = 5
    """Attempts per token, the first included."""
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.2
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""

    unknown_outcome_factor: int = 3
    """How many times `max_attempts` a delivery may be sent once a send's outcome was unknown."""

    def attempts_allowed(self, maybe_accepted: bool) -> int:
        """Sends allowed for one delivery.

        After a send whose answer was lost (it may have been accepted), ending
        on a later 429/5xx would report FAILED for a push that may have been
        delivered; the delivery keeps going until an answer settles it, up to
        `unknown_outcome_factor` times `max_attempts`.
        """
        return self.max_attempts * self.unknown_outcome_factor if maybe_accepted else self.max_attempts

    def delay_s(self, attempt: int, retry_after_s: float | None, rand: Callable[[], float] = random.random) -> float:
        """Delay before attempt `attempt + 1`; never shorter than the provider's Retry-After."""
        base = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** max(0, attempt - 1))
        delay = base * (1 - self.jitter + 2 * self.jitter * rand())
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay
