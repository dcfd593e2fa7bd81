"""Scores in the comparison: the jobs' scores.jsonl read back, per-cell means with 95% intervals, the
leaderboard, paired differences between models, judges' agreement, what judging cost, and the quality gate.

A scorer's score for one answer is the mean over its judges (one row for deterministic scorers); the
answer passes when at least half its judges pass it. A cell's `overall` score averages, per item and
repeat, every scorer's score; it passes when every scorer passes. Rows that are not `ok` (a judge without
a key, an unparseable verdict) count in no mean: a cell with no ok row scores n/a, not 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from runner.analysis import comparisons, history, pareto, repeats, statistics
from runner.analysis.report import Markdown, cell_label, cost_text, labels_for, spent_text, table
from runner.analysis.summary import CELL_KEYS
from runner.folders import job_folders
from runner.money import dollars
from runner.scorers.rows import COLUMNS, NOT_APPLICABLE, read_scores
from runner.settings import StatsSettings
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


def add_to_summary(summary: pd.DataFrame, cells: pd.DataFrame, tested: Tested | None = None) -> pd.DataFrame:
    """summary.csv's score columns: `score`, `score_low`, `score_high`, `pass_rate`(_low, _high), `scored`
    for the overall score, and the same with `_<scorer>` for each scorer; with `tested`, after them the
    statistics of the comparison (`Tested.columns`)."""
    if cells.empty or summary.empty:
        return summary
    summary = _scores_to_summary(summary, cells)
    return tested.add_to(summary) if tested is not None else summary


def _scores_to_summary(summary: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
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


def item_means(answers: pd.DataFrame, unit_keys: list[str], item_keys: list[str]) -> dict:
    """{unit: {item: its mean score over its repeats (and whatever else the unit spans)}}."""
    found: dict = {}
    if answers.empty:
        return found
    means = answers.groupby(unit_keys + item_keys, dropna=False, sort=True).score.mean()
    for keys, mean in means.items():
        unit, item = keys[: len(unit_keys)], keys[len(unit_keys):]
        found.setdefault(unit if len(unit) > 1 else unit[0], {})["\x00".join(map(str, item))] = float(mean)
    return found


@dataclass
class Tested:
    """The comparison's tests, made once and shown everywhere (report, summary.csv): every pair of cells of
    a task (`cells`, one family), every pair of models over all their items (`models`, the leaderboard's
    family), and repeats per cell."""

    stats: StatsSettings
    cell_units: dict = field(default_factory=dict)  # {task: {cell (CELL_KEYS tuple): {item: mean}}}
    cells: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=comparisons.PAIR_COLUMNS))
    model_units: dict = field(default_factory=dict)  # {"": {(model, variant): {task+item: mean}}}
    models: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=comparisons.PAIR_COLUMNS))
    repeat_cells: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CELL_KEYS + repeats.CELL_COLUMNS))
    flaky: pd.DataFrame = field(default_factory=pd.DataFrame)

    COLUMNS = ["score_group", "tied_with_best", "pareto_front", *repeats.CELL_COLUMNS]

    def add_to(self, summary: pd.DataFrame) -> pd.DataFrame:
        """summary.csv's columns for these statistics, after the score columns: `score_group` (cells of a task
        that share a letter are not told apart by any adjusted test), `tied_with_best`, `pareto_front`, and
        for cells with repeats `k`, `pass_at_k`, `pass_all_k` (each with _low, _high), `repeats_disagree`
        (the share of items whose repeats disagree on pass/fail) and `unreliable`."""
        letters = comparisons.groups(self.cell_units, self.cells)
        tied = comparisons.tied_with_best(self.cell_units, self.cells)
        keys = [tuple(row) for row in summary[CELL_KEYS].itertuples(index=False, name=None)]
        summary = summary.copy()
        summary["score_group"] = [letters.get(key, "") for key in keys]
        summary["tied_with_best"] = [tied.get(key, False) for key in keys]
        summary["pareto_front"] = pareto.pareto_front(summary)
        return summary.merge(self.repeat_cells, on=CELL_KEYS, how="left")


def tested(scores: pd.DataFrame, cells: pd.DataFrame, stats: StatsSettings | None = None) -> Tested:
    """Every test the comparison shows, on the overall score: see Tested. `cells`: per_cell(scores)."""
    stats = stats or StatsSettings()
    answers = overall(scores)
    if answers.empty:
        return Tested(stats)
    by_task = {}
    for task, rows in answers.groupby("task", sort=True):
        by_task[task] = item_means(rows, CELL_KEYS, ["item"])
    found = Tested(stats, cell_units=by_task, cells=comparisons.compare(by_task, stats))
    found.model_units = {"": item_means(answers, ["model", "variant"], ["task", "item"])}
    found.models = comparisons.compare(found.model_units, stats)
    found.repeat_cells = repeats.per_cell(answers, cells[cells.scorer == OVERALL] if not cells.empty else cells)
    found.flaky = repeats.flaky_items(answers)
    return found


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


def leaderboard(scores: pd.DataFrame, summary: pd.DataFrame, found: Tested | None = None) -> str | None:
    """Models (and variants) ranked by their overall score over every item they answered; with `found`, each
    model's group: models that share a letter are not told apart by any test adjusted over every pair of
    models (a compact letter display)."""
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
        rows.append((mean.value, (model, variant), [labels(model, variant), len(group),
                                                    _interval(mean.value, mean.low, mean.high),
                                                    _interval(rate.value, rate.low, rate.high, True), dollars(cost)]))
    rows.sort(key=lambda row: -(row[0] if row[0] is not None else -1))
    if found is None:
        return table([[rank, *row] for rank, (_, _, row) in enumerate(rows, 1)],
                     ["rank", "model", "answers scored", "overall score [95% CI]", "pass rate [95% CI]",
                      "answer cost per call"], ["---:", "---", "---:", "---:", "---:", "---:"])
    letters = comparisons.letters([unit for _, unit, _ in rows], comparisons.separated_pairs(found.models))
    return table([[rank, row[0], letters[unit], *row[1:]] for rank, (_, unit, row) in enumerate(rows, 1)],
                 ["rank", "model", "group", "answers scored", "overall score [95% CI]", "pass rate [95% CI]",
                  "answer cost per call"], ["---:", "---", "---", "---:", "---:", "---:", "---:"]) + \
        "\n\n" + _family_note(found.models, found.stats, "models") + " *group*: models with a letter in common " \
        "are not told apart by any adjusted test: treat them as sharing a rank."


def _p(value) -> str:
    if _missing(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _family_note(pairs: pd.DataFrame, stats: StatsSettings, what: str) -> str:
    tested_pairs = int(pairs.p.notna().sum())
    how = statistics.ADJUSTMENTS[stats.adjust]
    return (f"Each pair of {what} is tested on the items both answered (each item's repeats averaged first) and "
            f"its p-value adjusted ({how}) over all {tested_pairs} pair{'s' * (tested_pairs != 1)}; a pair differs "
            f"when the adjusted p-value is below {stats.alpha:g}.")


def cell_names(keys: list[tuple]) -> dict[tuple, str]:
    """Short names for cells (CELL_KEYS tuples): the model, its differing variant parts, and the prompt and
    temperature where the cells differ in them."""
    labels = Labels(key[4] for key in keys)
    prompts, temperatures = len({k[2] for k in keys}) > 1, len({k[3] for k in keys}) > 1
    names = {}
    for key in keys:
        model, _, prompt, temperature, cell_variant = key
        extra = ([f"prompt {prompt}"] if prompts else []) + ([f"T={temperature:g}"] if temperatures else [])
        names[key] = labels(model, cell_variant) + (f" [{', '.join(extra)}]" if extra else "")
    return names


def differences(found: Tested) -> str | None:
    """Every two cells of a task, on the items both answered: the paired difference of their overall scores
    with its 95% interval, the test used, its p-value before and after adjustment over all pairs, and the
    verdict (a cell is better only when the adjusted p-value is below stats.alpha)."""
    pairs = found.cells
    if pairs.empty:
        return None
    names = cell_names(list(dict.fromkeys([*pairs.a, *pairs.b])))
    rows = []
    for r in pairs.itertuples():
        name_a, name_b = names[r.a], names[r.b]
        if _missing(r.p):
            verdict = "too few items to tell"
        elif r.separated:
            verdict = f"**{name_b if r.difference > 0 else name_a} is better**"
        else:
            verdict = "within noise"
        rows.append([f"{name_b} − {name_a}", r.group, r.items, _interval(r.difference, r.low, r.high),
                     r.test or "n/a", _p(r.p), _p(r.p_adjusted), Markdown(verdict)])
    shown = rows[:MAX_PAIRS]
    more = f"\n\n*{len(rows) - MAX_PAIRS} more pairs are not shown.*" if len(rows) > MAX_PAIRS else ""
    return table(shown, ["difference", "task", "items", "mean difference [95% CI]", "test", "p",
                         "adjusted p", "verdict"], ["---", "---", "---:", "---:", "---", "---:", "---:", "---"]) + more


DIFFERENCES_NOTE = (
    "*test*: McNemar's exact test when every item's outcome is pass or fail in both cells (repeats averaged), "
    "else a paired permutation test of the mean difference. *p*: the chance of a difference at least this large "
    "if the two cells were equally good; *adjusted p*: the same after accounting for every pair in this table, "
    "which is what the verdict uses. The 95% interval (bootstrapped over items) is for the pair on its own.")


def planning(found: Tested) -> str | None:
    """Per task: the smallest difference its items can detect, from the spread seen, and stats.detect's items."""
    lines = []
    family = int(found.cells.p.notna().sum())
    for task, pairs in found.cells.groupby("group", sort=True):
        items = int(pairs["items"].median())
        line = comparisons.planning_line(items, comparisons.pooled_sd(pairs), found.stats, max(family, 1),
                                         f" per cell in task {task}")
        if line:
            lines.append(line)
    if not lines:
        return None
    return "\n\n".join(lines) + (
        "\n\nA paired t-test's power (scipy), at the spread of per-item differences observed over the pairs: a "
        "true difference smaller than this is likely to show as *within noise*. More items narrow it (four times "
        "the items, half the difference); more repeats help only where an item's repeats disagree.")


