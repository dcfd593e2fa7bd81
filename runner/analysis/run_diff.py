"""What changed between two runs of a sweep: per-model cost, latency and tokens, answers, errors.

Rendered as markdown: the report's "Since the previous run" section, and what `python -m runner.compare`
prints (pipe tables read fine in a terminal too).
"""
from __future__ import annotations

import math

import pandas as pd

from runner.analysis.report import Markdown, cell_text, table
from runner.analysis.summary import CALL_KEYS, CELL_KEYS, final_answers, normalized, per_model, values
from runner.money import dollars
from runner.variant import Labels

EXAMPLES = 10  # changed answers and errors listed in full; the rest are counted
SHORT = 160


COMPARED = CALL_KEYS + ["status", "error", "response"]  # the columns this module reads


def _keyed(df: pd.DataFrame) -> list[tuple[tuple, dict]]:
    """Each call's key (its CALL_KEYS, "" where missing) and its row, as a dict of the compared columns only:
    every column of thousands of calls, made into dicts six times over, took most of the comparison's time
    once a run had a previous one (0.4 to 0.7 s at 2,000 calls)."""
    columns = [c for c in COMPARED if c in df.columns]
    rows = (dict(zip(columns, row)) for row in zip(*(df[c].astype(object).tolist() for c in columns)))
    return list(zip(_keys(df, CALL_KEYS), rows))


def _keys(df: pd.DataFrame, names: list[str]):
    """Each row's values of these columns as a tuple, "" where missing."""
    return zip(*(values(df[name], "") for name in names))


def _delta(old, new, fmt) -> str:
    """'old → new (+12%)'; a side that is missing shows as –."""
    def show(v):
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt(v)

    if show(old) == show(new):
        return show(new)  # unchanged: one value keeps the table quiet
    text = f"{show(old)} → {show(new)}"
    if show(old) != "–" and show(new) != "–" and old:
        text += f" ({(new - old) / old:+.0%})"
    return text


def _seconds(v) -> str:
    return f"{v:.2f} s"


def _count(v) -> str:
    return f"{v:.0f}"


def _labels(old: pd.DataFrame, new: pd.DataFrame) -> Labels:
    """Cell names over both runs: the model and the parts of its variant that not every cell shares."""
    return Labels(set(old.variant) | set(new.variant))


def _by_label(df: pd.DataFrame, labels: Labels) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame()
    rows = per_model(df)
    rows.index = [labels(m, v) for m, v in zip(rows.model, rows.variant)]
    return rows


def models_table(old: pd.DataFrame, new: pd.DataFrame, labels: Labels | None = None) -> str:
    labels = labels or _labels(old, new)
    before, after = _by_label(old, labels), _by_label(new, labels)
    rows = []
    for model in sorted(set(before.index) | set(after.index)):
        b = before.loc[model] if model in before.index else None
        a = after.loc[model] if model in after.index else None

        def pair(column, fmt, b=b, a=a):
            return _delta(None if b is None else b[column], None if a is None else a[column], fmt)

        cached = " (cached)" if a is not None and a["timing_from_cache"] else ""  # the original call's timing
        rows.append([model, pair("calls", _count), pair("failed", _count), pair("cost_per_call_usd", dollars),
                     pair("latency_p50_s", _seconds) + cached, pair("ttft_p50_s", _seconds) + cached,
                     pair("input_tokens_per_call", _count), pair("output_tokens_per_call", _count)])
    return table(rows, ["model", "calls", "failed", "cost per call", "latency p50", "ttft p50",
                        "tokens in per call", "tokens out per call"])


def _where(row: dict, labels: Labels) -> list:
    return [labels(row["model"], row["variant"]), row["prompt"], f"{row['temperature']:g}", row["item"],
            int(row["repeat"])]


