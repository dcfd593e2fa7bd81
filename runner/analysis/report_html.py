"""report.html: the comparison as one self-contained page, beside report.md, built from the same records.

Everything is inside the file: the data as JSON in a `<script type="application/json">` block (every `<`
escaped, so no text in it can close the block), the page's own script and style inline, the plots as
data URIs. It opens offline and as a CI artifact, and fetches nothing. A Content-Security-Policy lets only
the page's own script run (by its hash): even HTML that slipped past the sanitizer could not run a handler.
The pictures a task sent are thumbnails drawn anew as PNG data URIs (runner.analysis.images); the script
shows an image only from a PNG, JPEG, GIF or WebP data URI, which the policy's `img-src data:` allows.

Answers, page text and judges' reasons are untrusted: they are rendered from markdown and sanitized in
Python (runner.analysis.markup) before they are embedded; the page puts only that sanitized HTML into
the document as HTML, and everything else in as text. Each distinct answer is rendered once.

The page draws whatever the data holds: the summary, the calls (sortable, filterable, a page at a time so
10,000 calls load at once), items side by side, conversations, errors, plots, and a scores section when
the data has scores (`scores`, empty until the run has scores; `judgments` per call for judges' reasons).

The tables of totals (summary, cost, errors) count every call. The calls themselves are embedded only up to
MAX_CALLS, whole items at a time (the first items, in the order they ran): past that, the page would be too
heavy to open and building it would hold every answer twice more in memory; the page says how many are left
out, and results.csv holds them all.
"""
from __future__ import annotations

import base64
import hashlib
import html
import importlib.resources
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from runner.analysis import images, markup, report, votes
from runner.analysis.summary import final_answers, values
from runner.variant import key_of, parts
from runner.words import counted

FILE = "report.html"
log = logging.getLogger(__name__)
PREVIEW_CHARS = 200
MAX_CALLS = 10_000  # calls embedded in the page; the rest are counted and left to results.csv


def _static(name: str) -> str:
    return (importlib.resources.files("runner.analysis") / "static" / name).read_text(encoding="utf-8")


def _plain(value):
    """A value as JSON can hold it: None for NaN, Python numbers for numpy's."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _text(value) -> str:
    value = _plain(value)
    return "" if value is None else str(value)


def swept_keys(df: pd.DataFrame) -> list[str]:
    """The keys a sweep varied beyond model, task, prompt and temperature (model.id, max_tokens...)."""
    keys: dict[str, None] = {}
    for variant in df.variant.unique():
        for part in parts(variant):
            keys[key_of(part)] = None
    return list(keys)


def _variant_values(variant: str) -> dict[str, str]:
    return {key_of(p): (p.split("=", 1)[1] if "=" in p else p) for p in parts(variant)}


def _table(header, rows) -> dict:
    return {"columns": [str(h) for h in header], "rows": [[_text(v) for v in row] for row in rows]}


def calls_data(df: pd.DataFrame, rendered: markup.Rendered) -> dict:
    """Every call as one row: what the tables filter and sort on, and the index of its rendered answer."""
    labels = report.labels_for(df)
    swept = swept_keys(df)
    columns = ([("model", "text", True), ("task", "text", True), ("prompt", "text", True),
                ("T", "number", True)] + [(key, "text", True) for key in swept]
               + [("item", "text", False), ("repeat", "number", False), ("step", "text", df.step.nunique() > 1),
                  ("status", "text", True), ("latency s", "number", False), ("ttft s", "number", False),
                  ("in", "number", False), ("out", "number", False), ("cost", "usd", False),
                  ("cached", "text", False), ("answer", "text", False)])

    def column(name: str, text: bool = False) -> list:
        """A column's values as JSON holds them, made column by column: None (or "" for text) where missing."""
        if name not in df:
            return ["" if text else None] * len(df)
        return [str(v) for v in values(df[name], "")] if text else values(df[name])

    cells: dict[tuple, list] = {}  # a variant's label and swept values: a few distinct ones over all the calls
    rows = []
    for (model, variant, task, prompt, temperature, item, repeat, step, status, latency, ttft, tokens_in,
         tokens_out, cost, cached, response, error, note, finish, retries, job, thinking, thought) in zip(
            column("model"), column("variant", text=True), column("task", text=True), column("prompt", text=True),
            column("temperature"), column("item", text=True), column("repeat"), column("step", text=True),
            column("status", text=True), column("latency_s"), column("ttft_s"), column("input_tokens"),
            column("output_tokens"), column("cost_usd"), column("cache_hit"), column("response", text=True),
            column("error", text=True), column("note", text=True), column("finish_reason", text=True),
            column("retries"), column("job", text=True), column("reasoning", text=True),
            column("reasoning_tokens")):
        cell = cells.get((model, variant))
        if cell is None:
            given = _variant_values(variant)
            cell = cells[(model, variant)] = [labels(model, variant), [given.get(key, "") for key in swept]]
        text = response if status == "ok" else ""
        preview = text if text else f"{status}: {error}"
        rows.append([cell[0], task, prompt, temperature, *cell[1], item, repeat, step, status, latency, ttft,
                     tokens_in, tokens_out, cost, "yes" if cached else "", preview[:PREVIEW_CHARS],
                     {"answer": rendered(text) if text else None, "error": error, "note": note, "finish": finish,
                      "retries": retries, "job": job, "reasoning_tokens": thought,
                      "reasoning": thinking or None}])  # thinking: shown folded, as plain text, never as the answer
    return {"columns": [{"name": n, "type": t, "filter": f} for n, t, f in columns], "rows": rows}


