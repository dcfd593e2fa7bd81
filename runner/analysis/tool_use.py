"""The report's tool use table: per cell of a tools task, how often the right tool was called with the right
arguments (each tool-use scorer's pass rate with Wilson's 95% interval), next to the turns, the calls and the
dollars it took.

Read from the records (each turn's `tool_calls`, and in the next turn's details what each call gave: ok, an
error the tool raised, arguments that did not match its schema, a tool that does not exist) and from the cells'
scores; which scorers are tool-use scorers, from the jobs' saved configs.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from runner import yaml_files
from runner.analysis.report import cell_label, labels_for, table, temperature_text
from runner.analysis.summary import CELL_KEYS
from runner.folders import job_folders
from runner.money import dollars
from runner.scorers import TOOL_TYPES
from runner.tasks.tools import INVALID, ROUNDS_STEP, UNKNOWN, in_tool_loop


def tool_scorers(folder: Path) -> list[str]:
    """The names of the tool-use scorers (tool_called, no_tool, negated or not) the jobs ran with."""
    names: dict[str, None] = {}
    for job in job_folders(folder):
        path = job / ".hydra" / "config.yaml"
        try:
            config = yaml_files.parse(path.read_text(encoding="utf-8")) if path.exists() else None
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(config, dict):
            continue
        task = config.get("task") if isinstance(config.get("task"), dict) else {}
        for group in (task.get("scorers"), config.get("scorer")):
            for name, raw in (group or {}).items() if isinstance(group, dict) else ():
                kind = str(raw.get("type") or "") if isinstance(raw, dict) else ""
                if kind.removeprefix("not-") in TOOL_TYPES:
                    names[str(name)] = None
    return list(names)


def _count(details: pd.Series, status: str) -> int:
    return sum(1 for d in details for result in (d.get("tool_results") or ()) if result.get("status") == status)


def per_cell(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of a tools task: items run, model turns per item, tool calls, bad arguments, unknown
    tools, tools that raised, items that ended at max_tool_rounds, and what the turns cost per item."""
    if df.empty or "details" not in df.columns:
        return pd.DataFrame()
    loop = df[df.details.map(in_tool_loop)]
    if loop.empty:
        return pd.DataFrame()
    rows = []
    for keys, group in loop.groupby(CELL_KEYS, dropna=False, sort=True):
        turns = group[group.step.str.startswith("turn")]
        items = group.groupby(["item", "repeat"], dropna=False).ngroups
        calls = turns.tool_calls.map(lambda c: len(c) if isinstance(c, list) else 0)
        cost = turns.cost_usd
        rows.append({**dict(zip(CELL_KEYS, keys)), "items": items,
                     "turns_per_item": len(turns) / items if items else None,
                     "tool_calls": int(calls.sum()),
                     "bad_arguments": _count(group.details, INVALID), "unknown_tools": _count(group.details, UNKNOWN),
                     "tool_errors": _count(group.details, "error"),
                     "max_rounds": int((group.step == ROUNDS_STEP).sum()),
                     "cost_per_item_usd": cost.sum() / items if items and cost.notna().any() else None})
    return pd.DataFrame(rows)


def _rate(row) -> str:
    if row is None or pd.isna(row.pass_rate):
        return "n/a"
    low, high = row.pass_rate_low, row.pass_rate_high
    interval = f" [{low:.0%}, {high:.0%}]" if not (pd.isna(low) or pd.isna(high)) else ""
    return f"{row.pass_rate:.0%}{interval} ({int(row.scored)})"


def section(df: pd.DataFrame, score_cells: pd.DataFrame, folder: Path) -> list[tuple[str, str]]:
    """("Tool use", markdown) for a run with tools tasks, else nothing."""
    cells = per_cell(df)
    if cells.empty:
        return []
    names = [n for n in tool_scorers(folder) if not score_cells.empty and (score_cells.scorer == n).any()]
    labels = labels_for(cells)
    rows = []
    for r in cells.itertuples():
        rates = []
        for name in names:
            found = score_cells[(score_cells.scorer == name) & (score_cells.model == r.model)
                                & (score_cells.task == r.task) & (score_cells.prompt == r.prompt)
                                & (score_cells.temperature == r.temperature)
                                & (score_cells.variant.fillna("") == (r.variant or ""))]
            rates.append(_rate(next(found.itertuples(), None)))
        rows.append([cell_label(r, labels), r.task, r.prompt, temperature_text(r.temperature), r.items, *rates,
                     f"{r.turns_per_item:.1f}", r.tool_calls, r.bad_arguments, r.unknown_tools, r.tool_errors,
                     r.max_rounds, dollars(r.cost_per_item_usd)])
    header = ["model", "task", "prompt", "T", "items", *(f"{n}: pass rate [95% CI] (scored)" for n in names),
              "turns per item", "tool calls", "bad arguments", "unknown tools", "tools that failed",
              "no answer (max_tool_rounds)", "cost per item"]
    text = table(rows, header, ["---"] * 4 + ["---:"] * (len(header) - 4))
    return [("Tool use", text + (
        "\n\nPer cell of a tools task: each tool-use scorer's pass rate with Wilson's 95% interval (*tool_called*: "
        "the right tool with the right arguments; *no_tool*: no call where none was right). *Turns per item*: the "
        "model's turns, tool rounds and answer; *bad arguments*: calls whose arguments did not match the tool's "
        "schema (answered with what was wrong, so the model could call again); *tools that failed*: calls whose "
        "tool raised (answered with its error); *no answer*: items still calling tools after "
        "`task.max_tool_rounds`. Every call, with its arguments, is in results.csv (`tool_calls`)."))]
