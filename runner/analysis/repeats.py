"""Repeats, for models whose answers vary: per cell, pass@k (at least one of an item's k repeats passes) and
pass^k (all k pass), each with Wilson's 95% interval over items; how often an item's repeats disagree; and
which cells pass on average but not reliably.

An item counts in a cell's pass@k and pass^k only when all k of its repeats were scored (k: the most repeats
any item of the cell has), so that every item is judged on the same number of tries. A cell is *unreliable*
when even the top of pass^k's 95% interval is below its pass rate: it passes an item on one repeat and fails
it on another far more often than chance alone allows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from runner.analysis import statistics
from runner.analysis.summary import CELL_KEYS

CELL_COLUMNS = ["k", "items_with_k", "pass_at_k", "pass_at_k_low", "pass_at_k_high", "pass_all_k", "pass_all_k_low",
                "pass_all_k_high", "repeats_disagree", "unreliable"]


def per_item(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and item: repeats scored (n), repeats passed (c), and how often two of its repeats
    disagree on pass/fail (2c(n-c) / n(n-1), None below 2 repeats)."""
    if answers.empty:
        return pd.DataFrame(columns=CELL_KEYS + ["item", "n", "c", "disagree"])
    found = answers.assign(passed=answers["pass"].astype(bool).astype(int)).groupby(
        CELL_KEYS + ["item"], dropna=False, sort=True)["passed"].agg(n="size", c="sum").reset_index()
    n, c = found.n.to_numpy(dtype=float), found.c.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        found["disagree"] = np.where(n >= 2, 2 * c * (n - c) / (n * (n - 1)), np.nan)
    return found


def per_cell(answers: pd.DataFrame, pass_rates: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with repeats (k >= 2): CELL_COLUMNS. `answers`: the overall rows (one per item and
    repeat); `pass_rates`: per_cell's overall rows (for the pass rate the reliability is judged against)."""
    items = per_item(answers)
    rows = []
    for keys, group in items.groupby(CELL_KEYS, dropna=False, sort=True):
        k = int(group.n.max())
        if k < 2:
            continue
        whole = group[group.n == k]
        any_pass, all_pass = int((whole.c > 0).sum()), int((whole.c == k).sum())
        at_k, all_k = statistics.wilson(any_pass, len(whole)), statistics.wilson(all_pass, len(whole))
        repeated = group[group.n >= 2]
        disagree = float(((repeated.c > 0) & (repeated.c < repeated.n)).mean()) if len(repeated) else None
        cell = dict(zip(CELL_KEYS, keys))
        rate = _pass_rate(pass_rates, cell)
        rows.append({**cell, "k": k, "items_with_k": len(whole), "pass_at_k": at_k.value, "pass_at_k_low": at_k.low,
                     "pass_at_k_high": at_k.high, "pass_all_k": all_k.value, "pass_all_k_low": all_k.low,
                     "pass_all_k_high": all_k.high, "repeats_disagree": disagree,
                     "unreliable": bool(all_k.high is not None and rate is not None and all_k.high < rate)})
    return pd.DataFrame(rows, columns=CELL_KEYS + CELL_COLUMNS)


def _pass_rate(pass_rates: pd.DataFrame, cell: dict) -> float | None:
    if pass_rates.empty:
        return None
    mine = pass_rates
    for key, value in cell.items():
        mine = mine[(mine[key] == value) | (mine[key].isna() & pd.isna(value))]
    rate = mine.pass_rate.dropna()
    return float(rate.iloc[0]) if len(rate) else None


def flaky_items(answers: pd.DataFrame, at_most: int = 10) -> pd.DataFrame:
    """The items whose repeats disagree most, over every cell that repeated them: in how many cells their
    repeats disagree, and how often two repeats of theirs disagree (the mean over those cells)."""
    items = per_item(answers)
    items = items[items.n >= 2]
    if items.empty:
        return pd.DataFrame(columns=["task", "item", "cells", "cells_disagreeing", "disagree"])
    items = items.assign(split=(items.c > 0) & (items.c < items.n))
    found = items.groupby(["task", "item"], sort=True).agg(
        cells=("n", "size"), cells_disagreeing=("split", "sum"), disagree=("disagree", "mean")).reset_index()
    found = found[found.cells_disagreeing > 0]
    return found.sort_values(["disagree", "cells_disagreeing", "task", "item"],
                             ascending=[False, False, True, True]).head(at_most)