def items_data(df: pd.DataFrame, folder: Path | None = None) -> list:
    """Per task and item, each variant's answer (its first repeat, its last step), as indexes into the
    calls: the same choice report.md's "Answers side by side" makes, but every item and in full; and the
    images the item sent (task.images), each {name, source, src: a thumbnail's PNG data URL or None, note}."""
    answers = final_answers(df)
    if answers.empty:
        return []
    answers = answers.sort_values(["task", "item", "model", "variant", "prompt", "temperature", "repeat"],
                                  kind="stable")
    first = answers.drop_duplicates(["task", "item", "model", "variant", "prompt", "temperature"])
    pictures = images.by_item(df)
    thumbnails = images.Thumbnails(folder) if folder is not None and pictures else None
    items: dict[tuple, list] = {}
    for index, task, item in zip(first.index, first.task, first.item):
        if (task, item) not in items:
            shown = [_picture(image, thumbnails) for image in pictures.get((task, item), [])]
            items[(task, item)] = [_text(task), _text(item), [], shown]
        items[(task, item)][2].append(int(index))
    return list(items.values())


def _picture(image: dict, thumbnails: images.Thumbnails | None) -> dict:
    """One image as the page shows it: a thumbnail (made here from the run's copy, never the record's say-so),
    its name and where it came from as text."""
    src, note = thumbnails(image) if thumbnails is not None else (None, "not shown")
    return {"name": images.name_of(image), "source": _text(image.get("source")), "src": src, "note": note}


def conversations_data(df: pd.DataFrame, rendered: markup.Rendered) -> list:
    """Multi-turn tasks (debate, chat), one conversation per job and cell, as report.md's transcripts: each
    turn's call, with the user's line before it when it is not the other speaker's last answer."""
    turns = df[df.step.str.startswith("turn")]
    conversations = []
    for (_, prompt, temperature, item, repeat), group in turns.groupby(
            ["job", "prompt", "temperature", "item", "repeat"], sort=False, dropna=False):
        speakers = " vs ".join(str(m) for m in group.model.unique())
        title = f"{speakers} · {item} (prompt {prompt}, T={temperature:g}, repeat {int(repeat)})"
        said, previous = [], None
        for index, r in group.iterrows():
            asked = r.get("asked")
            asked = asked if isinstance(asked, str) and asked and asked != previous else None
            speaker = report._speaker(r)
            said.append([int(index), _text(speaker), rendered(asked) if asked is not None else None])
            previous = r["response"] if r["status"] == "ok" else None
        conversations.append([title, said])
    return conversations


