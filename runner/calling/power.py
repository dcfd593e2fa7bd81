"""How many items a comparison needs: the smallest difference between two cells' mean scores that a paired
comparison on n items detects, and the items needed to detect a difference the user names.

Both come from the power of a two-sided paired t-test (the noncentral t distribution, scipy's `nct`, solved
with `brentq`: what statsmodels' TTestPower does), for a spread `sd` of the per-item differences. It is the
usual planning approximation for the report's paired tests (a permutation test of the mean difference, or
McNemar's for pass/fail). Here, beside the dry run that states it before any call, because the calls half
must not import the analysis half; the report uses the same functions with the spread it observed.
No pandas: only numpy and scipy, imported when asked.
"""
from __future__ import annotations

import math

MOST_ITEMS = 10_000_000  # past this, "how many items" has no useful answer


def power(difference: float, items: int, sd: float, alpha: float = 0.05) -> float:
    """The chance that a two-sided paired t-test at level `alpha` on `items` items detects a true mean
    difference `difference` when the per-item differences spread with standard deviation `sd`."""
    from scipy import stats

    if items < 2 or sd <= 0:
        return float("nan")
    df = items - 1
    shift = abs(difference) / sd * math.sqrt(items)
    critical = stats.t.isf(alpha / 2, df)
    found = float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))
    if math.isnan(found):  # scipy's nct gives up far out in a tail: there the answer is plain
        return 1.0 if shift > critical else 0.0
    return found


def detectable_difference(items: int, sd: float, alpha: float = 0.05, wanted: float = 0.8) -> float | None:
    """The smallest true mean difference that `items` paired items detect with probability `wanted` (None for
    fewer than 2 items or no spread)."""
    from scipy import optimize

    if items < 2 or not sd > 0 or not 0 < alpha < 1 or not 0 < wanted < 1:
        return None
    high = sd
    while power(high, items, sd, alpha) < wanted:  # power grows with the difference: bracket, then solve
        high *= 2
        if high > 1e6 * sd:
            return None
    return float(optimize.brentq(lambda d: power(d, items, sd, alpha) - wanted, 0.0, high, xtol=1e-10))


def items_needed(difference: float, sd: float, alpha: float = 0.05, wanted: float = 0.8) -> int | None:
    """The fewest paired items that detect a true mean difference `difference` with probability `wanted`
    (None when nothing sensible: no difference, no spread, or more than MOST_ITEMS)."""
    if not difference or not sd > 0 or not 0 < alpha < 1 or not 0 < wanted < 1:
        return None
    low, high = 2, 2
    while power(difference, high, sd, alpha) < wanted:
        low, high = high, high * 2
        if high > MOST_ITEMS:
            return None
    while low < high:  # the smallest n with enough power: power grows with n
        middle = (low + high) // 2
        if power(difference, middle, sd, alpha) >= wanted:
            high = middle
        else:
            low = middle + 1
    return high


def shown(difference: float | None) -> str:
    """A detectable difference as the report and the dry run say it: scores run from 0 to 1, so one past 1
    means the items cannot tell any two cells apart."""
    if difference is None:
        return "n/a"
    return f"{difference:.2f}" if difference <= 1 else "more than 1 (a score's whole range: too few items)"
