"""Pairwise verdicts in the comparison: the sweep's pairwise.jsonl read back, each pair's two orders made one
outcome, win rates between cells with Wilson intervals, and a Bradley-Terry ranking with intervals from a
bootstrap over items.

A pair of answers (same item and repeat, two cells, one judge) is won by a cell only when the judge picks it
in both orders (A/B and B/A); when the orders disagree, or the judge says tie, the pair is a tie. A pair
with an order in error or skipped counts nowhere. Ties count half a win to each cell, in the win rates and
in the ranking. The Bradley-Terry strengths are fitted by Newton's method (numpy); each cell also
plays one virtual tie against a reference cell, which keeps a cell that won (or lost) every pair at a finite
rating. Ratings are on the Elo scale (400 points: 10 to 1 odds), centred on 1000.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from runner.analysis import statistics
from runner.analysis.report import table
from runner.scorers.pair_rows import COLUMNS, TIE, read_pairs
from runner.variant import Labels
from runner.words import counted

PRIOR = 1.0  # virtual ties per cell against a reference cell (0: the plain maximum-likelihood fit)
RESAMPLES = 2000  # bootstrap resamples of the items; each one is a Bradley-Terry fit
ELO = 400 / math.log(10)
OUTCOME_KEYS = ["scorer", "task", "item", "repeat", "judge", "cell_a", "cell_b"]


def read(folder: Path, skipped: list[str] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(read_pairs(folder, skipped), columns=COLUMNS)
    for column in ("item", "status", "winner", "better", "cell_a", "cell_b", "judge", "order", "task", "scorer"):
        df[column] = df[column].fillna("").astype(str)
    df["repeat"] = pd.to_numeric(df["repeat"], errors="coerce")
    return df


def outcomes(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per judged pair with both orders ok: `points_a` is 1 (cell_a won both orders), 0 (cell_b
    did), or 0.5 (a tie, or the orders disagree); `agreed`: both orders picked the same (a cell or tie)."""
    ok = rows[rows.status == "ok"]
    found = []
    for keys, group in ok.groupby(OUTCOME_KEYS, sort=True):
        if set(group.order) != {"AB", "BA"}:
            continue
        winners = set(group.winner)
        winner = next(iter(winners)) if len(winners) == 1 else TIE
        points = 1.0 if winner == keys[-2] else 0.0 if winner == keys[-1] else 0.5
        found.append((*keys, points, len(winners) == 1))
    return pd.DataFrame(found, columns=OUTCOME_KEYS + ["points_a", "agreed"])


def bradley_terry(wins, prior: float = PRIOR, tol: float = 1e-10, max_iter: int = 100) -> np.ndarray:
    """Log-strengths (centred on 0) that maximise the Bradley-Terry likelihood of `wins[..., i, j]`, the
    points cell i won against cell j (ties as halves), plus `prior` virtual games per cell half won against a
    cell of strength 1; by Newton's method, the leading axes being independent fits (bootstrap resamples)."""
    from scipy.special import expit

    wins = np.asarray(wins, dtype=float)
    games = wins + np.swapaxes(wins, -1, -2)
    size = wins.shape[-1]
    theta = np.zeros(wins.shape[:-1])
    for _ in range(max_iter):
        chance = expit(theta[..., :, None] - theta[..., None, :])  # P(i beats j)
        gradient = (wins - games * chance).sum(axis=-1) + prior / 2 * (1 - 2 * expit(theta))
        weight = games * chance * (1 - chance)
        hessian = weight - np.eye(size) * (weight.sum(axis=-1) + prior * expit(theta) * expit(-theta))[..., None, :]
        if not prior:  # the likelihood ignores a shift of every strength: fix it (steps stay centred)
            hessian = hessian - 1.0
        step = np.linalg.solve(hessian, -gradient[..., None])[..., 0]
        theta = theta + np.clip(step, -2.0, 2.0)  # a bounded step: far from the optimum Newton can overshoot
        if np.abs(step).max(initial=0.0) < tol:
            break
    return theta - theta.mean(axis=-1, keepdims=True)