def errors_data(df: pd.DataFrame, failed_jobs: list[str]) -> dict:
    bad = df[df.status != "ok"]
    rows = []
    if not bad.empty:
        labels = report.labels_for(df)
        counts = bad.groupby(["model", "variant", "status", "error"], dropna=False).size().reset_index(name="n")
        rows = [[labels(r.model, r.variant), r.status, int(r.n), _text(r.error)]
                for r in counts.sort_values("n", ascending=False).itertuples()]
    return {"jobs": list(failed_jobs), "columns": ["model", "status", "calls", "reason"], "rows": rows}


def scores_of(folder: Path, df: pd.DataFrame) -> tuple[list, dict]:
    """The hook for scores: (leaderboard tables as {title, columns, rows, note}, {call index: [{scorer,
    score, pass, reason (sanitized HTML)}]}). The score tables themselves come as the report's sections
    (Scores, Leaderboard, ...), as in report.md; here each scored call gets its scores and the judges'
    reasons, shown beside its answer."""
    from runner.analysis import scores

    scored = scores.read(folder)
    if scored.empty or df.empty:
        return [], {}
    keys = ["model", "variant", "prompt", "temperature", "task", "item", "repeat", "step"]
    index = {tuple(_plain(v) for v in key): i for i, key in enumerate(df[keys].itertuples(index=False, name=None))}
    judgments: dict[str, list] = {}
    for r in scored.to_dict("records"):
        at = index.get(tuple(_plain(r[k]) for k in keys))
        if at is None:
            continue
        name = r["scorer"] + (f" ({r['judge']})" if r["judge"] else "")
        ok = r["status"] == "ok"
        reason = r["reason"] if ok else f"{r['status']}: {r['reason']}"
        judgments.setdefault(str(at), []).append({
            "scorer": name, "score": _plain(r["score"]) if ok else None, "pass": bool(r["pass"]) if ok else None,
            "reason": markup.answer_html(reason) if reason else ""})  # a judge's text is untrusted
    return [], judgments


def first_items(df: pd.DataFrame, at_most: int) -> tuple[pd.DataFrame, str | None]:
    """The calls of the first items (task and item, in the order they ran) that fit in `at_most` calls, and
    a line saying what is left out (None when nothing is). Whole items, so that each item shown has every
    variant's answer; when the first item alone has more calls, its first `at_most`."""
    if len(df) <= at_most:
        return df, None
    item = df.groupby(["task", "item"], sort=False, dropna=False).ngroup().to_numpy()
    per_item = np.bincount(item)
    fits = int(np.searchsorted(np.cumsum(per_item), at_most, side="right"))
    shown = df[item < fits] if fits else df.head(at_most)
    items = f"the first {max(fits, 1):,} of {counted(len(per_item), 'item', thousands=True)}"
    calls = counted(len(df), "call", thousands=True)
    return shown, (f"This page holds the calls of {items} ({len(shown):,} of {calls}), so that it "
                   f"stays quick to open; the tables of totals count every call, and every call is in "
                   f"results.csv and the jobs' results.jsonl.")