def repeats_table(found: Tested, labels: Labels) -> str | None:
    """Per cell with repeats: pass rate, pass@k and pass^k with their intervals, items whose repeats disagree."""
    cells = found.repeat_cells
    if cells.empty:
        return None
    rows = [[labels(r.model, r.variant), r.task, r.prompt, f"{r.temperature:g}", r.k, r.items_with_k,
             _interval(r.pass_at_k, r.pass_at_k_low, r.pass_at_k_high, True),
             _interval(r.pass_all_k, r.pass_all_k_low, r.pass_all_k_high, True),
             "n/a" if _missing(r.repeats_disagree) else f"{r.repeats_disagree:.0%}",
             Markdown("**unreliable**") if r.unreliable else ""] for r in cells.itertuples()]
    text = table(rows, ["model", "task", "prompt", "T", "k", "items with k scored", "pass@k [95% CI]",
                        "pass^k [95% CI]", "items whose repeats disagree", "reliability"],
                 ["---"] * 4 + ["---:"] * 5 + ["---"])
    text += ("\n\n*pass@k*: the share of items at least one of whose k repeats passes (what retrying until it "
             "passes would get); *pass^k*: the share whose k repeats all pass (what you can count on every time). "
             "*unreliable*: pass^k's 95% interval lies below the cell's pass rate: it is right on average but "
             "often fails an item on one repeat that it passed on another.")
    flaky = found.flaky
    if not flaky.empty:
        rows = [[r.task, r.item, f"{r.cells_disagreeing} of {r.cells}", f"{r.disagree:.0%}"]
                for r in flaky.itertuples()]
        text += ("\n\nThe items whose repeats disagree most (*two repeats disagree*: how often two repeats of the "
                 "item, in the same cell, pass one and fail the other):\n\n"
                 + table(rows, ["task", "item", "cells where repeats disagree", "two repeats disagree"],
                         ["---", "---", "---:", "---:"]))
    return text


