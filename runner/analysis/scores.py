"""Scores in the comparison: the jobs' scores.jsonl read back, per-cell means with 95% intervals, the
leaderboard, paired differences between models, judges' agreement, what judging cost, and the quality gate.

A scorer's score for one answer is the mean over its judges (one row for deterministic scorers); the
answer passes when at least half its judges pass it. A cell's `overall` score averages, per item and
repeat, every scorer's score; it passes when every scorer passes. Rows that are not `ok` (a judge without
a key, an unparseable verdict) count in no mean: a cell with no ok row scores n/a, not 0.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from runner.analysis import history, statistics
from runner.analysis.report import Markdown, cell_label, cost_text, labels_for, spent_text, table
from runner.analysis.summary import CELL_KEYS
from runner.folders import job_folders
from runner.money import dollars
from runner.scorers.rows import COLUMNS, NOT_APPLICABLE, read_scores
from runner.variant import Labels

OVERALL = "overall"
ANSWER_KEYS = CELL_KEYS + ["item", "repeat"]
MAX_PAIRS = 40  # paired differences shown in the report; a big sweep would make hundreds


def read(folder: Path, skipped: list[str] | None = None) -> pd.DataFrame:
    """The score rows of a run's or sweep's jobs (their scores.jsonl files)."""
    return typed(pd.DataFrame([row for job in job_folders(folder) for row in read_scores(job, skipped)],
                              columns=COLUMNS))


def recorded(path: Path, run: history.Run) -> pd.DataFrame:
    """A run's score rows from the history database; for a run recorded before scores reached it, from its
    folder's scores.jsonl files while the folder is there."""
    found = history.scores(path, run)
    if found.empty and Path(run.folder).is_dir():
        return read(Path(run.folder))
    return typed(found)


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """Score rows with scores.jsonl's columns, as read from the files or from the history, typed alike."""
    df = df.reindex(columns=COLUMNS)
    for column in ("temperature", "score", "cost_usd", "repeat", "judge_temperature", "judge_max_tokens"):
        df[column] = pd.to_numeric(df[column], errors="coerce")
    for column in ("variant", "step", "judge", "reason", "item", "status", "judge_model_id"):
        df[column] = df[column].fillna("").astype(str)
    df["pass"] = df["pass"].map(_passed)
    return df


def _passed(value) -> bool:
    """JSON's true, SQLite's 1, or a CSV's "True"."""
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return value is not None and not _missing(value) and bool(value)