def page_data(folder: Path, df: pd.DataFrame, summary: pd.DataFrame, plots: list[Path], command: str,
              config_text: str, failed_jobs: list[str], warnings: list[str],
              sections: list[tuple[str, str]], about: list[str], max_calls: int = MAX_CALLS) -> dict:
    every = df
    df, left_out = first_items(df, max_calls)
    df = df.reset_index(drop=True)
    rendered = markup.Rendered()
    labels = report.labels_for(every)
    counts = every.status.value_counts() if not every.empty else pd.Series(dtype=int)
    data = {
        "title": f"Comparison: {folder.name}",
        "counts": {"calls": len(every), "ok": int(counts.get("ok", 0)), "error": int(counts.get("error", 0)),
                   "skipped": int(counts.get("skipped", 0)), "spent": report.spent_text(every)},
        "left_out": left_out,
        # lines report.md writes as markdown (code spans, emphasis): the same, rendered and sanitized
        "about": [markup.report_html(line) for line in about], "command": command,
        "warnings": [markup.report_html(f"**Warning:** {line}") for line in warnings],
        "summary": _table(*report.summary_data(summary, labels)[:2]) if not summary.empty else None,
        "cost": _table(*report.cost_data(every, labels)[:2]) if not every.empty else None,
        "spread": None, "sections": [], "calls": None, "items": [], "conversations": [],
        "errors": errors_data(every, failed_jobs) if not every.empty or failed_jobs else None,
        "plots": [{"name": p.stem.replace("_", " "), "png": base64.b64encode(p.read_bytes()).decode("ascii")}
                  for p in plots if p.exists()],
        "config": config_text.strip(),
    }
    spread = report.spread_data(summary, labels) if not summary.empty else None
    if spread:
        data["spread"] = _table(*spread[:2])
    data["sections"] = [{"title": title, "html": markup.report_html(body)} for title, body in sections]
    if not df.empty:
        data["calls"] = calls_data(df, rendered)
        data["items"] = items_data(df, folder)
        data["conversations"] = conversations_data(df, rendered)
    data["scores"], data["judgments"] = scores_of(folder, df)
    data["votes"] = len(votes.read(folder))
    data["texts"], data["html"] = rendered.texts, rendered.html
    return data


def script() -> str:
    """The page's one script, as the page carries it."""
    return _static("report.js")


def script_tag() -> str:
    """The script's element exactly as page() writes it: runner.view serves a report.html as written only
    when it holds this."""
    return f"<script>{script()}</script>"


def policy() -> str:
    """The page's Content-Security-Policy: no script runs but script() (allowed by its hash), and nothing is
    fetched. runner.view serves every report under it too, so a planted report.html runs nothing."""
    digest = base64.b64encode(hashlib.sha256(script().encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; "
            "base-uri 'none'; form-action 'none'")


def page(data: dict) -> str:
    """The whole page: data, script and style in one file."""
    # '<' as \u003c: nothing inside the JSON can end the script block or open a comment
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy()}\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(data['title'])}</title>\n<style>\n{_static('report.css')}</style>\n</head>\n"
            f"<body>\n<noscript>This report needs JavaScript; report.md beside it has the same tables.</noscript>\n"
            f"<main id=\"report\"></main>\n"
            f"<script type=\"application/json\" id=\"report-data\">{payload}</script>\n"
            f"{script_tag()}\n</body>\n</html>\n")


def write(folder: Path, df: pd.DataFrame, summary: pd.DataFrame, plots: list[Path], command: str,
          config_text: str, failed_jobs: list[str], warnings: list[str],
          sections: list[tuple[str, str]] = (), about: list[str] = (), max_calls: int = MAX_CALLS) -> Path:
    """Write folder/report.html from what report.md is written from (same arguments as report.write), with
    at most `max_calls` calls embedded. A failure here is said in one line and leaves the rest of the
    comparison (report.md, the tables, the history) as it is: None is returned."""
    path = Path(folder) / FILE
    try:
        data = page_data(Path(folder), df, summary, plots, command, config_text, failed_jobs, warnings,
                         list(sections), list(about), max_calls)
        path.write_text(page(data), encoding="utf-8")
    except Exception as exc:  # noqa: BLE001 - report.md and the tables are written already; they must stay
        log.warning("report.html not written", exc_info=True)
        print(f"runner.comparison: {path} not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    return path
