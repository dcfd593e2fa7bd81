"""The runner's one retry policy, the same for every provider (the SDKs' own retries are off).

Providers mark a failed call `retryable` (408, 409, 429, 5xx, timeouts, connection errors, truncated or
malformed bodies) and pass on a server's Retry-After; everything else (other 4xx) fails at once.
"""
from __future__ import annotations

import random

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 60.0  # a server asking for more gets this much: a sweep must not stall for hours


def retry_after_s(value: float | None) -> float | None:
    """A server's Retry-After, capped."""
    return None if value is None else min(max(value, 0.0), RETRY_AFTER_CAP_S)


def backoff_s(attempt: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: a server's Retry-After wins, else exponential back-off with full jitter."""
    if retry_after is not None:
        return retry_after_s(retry_after)
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt))