def _per_item(frame: pd.DataFrame, index: dict[str, int], items: pd.Series, keys: list[str]) -> np.ndarray:
    """points[k, i, j]: what cell i won against cell j on item k."""
    where = {key: k for k, key in enumerate(keys)}
    item = items.map(where).to_numpy()
    a, b = frame.cell_a.map(index).to_numpy(), frame.cell_b.map(index).to_numpy()
    points = frame.points_a.to_numpy(dtype=float)
    found = np.zeros((len(keys), len(index), len(index)))
    np.add.at(found, (item, a, b), points)
    np.add.at(found, (item, b, a), 1 - points)
    return found


def ranking(frame: pd.DataFrame) -> pd.DataFrame:
    """One scorer's cells ranked: Bradley-Terry rating with its 95% interval (percentile bootstrap over items,
    each item's repeats, judges and pairs kept together), the share of points won, pairs played."""
    cells = sorted(set(frame.cell_a) | set(frame.cell_b))
    index = {cell: i for i, cell in enumerate(cells)}
    items = frame.task + "\x00" + frame.item
    keys = sorted(set(items))
    per_item = _per_item(frame, index, items, keys)
    flat = per_item.reshape(len(keys), -1)
    rating = 1000 + ELO * bradley_terry(per_item.sum(axis=0))
    low = high = np.full(len(cells), np.nan)
    if len(keys) >= 2:
        from scipy import stats

        def statistic(picked, axis=-1):  # a resample's points: how often it picked each item, times its points
            times = np.apply_along_axis(np.bincount, -1, picked, minlength=len(keys))
            return (1000 + ELO * bradley_terry((times @ flat).reshape(-1, len(cells), len(cells)))).T

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.bootstrap((np.arange(len(keys)),), statistic, vectorized=True, n_resamples=RESAMPLES,
                                     method="percentile", confidence_level=statistics.CONFIDENCE, batch=250,
                                     random_state=np.random.default_rng(statistics.SEED))
        low, high = np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)
    total = per_item.sum(axis=0)
    games = total + total.T
    out = pd.DataFrame({"cell": cells, "rating": rating, "rating_low": low, "rating_high": high,
                        "points": total.sum(axis=1), "games": games.sum(axis=1)})
    return out.sort_values(["rating", "cell"], ascending=[False, True], ignore_index=True)


def wilson_share(points: float, games: int) -> statistics.Estimate:
    """A share of points (ties as halves) with Wilson's 95% interval; the formula scipy's binomtest uses for
    whole counts, which a half point is not."""
    from scipy import stats

    if games <= 0:
        return statistics.Estimate(None)
    z = float(stats.norm.ppf(0.5 + statistics.CONFIDENCE / 2))
    share = points / games
    centre = (share + z * z / (2 * games)) / (1 + z * z / games)
    half = z / (1 + z * z / games) * math.sqrt(share * (1 - share) / games + z * z / (4 * games * games))
    return statistics.Estimate(share, max(0.0, centre - half), min(1.0, centre + half))


def win_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """One scorer's cells two by two: the row cell's share of points against the column cell, Wilson 95%."""
    rows = []
    for (a, b), group in frame.groupby(["cell_a", "cell_b"], sort=True):
        points, games = float(group.points_a.sum()), len(group)
        for cell, opponent, mine in ((a, b, points), (b, a, games - points)):
            rate = wilson_share(mine, games)
            rows.append({"cell": cell, "opponent": opponent, "games": games, "wins": int((group.points_a == (
                1.0 if cell == a else 0.0)).sum()), "ties": int((group.points_a == 0.5).sum()), "rate": rate.value,
                "rate_low": rate.low, "rate_high": rate.high})
    return pd.DataFrame(rows, columns=["cell", "opponent", "games", "wins", "ties", "rate", "rate_low", "rate_high"])


