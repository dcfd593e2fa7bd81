"""The back-off between attempts: a server's Retry-After wins (capped), else exponential back-off with full
jitter up to a cap. In-process: the schedule is plain arithmetic, no call needs to be made to see it."""
from __future__ import annotations

import random

import pytest

from runner.calling.retry import backoff_s, retry_after_s


def spread(attempt: int, draws: int = 400) -> tuple[float, float]:
    random.seed(attempt)
    waits = [backoff_s(attempt, None) for _ in range(draws)]
    return min(waits), max(waits)


@pytest.mark.parametrize("attempt, ceiling", [(0, 0.5), (1, 1.0), (3, 4.0), (5, 16.0)])
def test_back_off_doubles_from_half_a_second_with_full_jitter(attempt, ceiling):
    low, high = spread(attempt)
    assert 0 <= low < 0.05 * ceiling  # full jitter: a wait can be close to nothing
    assert 0.95 * ceiling < high <= ceiling


def test_back_off_stops_growing_at_thirty_seconds():
    low, high = spread(12)
    assert low >= 0 and 29.5 < high <= 30.0


def test_a_servers_retry_after_wins_over_the_back_off():
    assert backoff_s(0, 7.0) == 7.0
    assert backoff_s(6, 0.25) == 0.25


def test_retry_after_is_capped_at_a_minute_and_never_negative():
    assert retry_after_s(None) is None
    assert retry_after_s(60.0) == 60.0
    assert retry_after_s(3600.0) == 60.0
    assert retry_after_s(0.5) == 0.5
    assert retry_after_s(-3.0) == 0.0
    assert backoff_s(2, 120.0) == 60.0
