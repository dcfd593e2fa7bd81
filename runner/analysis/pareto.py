"""Quality for the money: the cells on the Pareto front (no other cell of the same task is both at most as
dear and at least as good, and better in one), and the cheapest cell statistically tied with the best.

Scores of different tasks are not comparable, so each task has a front of its own. A cell with no known
price has no place on a front (its cost is unknown, not $0) and pushes no other cell off it.
"""
from __future__ import annotations

import math

import pandas as pd

from runner.money import dollars


def frontier(cost: list[float], score: list[float]) -> list[bool]:
    """Which cells no other cell beats on both: at most its cost and at least its score, better in one. A cell
    whose cost or score is unknown (NaN) is on no front and beats no one."""
    known = [not (_missing(c) or _missing(s)) for c, s in zip(cost, score)]
    return [k and not any(k2 and c2 <= c and s2 >= s and (c2 < c or s2 > s)
                          for c2, s2, k2 in zip(cost, score, known))
            for c, s, k in zip(cost, score, known)]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pareto_front(summary: pd.DataFrame) -> pd.Series:
    """True for the summary rows on their task's front (score: the overall mean; cost: per call at list price)."""
    found = pd.Series(False, index=summary.index)
    if summary.empty or "score" not in summary:
        return found
    for _, rows in summary.groupby("task", sort=False):
        cost = pd.to_numeric(rows.cost_per_call_usd, errors="coerce").astype(float).tolist()
        score = pd.to_numeric(rows.score, errors="coerce").astype(float).tolist()
        found.loc[rows.index] = frontier(cost, score)
    return found


def cheapest_tied(summary: pd.DataFrame) -> list[dict]:
    """Per task with scores: its best cell (highest overall score) and the cheapest cell no adjusted test
    separates from it (`tied_with_best`), as summary rows ({task, best, cheapest})."""
    if summary.empty or "tied_with_best" not in summary:
        return []
    found = []
    for task, rows in summary[summary.score.notna()].groupby("task", sort=True):
        best = rows.loc[rows.score.astype(float).idxmax()]
        tied = rows[(rows.tied_with_best == True) & rows.cost_per_call_usd.notna()]  # noqa: E712 - a column
        if tied.empty:
            continue
        cheapest = tied.loc[tied.cost_per_call_usd.astype(float).idxmin()]
        found.append({"task": task, "best": best, "cheapest": cheapest})
    return found


def cheapest_line(found: dict, label) -> str:
    """One sentence: the cheapest cell tied with the best, or that the best is also the cheapest of them."""
    best, cheapest = found["best"], found["cheapest"]
    if best.name == cheapest.name:
        return (f"task {found['task']}: the best cell, {label(best)} (score {best.score:.2f}, "
                f"{dollars(best.cost_per_call_usd)} per call), is also the cheapest of the cells tied with it")
    return (f"task {found['task']}: the cheapest cell statistically tied with the best is {label(cheapest)} "
            f"(score {cheapest.score:.2f}, {dollars(cheapest.cost_per_call_usd)} per call); the best is "
            f"{label(best)} (score {best.score:.2f}, {dollars(best.cost_per_call_usd)} per call)")