def _labels(cells) -> dict[str, str]:
    """Short names: the model, and only the parts (prompt, temperature, swept keys) the cells differ in."""
    split = {cell: cell.split(" ", 1) + [""] for cell in cells}
    labels = Labels(rest for _, rest, *_ in split.values())
    return {cell: labels(model, rest) for cell, (model, rest, *_) in split.items()}


def _percent(value, low, high) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    shown = f"{value:.0%}"
    return shown if low is None or high is None else f"{shown} [{low:.0%}, {high:.0%}]"


def _rating(value, low, high) -> str:
    return f"{value:.0f}" if math.isnan(low) or math.isnan(high) else f"{value:.0f} [{low:.0f}, {high:.0f}]"


def _scorer_text(rows: pd.DataFrame, found: pd.DataFrame) -> str:
    ranked = ranking(found)
    labels = _labels(ranked.cell)
    board = table([[rank, labels[r.cell], _rating(r.rating, r.rating_low, r.rating_high),
                    f"{r.points / r.games:.0%}" if r.games else "n/a", int(r.games)]
                   for rank, r in enumerate(ranked.itertuples(), 1)],
                  ["rank", "cell", "rating [95% CI]", "points won", "pairs judged"],
                  ["---:", "---", "---:", "---:", "---:"])
    rates = win_rates(found)
    order = list(ranked.cell)
    lookup = {(r.cell, r.opponent): r for r in rates.itertuples()}
    matrix = []
    for cell in order:
        line = [labels[cell]]
        for opponent in order:
            r = lookup.get((cell, opponent))
            line.append("—" if cell == opponent or r is None else
                        f"{_percent(r.rate, r.rate_low, r.rate_high)} ({r.games})")
        matrix.append(line)
    grid = table(matrix, ["row against column", *(labels[c] for c in order)], ["---"] + ["---:"] * len(order))
    ok = rows[rows.status == "ok"]
    picks = ok.better.value_counts()
    bias = (f"The judges picked the answer shown first in {picks.get('A', 0)}, the one shown second in "
            f"{picks.get('B', 0)} and a tie in {picks.get(TIE, 0)} of {counted(len(ok), 'verdict')}; both orders "
            f"agreed on {int(found.agreed.sum())} of {counted(len(found), 'pair')}.")
    left = [f"{n} {status}" for status, n in rows.status.value_counts().items() if status != "ok"]
    return "\n\n".join([board, "Win rates, row cell against column cell, with Wilson's 95% interval (pairs "
                        "judged in brackets):", grid, bias + (f" Verdicts not counted: {', '.join(left)} "
                                                              f"(see pairwise.csv)." if left else "")])


NOTE = ("Each pair of cells' answers to the same item and repeat was shown to each judge twice, in both orders; "
        "a cell wins the pair only when the judge picks it both times, otherwise the pair is a tie (position "
        "bias cancels out). Ties count half a win. Ratings: Bradley-Terry on the Elo scale (+400 is 10 to 1 "
        "odds), with each cell given one virtual tie against a reference cell; 95% intervals from a percentile "
        "bootstrap over items (each item's repeats, judges and pairs kept together).")


def _vote_cells(vote: dict) -> tuple[str, str, str]:
    """A person's vote as (one cell, the other, the winner: a cell or `tie`; both bad counts as a tie)."""
    from runner.calling.pairwise import cell_name

    a, b = cell_name(vote["a"]), cell_name(vote["b"])
    return a, b, a if vote["winner"] == "a" else b if vote["winner"] == "b" else TIE


