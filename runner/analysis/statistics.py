"""Intervals that tell signal from noise, computed with scipy (never a hand-rolled bootstrap).

- A cell's mean score: BCa bootstrap over items, each item's repeats kept together (a cluster), because
  repeats of one item are correlated: resampling calls would make the interval too narrow.
- A pass rate: Wilson's interval (scipy's binomtest).
- Two models on the same items: the paired difference of their per-item means, bootstrapped over items.
- Several judges: the share of answers they agree on (pass/fail) and Fleiss' kappa; a judge against people:
  Cohen's kappa.
- Whether two cells differ, as a test on the same items: McNemar's exact test when every item's outcome is
  pass or fail in both (scipy's binomtest on the items where they disagree), else a paired permutation test
  of the mean difference (scipy's permutation_test: each item's two scores swapped or not).
- Many pairs at once: p-values adjusted over all of them, Holm's (the chance of any false "better" stays
  under alpha) or Benjamini-Hochberg's (scipy's false_discovery_control: the share of false ones does).
Every bootstrap and permutation uses a fixed seed, so a rebuilt comparison shows the same numbers.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0
MCNEMAR = "McNemar exact"
PERMUTATION = "paired permutation"
ADJUSTMENTS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


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


def cohen_kappa(first: list, second: list) -> float | None:
    """Cohen's kappa between two raters' labels of the same things (any hashable labels); None when it is
    undefined (nothing rated, or both raters always gave one and the same label)."""
    if len(first) != len(second) or not first:
        return None
    labels = sorted(set(first) | set(second), key=str)
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    np.add.at(table, ([index[x] for x in first], [index[y] for y in second]), 1)
    table /= table.sum()
    observed = float(np.trace(table))
    expected = float(table.sum(axis=1) @ table.sum(axis=0))
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


@dataclass(frozen=True)
class Test:
    """A paired test of two cells on the items both have: which test, its two-sided p-value, how many items."""

    name: str
    p: float | None
    items: int


def is_pass_fail(values) -> bool:
    values = np.asarray(values, dtype=float)
    return bool(len(values)) and bool(np.isin(values, (0.0, 1.0)).all())


def mcnemar(a, b) -> float:
    """McNemar's exact two-sided p-value for paired pass/fail outcomes (1/0): a binomial test of the items
    only b passes against the items only a passes, at one half."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    only_b, only_a = int(((b == 1) & (a == 0)).sum()), int(((a == 1) & (b == 0)).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)


def permutation(a, b) -> float:
    """A paired permutation test's two-sided p-value for the mean of b - a: each item's two scores swapped or
    not, which flips the sign of its difference (exact when every way fits in RESAMPLES, else RESAMPLES random
    ones, seeded)."""
    from scipy import stats

    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if np.allclose(diffs, 0):
        return 1.0
    # one sample with permutation_type="samples": scipy flips the signs (half the time of swapping two samples)
    result = stats.permutation_test((diffs,), lambda d, axis=-1: np.mean(d, axis=axis), vectorized=True,
                                    permutation_type="samples", n_resamples=RESAMPLES, alternative="two-sided",
                                    random_state=np.random.default_rng(SEED))
    return float(result.pvalue)


def paired_test(a: dict, b: dict) -> Test:
    """Whether b differs from a on the items both have ({item: that item's mean score}): McNemar's exact test
    when every such mean is 0 or 1 (pass/fail, or repeats that all agree), else the paired permutation test."""
    items = sorted(set(a) & set(b))
    x, y = np.array([a[i] for i in items], dtype=float), np.array([b[i] for i in items], dtype=float)
    if len(items) < 2:
        return Test("", None, len(items))
    if is_pass_fail(x) and is_pass_fail(y):
        return Test(MCNEMAR, mcnemar(x, y), len(items))
    return Test(PERMUTATION, permutation(x, y), len(items))


def adjusted(pvalues, method: str = "holm") -> np.ndarray:
    """p-values adjusted over the whole family (NaN stays NaN and counts in no family): Holm's step-down, or
    Benjamini-Hochberg's (scipy)."""
    from scipy import stats

    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    known = ~np.isnan(p)
    if not known.any():
        return out
    values = p[known]
    if method == "bh":
        out[known] = stats.false_discovery_control(values, method="bh")
        return out
    if method != "holm":
        raise ValueError(f"unknown adjustment {method!r} (known: {', '.join(ADJUSTMENTS)})")
    order = np.argsort(values, kind="stable")
    m = len(values)
    steps = np.maximum.accumulate((m - np.arange(m)) * values[order])  # (m - i) p_(i), never decreasing
    found = np.empty(m)
    found[order] = np.minimum(steps, 1.0)
    out[known] = found
    return out