def quality_for_money(summary: pd.DataFrame) -> str | None:
    """The cells on each task's Pareto front and the cheapest cell tied with the best."""
    if summary.empty or "pareto_front" not in summary or not summary.pareto_front.any():
        return None
    front = summary[summary.pareto_front.astype(bool)].sort_values(["task", "cost_per_call_usd"])
    names = cell_names([tuple(k) for k in summary[CELL_KEYS].itertuples(index=False, name=None)])
    rows = [[names[tuple(getattr(r, k) for k in CELL_KEYS)], r.task, _interval(r.score, r.score_low, r.score_high),
             dollars(r.cost_per_call_usd), r.score_group, "yes" if r.tied_with_best else ""]
            for r in front.itertuples()]
    text = table(rows, ["cell", "task", "overall score [95% CI]", "cost per call", "group", "tied with the best"],
                 ["---", "---", "---:", "---:", "---", "---"])
    lines = [pareto.cheapest_line(found, lambda r: names[tuple(r[k] for k in CELL_KEYS)])
             for found in pareto.cheapest_tied(summary)]
    if lines:
        text += "\n\n" + "\n".join(f"- {line}." for line in lines)
    unpriced = int((summary.score.notna() & summary.cost_per_call_usd.isna()).sum())
    return text + ("\n\nThe Pareto front: the cells no other cell of the same task beats on both score and cost "
                   "per call (ringed in quality_vs_cost.png). *Tied with the best*: no adjusted test separates it "
                   "from the task's best cell." + (f" {unpriced} scored cell(s) with no known price are on no front."
                                                  if unpriced else ""))


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
             answering: pd.DataFrame, failures: list[str], fail_under,
             found: Tested | None = None) -> list[tuple[str, str]]:
    """The report's sections on scores, in order. `found`: the comparison's tests (made here when not given)."""
    if scores.empty and judging.empty:
        return []
    found = found if found is not None else tested(scores, cells)
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
    board = leaderboard(scores, summary, found)
    if board:
        parts.append(("Leaderboard", board))
    diff = differences(found)
    if diff:
        parts.append(("Differences between cells", diff + "\n\n" + _family_note(found.cells, found.stats, "cells")
                      + " " + DIFFERENCES_NOTE))
    enough = planning(found)
    if enough:
        parts.append(("How many items are enough", enough))
    repeated = repeats_table(found, labels_for(summary))
    if repeated:
        parts.append(("Repeats", repeated))
    money = quality_for_money(summary)
    if money:
        parts.append(("Quality for the money", money))
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