def _with_people(outcome: pd.DataFrame, votes: list[dict]) -> tuple[int, float | None, float | None]:
    """One judge's pairs against people's votes on the same item and the same two cells: (votes matched, share
    agreeing, Cohen's kappa). Each vote is one rating; the judge's rating is its outcome for that item and
    pair (over several repeats, the mean of its points)."""
    judged: dict[tuple, list[float]] = {}
    for r in outcome.itertuples():
        judged.setdefault((r.item, frozenset((r.cell_a, r.cell_b))), []).append(
            r.points_a if (r.cell_a, r.cell_b) == tuple(sorted((r.cell_a, r.cell_b))) else 1 - r.points_a)
    mine, theirs = [], []
    for vote in votes:
        a, b, winner = _vote_cells(vote)
        points = judged.get((str(vote.get("item", "")), frozenset((a, b))))
        if not points or a == b:
            continue
        first = min(a, b)  # the pair's cells in a fixed order: the judge's points are the first cell's
        mean = float(np.mean(points))
        mine.append(first if mean > 0.5 else max(a, b) if mean < 0.5 else TIE)
        theirs.append(winner)
    if not mine:
        return 0, None, None
    agree = float(np.mean([x == y for x, y in zip(mine, theirs)]))
    return len(mine), agree, statistics.cohen_kappa(mine, theirs)


def trust(rows: pd.DataFrame, found: pd.DataFrame, votes: list[dict]) -> str | None:
    """How far to trust each pairwise judge: how often its two orders of a pair disagree (its position bias),
    how often it picked whichever answer came first in both orders, and, where people voted on the same
    items and cells in the arena, its agreement with them (Cohen's kappa)."""
    if found.empty:
        return None
    lines = []
    for judge, mine in found.groupby("judge", sort=True):
        pairs = len(mine)
        disagree = int((~mine.agreed.astype(bool)).sum())
        share = statistics.wilson(disagree, pairs)
        ok = rows[(rows.status == "ok") & (rows.judge == judge)]
        first = ok.pivot_table(index=OUTCOME_KEYS, columns="order", values="better", aggfunc="first")
        both_first = int(((first.get("AB") == "A") & (first.get("BA") == "A")).sum()) if {"AB", "BA"} <= set(
            first.columns) else 0
        matched, agree, kappa = _with_people(mine, votes)
        people = ("no votes on the same items" if not matched else
                  f"{matched} vote{'s' * (matched != 1)}: {agree:.0%} agree, kappa "
                  + ("n/a" if kappa is None else f"{kappa:.2f}"))
        lines.append([judge, pairs, _percent(share.value, share.low, share.high), f"{both_first / pairs:.0%}",
                      people])
    return table(lines, ["judge", "pairs judged both ways", "orders disagree [95% CI]",
                         "picked the first shown both times", "agreement with people (arena votes)"],
                 ["---", "---:", "---:", "---:", "---"]) + (
        "\n\n*Orders disagree*: the share of pairs where the judge's verdict changed when the two answers swapped "
        "places: its position bias (those pairs count as ties). *Agreement with people*: on the items and cells "
        "people also voted on in the arena, how often the judge's outcome is theirs, and Cohen's kappa (1: always "
        "agree; 0: no better than chance; a both-bad vote counts as a tie).")


def sections(rows: pd.DataFrame, votes: list[dict] = ()) -> list[tuple[str, str]]:
    """The report's "Pairwise" section: per pairwise scorer, the ranking and the win-rate matrix, and how far
    to trust each judge (`trust`, against the arena's `votes` where they judged the same)."""
    if rows.empty:
        return []
    found = outcomes(rows)
    parts = []
    for name, mine in rows.groupby("scorer", sort=True):
        these = found[found.scorer == name]
        title = f"**{name}** ({', '.join(sorted(set(mine.judge)))})"
        if these.empty:
            parts.append(f"{title}: no pair has both orders judged ({counted(len(mine), 'verdict')}: "
                         f"{', '.join(f'{n} {s}' for s, n in mine.status.value_counts().items())}; see pairwise.csv).")
            continue
        parts.append(f"{title}\n\n{_scorer_text(mine, these)}")
    judges = trust(rows, found, list(votes))
    parts = parts + [NOTE] + ([f"**How far to trust each judge**\n\n{judges}"] if judges else [])
    return [("Pairwise", "\n\n".join(parts))]


def errors(rows: pd.DataFrame) -> int:
    return int((rows.status == "error").sum()) if not rows.empty else 0