def per_answer(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, item, repeat and scorer (steps and judges averaged), and the `overall` rows."""
    ok = scores[scores.status == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=ANSWER_KEYS + ["scorer", "score", "pass"])
    # per step: the judges' mean; pass when at least half of them pass
    steps = ok.groupby(ANSWER_KEYS + ["step", "scorer"], dropna=False).agg(score=("score", "mean"),
                                                                            votes=("pass", "mean")).reset_index()
    steps["pass"] = steps.votes >= 0.5
    answers = steps.groupby(ANSWER_KEYS + ["scorer"], dropna=False).agg(score=("score", "mean"),
                                                                         passed=("pass", "all")).reset_index()
    combined = answers.groupby(ANSWER_KEYS, dropna=False).agg(score=("score", "mean"),
                                                                passed=("passed", "all")).reset_index()
    combined["scorer"] = OVERALL
    return pd.concat([answers, combined], ignore_index=True).rename(columns={"passed": "pass"})


def overall(scores: pd.DataFrame) -> pd.DataFrame:
    """Each answer's overall score (the mean over its scorers): `per_answer`'s `overall` rows."""
    answers = per_answer(scores)
    return answers[answers.scorer == OVERALL]


def per_cell(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and scorer (and `overall`): scored answers, mean score with its 95% interval
    (clustered by item), pass rate with Wilson's interval, rows in error or skipped."""
    columns = CELL_KEYS + ["scorer", "scored", "score", "score_low", "score_high", "pass_rate", "pass_rate_low",
                           "pass_rate_high", "errors", "skipped"]
    if scores.empty:
        return pd.DataFrame(columns=columns)
    answers = per_answer(scores)
    rows = []
    for keys, group in scores.groupby(CELL_KEYS, dropna=False, sort=True):
        cell = dict(zip(CELL_KEYS, keys))
        mine = in_cell(answers, cell)
        names = list(dict.fromkeys(group.scorer)) + [OVERALL]
        for name in names:
            these = mine[mine.scorer == name]
            mean = statistics.clustered_mean(these.score, these.item)
            rate = statistics.wilson(int(these["pass"].sum()), len(these))
            raw = group if name == OVERALL else group[group.scorer == name]
            rows.append({**cell, "scorer": name, "scored": len(these), "score": mean.value,
                         "score_low": mean.low, "score_high": mean.high, "pass_rate": rate.value,
                         "pass_rate_low": rate.low, "pass_rate_high": rate.high,
                         "errors": int((raw.status == "error").sum()), "skipped": int((raw.status == "skipped").sum())})
    return pd.DataFrame(rows, columns=columns)


def add_to_summary(summary: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """summary.csv's score columns: `score`, `score_low`, `score_high`, `pass_rate`(_low, _high), `scored`
    for the overall score, and the same with `_<scorer>` for each scorer."""
    if cells.empty or summary.empty:
        return summary
    measures = ["scored", "score", "score_low", "score_high", "pass_rate", "pass_rate_low", "pass_rate_high"]
    wide = None
    for name, group in cells.groupby("scorer", sort=False):
        part = group[CELL_KEYS + measures].rename(
            columns={m: (m if name == OVERALL else _scorer_column(m, name)) for m in measures})
        wide = part if wide is None else wide.merge(part, on=CELL_KEYS, how="outer")
    order = [c for c in wide.columns if c in measures] + [c for c in wide.columns if c not in measures + CELL_KEYS]
    return summary.merge(wide[CELL_KEYS + order], on=CELL_KEYS, how="left")


def _scorer_column(measure: str, name: str) -> str:
    for suffix in ("_low", "_high"):
        if measure.endswith(suffix):
            return f"{measure[: -len(suffix)]}_{name}{suffix}"
    return f"{measure}_{name}"


def gate(cells: pd.DataFrame, fail_under) -> list[str]:
    """The cells below `fail_under` (a number: the overall score; a mapping: per scorer), one line each."""
    if fail_under is None or cells.empty:
        return []
    limits = dict(fail_under) if isinstance(fail_under, dict) else {OVERALL: float(fail_under)}
    labels = labels_for(cells)
    failures = []
    for r in cells.itertuples():
        limit = limits.get(r.scorer)
        if limit is None or (not _missing(r.score) and r.score >= float(limit)):
            continue
        if _missing(r.score):  # a gate that cannot be checked must not pass a CI job
            failures.append(f"{cell_label(r, labels)} (task {r.task}, prompt {r.prompt}, T={r.temperature:g}): "
                            f"{r.scorer} has no score (n/a: {r.skipped} skipped, {r.errors} in error)")
            continue
        failures.append(f"{cell_label(r, labels)} (task {r.task}, prompt {r.prompt}, T={r.temperature:g}): "
                        f"{r.scorer} {r.score:.3f} < {float(limit):g}")
    return failures


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _interval(value, low, high, percent=False) -> str:
    if _missing(value):
        return "n/a"
    show = (lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:.2f}")
    if _missing(low) or _missing(high):
        return show(value)
    return f"{show(value)} [{show(low)}, {show(high)}]"


def score_table(cells: pd.DataFrame) -> str:
    labels = labels_for(cells)
    rows = [[cell_label(r, labels), r.task, r.prompt, f"{r.temperature:g}", r.scorer, r.scored,
             _interval(r.score, r.score_low, r.score_high), _interval(r.pass_rate, r.pass_rate_low,
                                                                     r.pass_rate_high, True),
             r.errors or "", r.skipped or ""] for r in cells.itertuples()]
    return table(rows, ["model", "task", "prompt", "T", "scorer", "scored", "mean score [95% CI]",
                        "pass rate [95% CI]", "errors", "skipped"], ["---"] * 5 + ["---:"] * 5)


def not_applicable(scores: pd.DataFrame) -> list[str]:
    """A line per task default scorer and reason it did not apply (an item without the field it reads)."""
    rows = scores[(scores.status == "skipped") & scores.reason.str.startswith(NOT_APPLICABLE)]
    counts = rows.groupby(["scorer", "reason"], sort=True).size()
    return [f"{scorer}: n/a for {n} answer{'s' * (n != 1)}: {reason[len(NOT_APPLICABLE):]}"
            for (scorer, reason), n in counts.items()]


def leaderboard(scores: pd.DataFrame, summary: pd.DataFrame) -> str | None:
    """Models (and variants) ranked by their overall score over every item they answered."""
    answers = overall(scores)
    if answers.empty:
        return None
    labels = labels_for(summary)
    rows = []
    for (model, variant), group in answers.groupby(["model", "variant"], sort=False):
        mean = statistics.clustered_mean(group.score, group.task + "\x00" + group.item)
        rate = statistics.wilson(int(group["pass"].sum()), len(group))
        mine = summary[(summary.model == model) & (summary.variant == variant)]
        cost = mine.cost_usd.sum() / mine.ok.sum() if len(mine) and mine.ok.sum() and mine.cost_usd.notna().all() \
            else None
        rows.append((mean.value, [labels(model, variant), len(group), _interval(mean.value, mean.low, mean.high),
                                  _interval(rate.value, rate.low, rate.high, True), dollars(cost)]))
    rows.sort(key=lambda pair: -(pair[0] if pair[0] is not None else -1))
    return table([[rank, *row] for rank, (_, row) in enumerate(rows, 1)],
                 ["rank", "model", "answers scored", "overall score [95% CI]", "pass rate [95% CI]",
                  "answer cost per call"], ["---:", "---", "---:", "---:", "---:", "---:"])


def differences(scores: pd.DataFrame) -> str | None:
    """Two cells of the same task, prompt and temperature, on the items both answered: the paired
    difference of their overall scores, and whether its 95% interval excludes 0."""
    answers = overall(scores)
    if answers.empty:
        return None
    labels = labels_for(answers)
    rows = []
    for (task, prompt, temperature), group in answers.groupby(["task", "prompt", "temperature"], sort=True):
        cells = list(group.groupby(["model", "variant"], sort=True))
        for i, ((model_a, variant_a), a) in enumerate(cells):
            for (model_b, variant_b), b in cells[i + 1:]:
                diff, paired = statistics.paired_difference(a.groupby("item").score.mean().to_dict(),
                                                           b.groupby("item").score.mean().to_dict())
                if diff.value is None:
                    continue
                name_a, name_b = labels(model_a, variant_a), labels(model_b, variant_b)
                if diff.excludes_zero:
                    verdict = f"**{name_b if diff.value > 0 else name_a} is better** (the interval excludes 0)"
                elif diff.low is None:
                    verdict = "too few items to tell"
                else:
                    verdict = "within noise (the interval includes 0)"
                rows.append([f"{name_b} − {name_a}", task, prompt, f"{temperature:g}", paired,
                             _interval(diff.value, diff.low, diff.high), Markdown(verdict)])
    if not rows:
        return None
    shown = rows[:MAX_PAIRS]
    more = f"\n\n*{len(rows) - MAX_PAIRS} more pairs are not shown.*" if len(rows) > MAX_PAIRS else ""
    return table(shown, ["difference", "task", "prompt", "T", "items", "mean difference [95% CI]", "verdict"]) + more


def agreement(scores: pd.DataFrame) -> str | None:
    """For scorers with several judges: the share of answers all judges agree on (pass/fail), Fleiss' kappa."""
    ok = scores[(scores.status == "ok") & (scores.judge != "")]
    rows = []
    for name, group in ok.groupby("scorer", sort=True):
        judges = sorted(group.judge.unique())
        if len(judges) < 2:
            continue
        votes = group.pivot_table(index=ANSWER_KEYS + ["step"], columns="judge", values="pass", aggfunc="first")
        votes = votes.dropna()
        if votes.empty:
            continue
        passes = votes.astype(bool).sum(axis=1).to_numpy()
        agree = float(np.mean((passes == 0) | (passes == len(judges))))
        kappa = statistics.fleiss_kappa(np.column_stack([passes, len(judges) - passes]))
        rows.append([name, ", ".join(judges), len(votes), f"{agree:.0%}", "n/a" if kappa is None else f"{kappa:.2f}"])
    if not rows:
        return None
    return table(rows, ["scorer", "judges", "answers all judged", "agree on pass/fail", "Fleiss' kappa"])


def judging_cost(judging: pd.DataFrame, answering: pd.DataFrame) -> str | None:
    """What the judges' calls cost, apart from what answering cost."""
    if judging.empty:
        return None
    rows = []
    # a judge as it was called: its model id and settings (a re-score at other judge settings is another row)
    for (model, model_id, temperature, max_tokens), group in judging.groupby(
            ["model", "model_id", "temperature", "max_tokens"], sort=True, dropna=False):
        rows.append([model, model_id, _setting(temperature), _setting(max_tokens), len(group),
                     int((group.status == "ok").sum()), int((group.status == "error").sum()),
                     int((group.status == "skipped").sum()), int(group.cache_hit.sum()), cost_text(group),
                     spent_text(group)])
    text = table(rows, ["judge", "model id", "temperature", "max_tokens", "calls", "ok", "error", "skipped",
                        "cache hits", "cost at list", "spent"], ["---"] * 2 + ["---:"] * 9)
    unpriced = judging[(judging.status == "ok") & judging.cost_usd.isna()]
    note = (" *n/a*: a judge with no known price costs unknown money, not $0 (set `price` in its model config "
            "to count it).") if not unpriced.empty else ""
    return (text + f"\n\nAnswering at list price: {cost_text(answering)}; spent: {spent_text(answering)}. "
            f"Judging at list price: {cost_text(judging)}; spent: {spent_text(judging)}.{note}")


def _setting(value) -> str:
    return "" if _missing(value) else f"{value:g}"


def judges_line(scores: pd.DataFrame) -> str | None:
    """Who judged, as they were called in every cell: `gpt (gpt-4.1-mini, temperature 0, max_tokens 1024)`."""
    judged = scores[scores.judge != ""].drop_duplicates(["judge", "judge_model_id", "judge_temperature",
                                                         "judge_max_tokens"])
    seen = [f"{r.judge} ({r.judge_model_id}, temperature {_setting(r.judge_temperature)}, max_tokens "
            f"{_setting(r.judge_max_tokens)})" for r in judged.itertuples() if r.judge_model_id]
    return ("Judged by " + "; ".join(sorted(seen)) + ": each judge is its own model config, called alike in every "
            "cell.") if seen else None


def answer_notes(scores: pd.DataFrame) -> dict[tuple, str]:
    """Each scored answer's scores and the judges' reasons, for the report's answers side by side:
    {(model, variant, prompt, temperature, task, item, repeat): text}."""
    notes: dict[tuple, list[str]] = {}
    for r in scores.rename(columns={"pass": "passed"}).itertuples():
        key = (r.model, r.variant, r.prompt, r.temperature, r.task, r.item, r.repeat)
        who = f"{r.scorer}" + (f" ({r.judge})" if r.judge else "") + (f" @{r.step}" if r.step else "")
        if r.status == "ok":
            mark = "pass" if r.passed else "fail"
            text = f"{who}: {r.score:.2f} {mark}" + (f": {r.reason}" if r.judge and r.reason else "")
        else:
            text = f"{who}: {r.status}: {r.reason}"
        notes.setdefault(key, []).append(" ".join(text.split())[:300])
    return {key: "\n".join(lines) for key, lines in notes.items()}


def sections(scores: pd.DataFrame, cells: pd.DataFrame, summary: pd.DataFrame, judging: pd.DataFrame,
             answering: pd.DataFrame, failures: list[str], fail_under) -> list[tuple[str, str]]:
    """The report's sections on scores, in order."""
    if scores.empty and judging.empty:
        return []
    parts = []
    if not cells.empty:
        text = score_table(cells) + (
            "\n\nMean score from 0 to 1 with its 95% interval, bootstrapped (BCa) over items with each item's "
            "repeats kept together; pass rate with Wilson's 95% interval. *overall*: every scorer's score "
            "averaged per answer; it passes when every scorer passes. *n/a*: no answer of the cell could be "
            "scored (errors and skipped rows count in no mean).")
        judges = judges_line(scores)
        if judges:
            text += f"\n\n{judges}"
        missing = not_applicable(scores)
        if missing:
            text += "\n\n" + "\n".join(f"- {line}" for line in missing)
        if fail_under is not None:
            verdict = ("**failed**: " + "; ".join(failures)) if failures else "passed: no cell is below it"
            text += f"\n\nQuality gate `fail_under={fail_under}`: {verdict}."
        parts.append(("Scores", text))
    board = leaderboard(scores, summary)
    if board:
        parts.append(("Leaderboard", board))
    diff = differences(scores)
    if diff:
        parts.append(("Differences between models", diff + "\n\nPaired over the items both answered (each item's "
                      "repeats averaged first), 95% interval bootstrapped over items."))
    agree = agreement(scores)
    if agree:
        parts.append(("Agreement between judges", agree))
    cost = judging_cost(judging, answering)
    if cost:
        parts.append(("What judging cost", cost))
    return parts


def in_cell(frame: pd.DataFrame, cell: dict) -> pd.DataFrame:
    """The rows of one cell (a key missing on both sides counts as the same)."""
    for key, value in cell.items():
        frame = frame[(frame[key] == value) | (frame[key].isna() & pd.isna(value))]
    return frame


def verdict(change: statistics.Estimate) -> str:
    """What a score change between two runs means: a regression or an improvement only when its 95% interval
    excludes 0; otherwise within noise (or too few items for an interval). The report and runner.compare
    both say it with this."""
    if change.excludes_zero:
        return "regression" if change.value < 0 else "improvement"
    return "within noise" if change.low is not None else "too few items to tell"


def changes(before: pd.DataFrame, now: pd.DataFrame) -> pd.DataFrame:
    """Per cell and scorer (`overall` first) scored in both runs: the mean score before and now over the items
    both scored, the change (now minus before) paired over those items with its 95% interval, and its verdict."""
    columns = CELL_KEYS + ["scorer", "items", "before", "now", "change", "change_low", "change_high", "verdict"]
    old, new = per_answer(before), per_answer(now)
    rows = []
    for keys, mine in new.groupby(CELL_KEYS, dropna=False, sort=True):
        cell = dict(zip(CELL_KEYS, keys))
        theirs = in_cell(old, cell)
        names = [OVERALL] + [n for n in dict.fromkeys(mine.scorer) if n != OVERALL]
        for name in names:
            a = theirs[theirs.scorer == name].groupby("item").score.mean().to_dict()
            b = mine[mine.scorer == name].groupby("item").score.mean().to_dict()
            change, paired = statistics.paired_difference(a, b)
            if change.value is None:
                continue
            both = set(a) & set(b)
            rows.append({**cell, "scorer": name, "items": paired, "before": float(np.mean([a[i] for i in both])),
                         "now": float(np.mean([b[i] for i in both])), "change": change.value,
                         "change_low": change.low, "change_high": change.high, "verdict": verdict(change)})
    return pd.DataFrame(rows, columns=columns)


def since(before: pd.DataFrame, now: pd.DataFrame, what_before: str) -> str | None:
    """Each cell's scores (overall, then per scorer) against an earlier run's, as markdown: `changes()`."""
    found = changes(before, now)
    if found.empty:
        return None
    labels = labels_for(found)
    rows = [[labels(r.model, r.variant), r.task, r.prompt, f"{r.temperature:g}", r.scorer, r.items,
             f"{r.before:.2f} → {r.now:.2f}", _interval(r.change, r.change_low, r.change_high),
             Markdown(f"**{r.verdict}**" if r.verdict in ("regression", "improvement") else r.verdict)]
            for r in found.itertuples()]
    return (f"Scores, this run minus {what_before}, paired over the items both scored (each item's repeats "
            "averaged; 95% interval bootstrapped over items): a regression or an improvement only when the "
            "interval excludes 0, otherwise within noise.\n\n"
            + table(rows, ["model", "task", "prompt", "T", "scorer", "items", "mean score", "change [95% CI]",
                           "verdict"]))


def between(before: pd.DataFrame, now: pd.DataFrame) -> str:
    """Two runs' scores compared for runner.compare and the viewer: `since()`, or why there is nothing to
    compare."""
    if before.empty and now.empty:
        return "Neither run was scored."
    if before.empty or now.empty:
        return f"Only {'the newer' if before.empty else 'the earlier'} run was scored: nothing to compare."
    return since(before, now, "the earlier run") or "No cell and scorer was scored in both runs."


def trend(runs: list[tuple[str, pd.DataFrame]]) -> str | None:
    """Each cell's overall mean score in each of these runs ((label, score rows), oldest first), as a table;
    None unless at least two of them were scored."""
    means = []
    for label, rows in runs:
        answers = overall(rows)
        if not answers.empty:
            means.append((label, answers.groupby(CELL_KEYS, dropna=False).score.mean()))
    if len(means) < 2:
        return None
    cells = sorted({cell for _, mean in means for cell in mean.index})
    labels = Labels(cell[4] for cell in cells)
    rows = []
    for cell in cells:
        model, task, prompt, temperature, cell_variant = cell
        rows.append([labels(model, cell_variant), task, prompt, f"{temperature:g}",
                     *(f"{mean[cell]:.2f}" if cell in mean.index and not _missing(mean[cell]) else "–"
                       for _, mean in means)])
    return ("Each cell's overall mean score per run of this sweep, oldest first (whether a change is more than "
            "noise: *Scores since the previous run*).\n\n"
            + table(rows, ["model", "task", "prompt", "T", *(label for label, _ in means)],
                    ["---"] * 4 + ["---:"] * len(means)))