def verdict(change: statistics.Estimate, separated: bool | None = None) -> str:
    """What a score change between two runs means. With `separated` (its test, adjusted over every change
    compared at once, is below stats.alpha): a regression or an improvement only when separated. Without: only
    when its 95% interval excludes 0. Otherwise within noise (or too few items to tell). The report and
    runner.compare both say it with this."""
    if change.value is None or change.low is None:
        return "too few items to tell"
    if separated if separated is not None else change.excludes_zero:
        return "regression" if change.value < 0 else "improvement"
    return "within noise"


def changes(before: pd.DataFrame, now: pd.DataFrame, stats: StatsSettings | None = None) -> pd.DataFrame:
    """Per cell and scorer (`overall` first) scored in both runs: the mean score before and now over the items
    both scored, the change (now minus before) paired over those items with its 95% interval, the spread of
    the per-item changes, the test (McNemar's or a permutation test) with its p-value before and after
    adjustment over every row, and its verdict (from the adjusted test)."""
    stats = stats or StatsSettings()
    columns = CELL_KEYS + ["scorer", "items", "before", "now", "change", "change_low", "change_high", "sd", "test",
                           "p", "p_adjusted", "verdict"]
    old, new = per_answer(before), per_answer(now)
    rows, estimates = [], []
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
            both = sorted(set(a) & set(b))
            test = statistics.paired_test(a, b)
            rows.append({**cell, "scorer": name, "items": paired, "before": float(np.mean([a[i] for i in both])),
                         "now": float(np.mean([b[i] for i in both])), "change": change.value,
                         "change_low": change.low, "change_high": change.high,
                         "sd": float(np.std([b[i] - a[i] for i in both], ddof=1)) if paired > 1 else None,
                         "test": test.name, "p": test.p})
            estimates.append(change)
    found = pd.DataFrame(rows, columns=columns)
    if not found.empty:
        found["p_adjusted"] = statistics.adjusted(found.p.astype(float), stats.adjust)
        found["verdict"] = [verdict(change, None if math.isnan(p) else bool(p < stats.alpha))
                            for change, p in zip(estimates, found.p_adjusted)]
    return found


def since(before: pd.DataFrame, now: pd.DataFrame, what_before: str, stats: StatsSettings | None = None) -> str | None:
    """Each cell's scores (overall, then per scorer) against an earlier run's, as markdown: `changes()`, and
    the smallest change the items in common can detect."""
    stats = stats or StatsSettings()
    found = changes(before, now, stats)
    if found.empty:
        return None
    labels = labels_for(found)
    rows = [[labels(r.model, r.variant), r.task, r.prompt, f"{r.temperature:g}", r.scorer, r.items,
             f"{r.before:.2f} → {r.now:.2f}", _interval(r.change, r.change_low, r.change_high), r.test or "n/a",
             _p(r.p), _p(r.p_adjusted),
             Markdown(f"**{r.verdict}**" if r.verdict in ("regression", "improvement") else r.verdict)]
            for r in found.itertuples()]
    tested_rows = int(found.p.notna().sum())
    text = (f"Scores, this run minus {what_before}, paired over the items both scored (each item's repeats "
            "averaged; 95% interval bootstrapped over items). Each change is tested (McNemar's exact test for "
            "pass/fail, else a paired permutation test) and its p-value adjusted "
            f"({statistics.ADJUSTMENTS[stats.adjust]}) over all {tested_rows} row{'s' * (tested_rows != 1)}: a "
            f"regression or an improvement only when the adjusted p-value is below {stats.alpha:g}, otherwise "
            "within noise.\n\n"
            + table(rows, ["model", "task", "prompt", "T", "scorer", "items", "mean score", "change [95% CI]",
                           "test", "p", "adjusted p", "verdict"]))
    overall_rows = found[found.scorer == OVERALL]
    sd = comparisons.pooled_sd(overall_rows)
    if len(overall_rows) and sd:
        line = comparisons.planning_line(int(overall_rows["items"].median()), sd, stats, max(tested_rows, 1),
                                         " in common", what="change")
        if line:
            text += "\n\n" + line
    return text


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

