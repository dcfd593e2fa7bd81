"""Many cells compared at once, on the same items: every pair's paired difference and test, the p-values
adjusted over the whole family, which pairs that leaves separated, the groups no adjusted test separates
(a compact letter display), which cells are tied with the best, and the smallest difference the items can
detect.

A family is every pair this module is given at once (`compare`): a sweep of 6 models makes 15 pairs, and
with 95% per pair about one "better" in the 15 would be noise; adjusted over the family (Holm by default),
the chance of any such false "better" stays at or under alpha. The units compared are cells (or models) and
each item counts once: its repeats are averaged first, because they are not independent of each other.
"""
from __future__ import annotations

import string
from collections.abc import Hashable

import numpy as np
import pandas as pd

from runner.analysis import statistics
from runner.calling import power
from runner.settings import StatsSettings

PAIR_COLUMNS = ["group", "a", "b", "items", "difference", "low", "high", "sd", "test", "p", "p_adjusted",
                "separated"]


def compare(groups: dict[Hashable, dict[Hashable, dict]], stats: StatsSettings = StatsSettings()) -> pd.DataFrame:
    """Every pair of units within each group ({group: {unit: {item: mean score}}}), b minus a on the items both
    have: the mean difference with its 95% interval, the spread (sd) of the per-item differences, the test and
    its p-value, the p-value adjusted over every pair of every group, and whether that leaves them separated
    (adjusted p below stats.alpha)."""
    rows = []
    for group, units in groups.items():
        names = sorted(units, key=str)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                diff, paired = statistics.paired_difference(units[a], units[b])
                if not paired:
                    continue
                test = statistics.paired_test(units[a], units[b])
                both = sorted(set(units[a]) & set(units[b]))
                spread = float(np.std([units[b][k] - units[a][k] for k in both], ddof=1)) if paired > 1 else None
                rows.append({"group": group, "a": a, "b": b, "items": paired, "difference": diff.value,
                             "low": diff.low, "high": diff.high, "sd": spread, "test": test.name, "p": test.p})
    found = pd.DataFrame(rows, columns=PAIR_COLUMNS[:-2])
    found["p_adjusted"] = statistics.adjusted(found.p.astype(float), stats.adjust) if len(found) else []
    found["separated"] = found.p_adjusted.astype(float) < stats.alpha
    return found


def separated_pairs(pairs: pd.DataFrame) -> set[frozenset]:
    return {frozenset((r.a, r.b)) for r in pairs.itertuples() if r.separated}


def letters(order: list, separated: set[frozenset]) -> dict:
    """A compact letter display (Piepho's insert-absorb): units that share a letter are separated by no test;
    two units a test separates share none. `order`: best first, so the best unit's group is `a`."""
    columns = [set(order)]
    for pair in separated:
        i, j = tuple(pair)
        split = []
        for column in columns:
            split += [column - {i}, column - {j}] if i in column and j in column else [column]
        columns = [c for k, c in enumerate(split)  # absorb: a group inside another says nothing more
                   if c and not any(c < d or (c == d and m < k) for m, d in enumerate(split) if m != k)]
    rank = {unit: n for n, unit in enumerate(order)}
    columns.sort(key=lambda c: sorted(rank[u] for u in c))
    names = list(string.ascii_lowercase)
    names += [f"{x}{y}" for x in string.ascii_lowercase for y in string.ascii_lowercase]  # past 26 groups
    return {unit: "".join(names[n] for n, column in enumerate(columns) if unit in column) for unit in order}


def means(units: dict[Hashable, dict]) -> dict:
    """Each unit's mean over its items (each item's repeats averaged first)."""
    return {unit: float(np.mean(list(items.values()))) if items else float("nan") for unit, items in units.items()}


def ranked(units: dict[Hashable, dict]) -> list:
    """Units best first (highest mean; ties by name)."""
    found = means(units)
    return sorted(units, key=lambda u: (-found[u] if found[u] == found[u] else float("inf"), str(u)))


def groups(units_by_group: dict[Hashable, dict[Hashable, dict]], pairs: pd.DataFrame) -> dict:
    """{unit: its letters} within each group (units of different groups are never compared)."""
    separated = separated_pairs(pairs)
    found = {}
    for units in units_by_group.values():
        found.update(letters(ranked(units), {p for p in separated if p <= set(units)}))
    return found


def tied_with_best(units_by_group: dict[Hashable, dict[Hashable, dict]], pairs: pd.DataFrame) -> dict:
    """{unit: True when no adjusted test separates it from its group's best unit (the best included)}."""
    separated = separated_pairs(pairs)
    found = {}
    for units in units_by_group.values():
        order = ranked(units)
        best = order[0] if order else None
        found.update({u: u == best or frozenset((u, best)) not in separated for u in order})
    return found


def pooled_sd(pairs: pd.DataFrame) -> float | None:
    """The spread of per-item differences over the family's pairs: the root of their mean variance."""
    spreads = pairs.sd.dropna().astype(float)
    return float(np.sqrt(np.mean(spreads ** 2))) if len(spreads) else None


def detectable(items: int, sd: float | None, stats: StatsSettings, pairs: int = 1) -> tuple:
    """(the smallest difference one pair on its own can detect, the same for a pair that must stand out among
    `pairs` adjusted ones (at alpha / pairs, the adjustment's first step)); None where it cannot be said."""
    if sd is None or not sd > 0:
        return None, None
    alone = power.detectable_difference(items, sd, stats.alpha, stats.power)
    among = power.detectable_difference(items, sd, stats.alpha / pairs, stats.power) if pairs > 1 else alone
    return alone, among


def planning_line(items: int, sd: float | None, stats: StatsSettings, pairs: int, where: str = "",
                  what: str = "pair") -> str | None:
    """One sentence: the smallest difference these items can detect, and the items stats.detect needs.
    `pairs`: how many are adjusted together; `what`: what each of them is (a pair, a change)."""
    alone, among = detectable(items, sd, stats, pairs)
    if alone is None:
        return None
    confidence = f"{1 - stats.alpha:.0%} confidence with {stats.power:.0%} power"
    text = (f"With {items} items{where} and the spread seen here (sd {sd:.2f} of the per-item differences), the "
            f"smallest difference in mean score a {what} can detect is **{power.shown(alone)}** ({confidence})")
    if pairs > 1 and among is not None:
        text += (f"; **{power.shown(among)}** for a {what} that must stand out among the {pairs} {what}s adjusted "
                 f"together")
    text += "."
    if stats.detect:
        needed = power.items_needed(stats.detect, sd, stats.alpha, stats.power)
        adjusted = power.items_needed(stats.detect, sd, stats.alpha / pairs, stats.power) if pairs > 1 else needed
        if needed is None:
            text += f" A difference of {stats.detect:g} (`stats.detect`) needs more items than can be counted."
        else:
            text += f" To detect a difference of {stats.detect:g} (`stats.detect`) takes about **{needed}** items"
            text += (f" ({adjusted} among the {pairs} {what}s)." if pairs > 1 and adjusted else ".")
    return text
