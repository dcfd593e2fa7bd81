"""report.md: what ran, the summary table, plots, answers side by side, and what went wrong.

Written for GitHub's markdown: pipe tables with escaped cells, images linked by relative path, long
answers shortened (the full text is in results.csv / results.jsonl).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

ANSWER_CHARS = 400


def cell_text(value, limit: int | None = None) -> str:
    """One markdown table cell: no newlines, no unescaped pipes, optionally shortened."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value)
    if limit and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return "<br>".join(line for line in text.split("\n"))


def table(rows: list[list], header: list[str], align: list[str] | None = None) -> str:
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(cell_text(v) if not isinstance(v, str) else v for v in row) + " |")
    return "\n".join(lines)


def _num(value, digits=2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def _usd(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def summary_table(summary: pd.DataFrame) -> str:
    header = ["model", "task", "prompt", "T", "calls", "ok", "err", "skip", "latency p50 s", "p95 s",
              "ttft p50 s", "tokens in", "tokens out", "tok/s", "cost", "per call", "per 1k items"]
    rows = []
    for _, r in summary.iterrows():
        rows.append([cell_text(r.model), cell_text(r.task), cell_text(r.prompt), f"{r.temperature:g}",
                     str(r.calls), str(r.ok), str(r.error), str(r.skipped), _num(r.latency_p50_s),
                     _num(r.latency_p95_s), _num(r.ttft_p50_s), str(r.input_tokens), str(r.output_tokens),
                     _num(r.tokens_per_s, 1), _usd(r.cost_usd), _usd(r.cost_per_call_usd),
                     _usd(r.cost_per_1k_items_usd)])
    return table(rows, header, ["---"] * 4 + ["---:"] * (len(header) - 4))


def spread_table(summary: pd.DataFrame) -> str | None:
    if "answer_agreement" not in summary or summary.answer_length_std.isna().all():
        return None
    rows = [[cell_text(r.model), cell_text(r.task), cell_text(r.prompt), f"{r.temperature:g}",
             _num(r.answer_length_std, 1), _num(r.answer_agreement, 2)]
            for _, r in summary.iterrows()]
    return table(rows, ["model", "task", "prompt", "T", "answer length std (chars)", "repeats agreeing"],
                 ["---"] * 4 + ["---:", "---:"])


def answers_section(df: pd.DataFrame) -> str:
    """Per task and item, every variant's answer (first repeat, final step) side by side."""
    parts = []
    final = df[df.step.fillna("").isin(["", "write"]) | df.step.isna()]
    final = final[final.repeat.fillna(0) == final.repeat.fillna(0).min()] if not final.empty else final
    for (task, item), group in final.groupby(["task", "item"], sort=False):
        parts.append(f"### {cell_text(task)}: {cell_text(item, 120)}")
        rows = []
        for _, r in group.sort_values(["model", "prompt", "temperature"]).iterrows():
            answer = cell_text(r.response, ANSWER_CHARS) if r.status == "ok" else f"*{r.status}: {cell_text(r.error, 200)}*"
            rows.append([cell_text(r.model), cell_text(r.prompt), f"{r.temperature:g}", answer])
        parts.append(table(rows, ["model", "prompt", "T", "answer"]))
    return "\n\n".join(parts)


def transcripts_section(df: pd.DataFrame) -> str | None:
    """Multi-turn tasks (debate, chat): every turn in order, with its tokens and cost."""
    turns = df[df.step.fillna("").str.startswith("turn")]
    if turns.empty:
        return None
    parts = []
    # one conversation per job and cell: a debate's opponent rows carry the opponent's name as model
    for (_, prompt, temperature, item, repeat), group in turns.groupby(
            ["job", "prompt", "temperature", "item", "repeat"], sort=False, dropna=False):
        speakers = " vs ".join(cell_text(m) for m in group.model.unique())
        parts.append(f"### {speakers} · {cell_text(item, 80)} (prompt {cell_text(prompt)}, T={temperature:g}, repeat {int(repeat)})")
        rows = []
        for _, r in group.iterrows():
            details = r.get("details") if isinstance(r.get("details"), dict) else {}
            speaker = details.get("speaker") or r.model
            rows.append([cell_text(r.step), cell_text(speaker),
                         cell_text(r.response if r.status == "ok" else f"{r.status}: {r.error}", 600),
                         str(int(r.input_tokens)) if not pd.isna(r.input_tokens) else "",
                         str(int(r.output_tokens)) if not pd.isna(r.output_tokens) else "", _usd(r.cost_usd)])
        parts.append(table(rows, ["turn", "speaker", "said", "in", "out", "cost"]))
    return "\n\n".join(parts)


def errors_section(df: pd.DataFrame, failed_jobs: list[str]) -> str | None:
    bad = df[df.status != "ok"]
    if bad.empty and not failed_jobs:
        return None
    lines = []
    for job in failed_jobs:
        lines.append(f"- job `{job}` crashed: see its log")
    if not bad.empty:
        counts = bad.groupby(["model", "status", "error"], dropna=False).size().reset_index(name="n")
        rows = [[cell_text(r.model), cell_text(r.status), str(r.n), cell_text(r.error, 300)]
                for _, r in counts.sort_values("n", ascending=False).iterrows()]
        lines.append(table(rows, ["model", "status", "calls", "reason"]))
    return "\n\n".join(lines)


def write(folder: Path, df: pd.DataFrame, summary: pd.DataFrame, plots: list[Path], command: str,
          config_text: str, failed_jobs: list[str], warnings: list[str], extra_sections: list[tuple[str, str]] = ()) -> Path:
    ok = int((df.status == "ok").sum()) if not df.empty else 0
    lines = [f"# Comparison: {folder.name}", ""]
    lines.append(f"{len(df)} calls: {ok} ok, {int((df.status == 'error').sum()) if not df.empty else 0} error, "
                 f"{int((df.status == 'skipped').sum()) if not df.empty else 0} skipped; "
                 f"spent {_usd(df.spent_usd.fillna(0).sum() if not df.empty else 0.0)}.")
    lines += ["", "```", command, "```", ""]
    for warning in warnings:
        lines.append(f"> **Warning:** {warning}")
        lines.append("")
    lines += ["## Summary", "", summary_table(summary) if not summary.empty else "*no calls*", ""]
    spread = spread_table(summary) if not summary.empty else None
    if spread:
        lines += ["## Spread of repeated answers", "", spread, ""]
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem.replace('_', ' ')}]({p.name})" for p in plots]
        lines.append("")
    for title, body in extra_sections:
        lines += [f"## {title}", "", body, ""]
    if not df.empty:
        lines += ["## Answers side by side", "", answers_section(df), ""]
        transcripts = transcripts_section(df)
        if transcripts:
            lines += ["## Transcripts", "", transcripts, ""]
    errors = errors_section(df, failed_jobs)
    if errors:
        lines += ["## Errors", "", errors, ""]
    lines += ["## Config", "", "<details><summary>config of the first job</summary>", "", "```yaml",
              config_text.strip(), "```", "", "</details>", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