def answers_changed(old: pd.DataFrame, new: pd.DataFrame, labels: Labels | None = None) -> tuple[str, int]:
    """Answers (ok in both runs) that differ beyond case and whitespace."""
    labels = labels or _labels(old, new)
    before = dict(_keyed(final_answers(old[old.status == "ok"])))
    changed, counts = [], {}
    for key, row in _keyed(final_answers(new[new.status == "ok"]).sort_values(CALL_KEYS)):
        was = before.get(key)
        if was is None:
            continue
        name = labels(row["model"], row["variant"])
        total, n = counts.get(name, (0, 0))
        differs = normalized(was["response"]) != normalized(row["response"])
        counts[name] = (total + 1, n + differs)
        if differs:
            changed.append((row, was))
    if not counts:
        return "", 0
    changed_per_model = (f"{model} {n} of {total} changed" for model, (total, n) in sorted(counts.items()))
    lines = ["Answers: " + "; ".join(changed_per_model) + "."]
    if changed:
        rows = [[*_where(row, labels), cell_text(was["response"], SHORT), cell_text(row["response"], SHORT)]
                for row, was in changed[:EXAMPLES]]
        lines.append(table(rows, ["model", "prompt", "T", "item", "repeat", "before", "now"]))
        if len(changed) > EXAMPLES:
            lines.append(f"…and {len(changed) - EXAMPLES} more (results.csv of both runs has them all).")
    return "\n\n".join(lines), len(changed)


def errors_changed(old: pd.DataFrame, new: pd.DataFrame, labels: Labels | None = None) -> tuple[str, int, int]:
    """Calls that fail now but did not before (new), and the reverse (fixed)."""
    labels = labels or _labels(old, new)
    before, after = dict(_keyed(old)), dict(_keyed(new))
    new_errors = [r for k, r in after.items()
                  if r["status"] != "ok" and (k not in before or before[k]["status"] == "ok")]
    fixed = [(r, before[k]) for k, r in after.items()
             if r["status"] == "ok" and k in before and before[k]["status"] != "ok"]
    parts = []
    if new_errors:
        rows = [[*_where(r, labels), Markdown(r["status"]), cell_text(r["error"], 200)] for r in new_errors[:EXAMPLES]]
        parts += [f"New errors: {len(new_errors)}.",
                  table(rows, ["model", "prompt", "T", "item", "repeat", "status", "reason"])]
    if fixed:
        rows = [[*_where(r, labels), cell_text(was["error"], 200)] for r, was in fixed[:EXAMPLES]]
        parts += [f"Fixed since then: {len(fixed)}.",
                  table(rows, ["model", "prompt", "T", "item", "repeat", "failed before with"])]
    return "\n\n".join(parts), len(new_errors), len(fixed)


def _cell_keys(df: pd.DataFrame) -> set[tuple]:
    return set(_keys(df[CELL_KEYS].drop_duplicates(), CELL_KEYS))


def describe(old: pd.DataFrame, new: pd.DataFrame, old_label: str, new_label: str) -> str:
    """The whole comparison of run `new` with the earlier run `old`, as markdown."""
    labels = _labels(old, new)
    parts = [f"Comparing {cell_text(new_label)} with {cell_text(old_label)}.", models_table(old, new, labels)]
    answers, _ = answers_changed(old, new, labels)
    errors, n_new, n_fixed = errors_changed(old, new, labels)
    parts.append(answers or "No answer in common to compare.")
    parts.append(errors or "No new or fixed errors.")
    old_cells, new_cells = _cell_keys(old), _cell_keys(new)
    only_old, only_new = old_cells - new_cells, new_cells - old_cells
    for cells, what in ((only_new, "only in the newer run"), (only_old, "only in the earlier run")):
        if cells:
            listed = ", ".join(f"{labels(m, v)}/{t}/{p}/T={temp:g}" for m, t, p, temp, v in sorted(cells))
            parts.append(f"Cells {what}: {cell_text(listed)}.")
    return "\n\n".join(parts)
