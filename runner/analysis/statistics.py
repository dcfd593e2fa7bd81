"""Intervals that tell signal from noise, computed with scipy (never a hand-rolled bootstrap).

- A cell's mean score: BCa bootstrap over items, each item's repeats kept together (a cluster), because
  repeats of one item are correlated: resampling calls would make the interval too narrow.
- A pass rate: Wilson's interval (scipy's binomtest).
- Two models on the same items: the paired difference of their per-item means, bootstrapped over items.
- Several judges: the share of answers they agree on (pass/fail) and Fleiss' kappa.
Every bootstrap uses a fixed seed, so a rebuilt comparison shows the same numbers.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None = None
    high: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def _bootstrap(samples: tuple, statistic) -> tuple[float, float] | None:
    from scipy import stats

    for method in ("BCa", "percentile"):  # BCa is undefined for some small samples: fall back, never fail
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.bootstrap(samples, statistic, paired=len(samples) > 1, vectorized=True,
                                     n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method=method,
                                     random_state=np.random.default_rng(SEED))
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
    return None


def _ratio(sums, counts, axis=-1):
    return np.sum(sums, axis=axis) / np.sum(counts, axis=axis)


def clustered_mean(values, clusters) -> Estimate:
    """The mean of `values` with a 95% interval from resampling whole clusters (items), not single values."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return Estimate(None)
    keys, index = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    sums = np.bincount(index, weights=values, minlength=len(keys))
    counts = np.bincount(index, minlength=len(keys)).astype(float)
    mean = float(values.mean())
    if len(keys) < 2:
        return Estimate(mean)  # one item: no interval over items
    if np.allclose(values, values[0]):
        return Estimate(mean, mean, mean)
    interval = _bootstrap((sums, counts), _ratio)
    return Estimate(mean, *interval) if interval else Estimate(mean)


def wilson(passed: int, total: int) -> Estimate:
    """The pass rate with Wilson's 95% interval."""
    from scipy import stats

    if total <= 0:
        return Estimate(None)
    interval = stats.binomtest(int(passed), int(total)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return Estimate(passed / total, float(interval.low), float(interval.high))


def paired_difference(a: dict, b: dict) -> tuple[Estimate, int]:
    """Mean of b - a over the items both have ({item: that item's mean score}), with a 95% interval from
    resampling items; and how many items were paired."""
    items = sorted(set(a) & set(b))
    diffs = np.array([b[i] - a[i] for i in items], dtype=float)
    if not len(diffs):
        return Estimate(None), 0
    mean = float(diffs.mean())
    if len(diffs) < 2:
        return Estimate(mean), len(diffs)
    if np.allclose(diffs, diffs[0]):
        return Estimate(mean, mean, mean), len(diffs)
    interval = _bootstrap((diffs,), np.mean)
    return (Estimate(mean, *interval) if interval else Estimate(mean)), len(diffs)


def fleiss_kappa(votes: np.ndarray) -> float | None:
    """Fleiss' kappa for a table of answers x categories (counts of judges per category, the same number of
    judges per answer); None when it is undefined (one answer, or every vote in one category)."""
    votes = np.asarray(votes, dtype=float)
    if votes.ndim != 2 or votes.shape[0] < 2:
        return None
    raters = votes.sum(axis=1)[0]
    if raters < 2:
        return None
    p_category = votes.sum(axis=0) / votes.sum()
    p_answer = ((votes ** 2).sum(axis=1) - raters) / (raters * (raters - 1))
    expected = float((p_category ** 2).sum())
    if expected >= 1:
        return None
    return float((p_answer.mean() - expected) / (1 - expected))
