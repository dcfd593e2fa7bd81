"""report.md: what ran, the summary table, plots, answers side by side, and what went wrong.

Written for GitHub's markdown: pipe tables, images linked by relative path, long answers shortened (the
full text is in results.csv / results.jsonl). Answers, page text, errors and judges' reasons are untrusted:
every value put in a table or a heading goes through `cell_text`, which makes it show as the text it is,
in GitHub and in viewers that link more eagerly (markdown-it's linkify): no emphasis or code, no link,
image, autolink, raw HTML or math, and no pipe or newline that would break the table. The pictures a task
sent (task.images) are linked by the relative path of the run's copy in images/, their sources shown as text.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from runner.analysis import images
from runner.analysis.summary import answered, final_answers, normalized, summarize
from runner.money import dollars, dollars_with
from runner.records import calls_text
from runner.variant import Labels

ANSWER_ITEMS = 50
ANSWER_CHARS = 400
TURN_CHARS = 600


class Markdown(str):
    """Text already formatted for a table cell (emphasis, code); `table` puts it in as is."""


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell_text(value, limit: int | None = None) -> Markdown:
    """One markdown table cell showing the value as the text it is (`literal`), its lines joined by <br>,
    optionally shortened."""
    if isinstance(value, Markdown):
        return value
    if _missing(value):
        return Markdown("")
    text = re.sub(r"\n\s*\n+", "\n", str(value).replace("\r", "").strip())  # blank lines: one break
    if limit and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    if FIGURES.fullmatch(text) and "](" not in text:  # the runner's figures, as written: nothing to escape
        return Markdown(text)
    return Markdown("<br>".join(literal(line) for line in text.split("\n")))


# A backslash makes any ASCII punctuation plain text. Escaped: what starts emphasis, code, strikethrough,
# math, links, images, footnotes and table cells; HTML as entities. GitHub links an e-mail address (and
# mailto:, xmpp:) after escapes are read, so only a character that is not part of one keeps it text: a
# word joiner (U+2060, invisible) before every @
ESCAPES = [("\\", "\\\\"), *((c, "\\" + c) for c in "`*~[]$|"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"),
           ("@", "\u2060@")]  # in this order: the backslashes first, & before the entities that use it
# and underscores, but those inside a word (snake_case, a__b), which start nothing
UNDERSCORES = re.compile(r"_+")
# Autolinks need no markup: `http://`, `www.x.y`, and in other viewers any `name.tld` or `//host`. An escaped
# slash or dot is the same character to a reader but splits the text that link detection reads: a dot
# after a character and before a letter (example.com; not 3.14 or the end of a sentence) and GitHub's
# `www.` whatever follows it
DOT = re.compile(r"\.")
INDENT = re.compile(r"^[ \t]+")
# The runner's own figures: '$0.0012', '0.58 [0.42, 0.75]', '50% [13%, 87%] (3)', '1.00 s → 2.00 s (+100%)',
# '$0.02 + 1 n/a'. Without letters, `*`, `_`, `|` or `<`, only a `[..](..)` link could come of them
FIGURES = re.compile(r"(?:[\d$,.%+\- →()\[\]]|\bs\b|\bn/a\b)+")


def literal(line: str) -> str:
    """One line of untrusted text as markdown that shows exactly that text (markup escaped, HTML as
    entities, links broken up), its indentation kept."""
    text = line
    for char, escaped in ESCAPES:  # str.replace: ten times faster here than str.translate with a dict
        if char in text:
            text = text.replace(char, escaped)
    if "_" in text:
        text = UNDERSCORES.sub(_underscores, text)
    while "//" in text:
        text = text.replace("//", "/\\/")
    if "." in text:
        text = DOT.sub(_dot, text)
    if text[:1] in (" ", "\t"):
        text = INDENT.sub(lambda m: m.group(0).replace("\t", "    ").replace(" ", "&nbsp;"), text)
    return text


def _underscores(match: re.Match) -> str:
    start, end, text = match.start(), match.end(), match.string
    if 0 < start and end < len(text) and text[start - 1].isalnum() and text[end].isalnum():
        return match.group(0)
    return "\\_" * (end - start)


def _dot(match: re.Match) -> str:
    start, text = match.start(), match.string
    after = text[start + 1: start + 2]
    if start and not text[start - 1].isspace() and after.isalpha() or text[max(0, start - 3): start].lower() == "www":
        return "\\."
    return "."


def table(rows: list[list], header: list[str], align: list[str] | None = None) -> str:
    """A GitHub pipe table; every value is escaped unless it is Markdown."""
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(cell_text(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell_text(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fenced(text: str, language: str = "") -> str:
    """A code block that nothing inside it can close: its fence is longer than any run of backticks in it
    (a config's task inputs may hold ``` and then HTML)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def number(value, digits=2) -> str:
    return "" if _missing(value) else f"{value:.{digits}f}"


def labels_for(frame: pd.DataFrame) -> Labels:
    return Labels(frame.variant.unique() if "variant" in frame else [])


def cell_label(r, labels: Labels) -> str:
    return labels(r.model, getattr(r, "variant", ""))


CACHED_TIMING = "(cached)"
CACHED_TIMING_NOTE = (f"{CACHED_TIMING}: every answer of this cell came from the response cache; its timing is "
                      "that of the original call.")


def _timing(value, r) -> str:
    shown = number(value)
    return f"{shown} {CACHED_TIMING}" if shown and getattr(r, "timing_from_cache", 0) else shown


def summary_table(summary: pd.DataFrame, labels: Labels | None = None) -> str:
    header, rows, align = summary_data(summary, labels)
    return table(rows, header, align)


def summary_data(summary: pd.DataFrame, labels: Labels | None = None) -> tuple[list[str], list[list], list[str]]:
    """The summary table's header, rows and alignment (report.md's table, report.html's too)."""
    labels = labels or labels_for(summary)
    # reasoning tokens (of tokens out) only when a cell reported any: a run without reasoning models reads as before
    thinking = "reasoning_tokens" in summary and summary.reasoning_tokens.notna().any()
    header = ["model", "task", "prompt", "T", "calls", "ok", "err", "skip", "latency p50 s", "p95 s",
              "ttft p50 s", "tokens in", "tokens out", *(["of which reasoning"] if thinking else []), "tok/s", "cost",
              "per call", "per 1k items"]
    rows = [[cell_label(r, labels), r.task, r.prompt, temperature_text(r.temperature), r.calls, r.ok, r.error,
             r.skipped, _timing(r.latency_p50_s, r), _timing(r.latency_p95_s, r), _timing(r.ttft_p50_s, r),
             r.input_tokens, r.output_tokens,
             *([number(r.reasoning_tokens, 0) if not _missing(r.reasoning_tokens) else ""] if thinking else []),
             number(r.tokens_per_s, 1), dollars_with(r.cost_usd, _unpriced(r)),
             dollars(r.cost_per_call_usd), dollars(r.cost_per_1k_items_usd)]
            for r in summary.itertuples()]
    return header, rows, ["---"] * 4 + ["---:"] * (len(header) - 4)


def temperature_text(value) -> str:
    """A cell's temperature; "default" for a model that was sent none and whose default is not known."""
    return "default" if _missing(value) else f"{value:g}"


def _unpriced(r) -> int:
    value = getattr(r, "unpriced", 0)
    return 0 if _missing(value) else int(value)


def cost_table(df: pd.DataFrame, labels: Labels | None = None) -> str:
    """Cost per model (and variant) and task, over all prompts, temperatures and repeats."""
    header, rows, align = cost_data(df, labels)
    return table(rows, header, align)


def cost_data(df: pd.DataFrame, labels: Labels | None = None) -> tuple[list[str], list[list], list[str]]:
    labels = labels or labels_for(df)
    rows = [[cell_label(r, labels), r.task, str(r.calls), str(r.cells),
             dollars_with(r.cost_usd, _unpriced(r)), dollars(r.cost_per_1k_items_usd), dollars_with(r.spent_usd),
             number(r.tokens_per_s, 1)]
            for r in summarize(df, ["model", "variant", "task"]).itertuples()]
    return (["model", "task", "calls", "items run", "cost at list", "per 1k items", "spent", "tok/s"], rows,
            ["---"] * 2 + ["---:"] * 6)


def spread_table(summary: pd.DataFrame, labels: Labels | None = None) -> str | None:
    data = spread_data(summary, labels)
    return table(data[1], data[0], data[2]) if data else None


def spread_data(summary: pd.DataFrame, labels: Labels | None = None) -> tuple[list[str], list[list], list[str]] | None:
    if "answer_agreement" not in summary or summary.answer_length_std.isna().all():
        return None
    labels = labels or labels_for(summary)
    rows = [[cell_label(r, labels), r.task, r.prompt, f"{r.temperature:g}", r.repeats,
             number(r.answer_length_std, 1), "" if _missing(r.answer_agreement) else f"{r.answer_agreement:.0%}"]
            for r in summary.itertuples()]
    return (["model", "task", "prompt", "T", "repeats", "answer length std (chars)",
             "repeats agreeing with the most common answer"], rows, ["---"] * 4 + ["---:"] * 3)


def _outcome(r, limit: int) -> str:
    if r.status == "ok":
        calls = calls_text(getattr(r, "tool_calls", None))
        if calls:  # a tool loop's turn: what it said, then the tools it called
            return Markdown("<br>".join(filter(None, [cell_text(r.response, limit), "*calls* " + cell_text(calls,
                                                                                                         limit)])))
        return cell_text(r.response, limit)
    return Markdown(f"*{r.status}: {cell_text(r.error, 200)}*")


def image_line(image: dict, folder: Path | None) -> str:
    """An image the item sent: a link to the run's copy (a relative path), with where it came from as inert text
    (a URL is never a link); only the source when the copy is not there."""
    source = cell_text(image.get("source") or "", 200)
    copy = images.saved_copy(folder, image) if folder is not None else None
    if copy is None:
        return f"Image: {source} (no copy in {images.FOLDER}/)"
    return f"Image: [{cell_text(images.name_of(image), 80)}]({images.FOLDER}/{copy.name}) ({source})"


def answers_section(df: pd.DataFrame, labels: Labels | None = None, notes: dict | None = None,
                    folder: Path | None = None) -> str:
    """Per task and item, every variant's answer side by side (its first repeat, its last step), with its
    scores and the judges' reasons when it was scored (`notes`, runner.analysis.scores.answer_notes), after the
    images the item sent (task.images; linked to the run's copies in `folder`).

    Only the first ANSWER_ITEMS items are shown: a report of 10,000 items would be unreadable and slow to
    build; every answer is in results.csv.
    """
    first, total = _first_items(df)
    answers = final_answers(first)
    if answers.empty:
        return "*no answers (conversation tasks are under Transcripts)*"
    labels = labels or labels_for(df)
    answers = answers.sort_values(["task", "item", "model", "variant", "prompt", "temperature", "repeat"],
                                  kind="stable")
    repeated = answers.repeat.nunique() > 1
    parts = []
    if repeated:
        parts.append("The first repeat of each variant is shown; *distinct* counts the different answers "
                     "its repeats gave.")
    items: dict[tuple, dict[tuple, list]] = {}  # item -> variant -> its answers, in the sorted order
    for r in answers.itertuples(index=False):  # at most ANSWER_ITEMS items' answers: plain tuples, not frames
        items.setdefault((r.task, r.item), {}).setdefault((r.model, r.variant, r.prompt, r.temperature), []).append(r)
    pictures = images.by_item(first)
    for (task, item), variants in items.items():  # the first ANSWER_ITEMS items only (_first_items)
        parts.append(f"### {cell_text(task)}: {cell_text(item, 120)}")
        parts += [image_line(image, folder) for image in pictures.get((task, item), [])]
        rows = []
        for variant in variants.values():
            first = variant[0]
            row = [cell_label(first, labels), first.prompt, f"{first.temperature:g}"]
            if repeated:
                ok = [normalized(r.response) for r in variant if r.status == "ok"]
                row.append(len(set(ok)) if ok else "")
            row.append(_outcome(first, ANSWER_CHARS))
            if notes:
                row.append(notes.get((first.model, first.variant, first.prompt, first.temperature, first.task,
                                      first.item, first.repeat), ""))
            rows.append(row)
        header = ["model", "prompt", "T"] + (["distinct"] if repeated else []) + ["answer"] + \
            (["scores (judges' reasons)"] if notes else [])
        parts.append(table(rows, header))
    if total > ANSWER_ITEMS:
        parts.append(f"*{total - ANSWER_ITEMS} more items: every answer is in results.csv.*")
    return "\n\n".join(parts)


def _first_items(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The calls of the first ANSWER_ITEMS items (by task and item, as the section orders them) that have an
    answer, and how many such items there are: picked from the two columns before any table of answers is
    made, so that a sweep of 100,000 calls is not copied whole to show 50 items."""
    if df.empty:
        return df, 0
    keys = df.loc[answered(df), ["task", "item"]].dropna().drop_duplicates()
    keys = keys.sort_values(["task", "item"], kind="stable")
    first = pd.MultiIndex.from_frame(keys.head(ANSWER_ITEMS))
    return df[pd.MultiIndex.from_frame(df[["task", "item"]]).isin(first)], len(keys)


def _speaker(r) -> str:
    details = r.get("details")
    if isinstance(details, dict) and details.get("speaker"):
        return str(details["speaker"])
    return r.model


def transcripts_section(df: pd.DataFrame) -> str | None:
    """Multi-turn tasks (debate, chat): every turn in order, with its tokens and cost; the first ANSWER_ITEMS
    conversations, as for answers (every turn is in results.csv)."""
    turns = df[df.step.str.startswith("turn")]
    if turns.empty:
        return None
    parts = []
    # one conversation per job and cell: a debate's opponent rows carry the opponent's name as model
    conversations = turns.groupby(["job", "prompt", "temperature", "item", "repeat"], sort=False, dropna=False)
    for shown, ((_, prompt, temperature, item, repeat), group) in enumerate(conversations):
        if shown == ANSWER_ITEMS:
            parts.append(f"*{conversations.ngroups - ANSWER_ITEMS} more conversations: every turn is in "
                         f"results.csv.*")
            break
        speakers = " vs ".join(cell_text(m) for m in group.model.unique())
        parts.append(f"### {speakers} · {cell_text(item, 80)} (prompt {cell_text(prompt)}, "
                     f"T={temperature:g}, repeat {int(repeat)})")
        rows = [[r.step, _speaker(r), _outcome(r, TURN_CHARS),
                 "" if _missing(r.input_tokens) else int(r.input_tokens),
                 "" if _missing(r.output_tokens) else int(r.output_tokens), dollars(r.cost_usd)]
                for _, r in group.iterrows()]
        parts.append(table(rows, ["turn", "speaker", "said", "in", "out", "cost"]))
    return "\n\n".join(parts)


def batch_calls(df: pd.DataFrame) -> pd.DataFrame:
    """The calls answered through a provider's batch API (their record's details say which batch)."""
    if df.empty or "details" not in df.columns:
        return df.iloc[0:0]
    return df[df.details.map(lambda d: isinstance(d, dict) and isinstance(d.get("batch"), dict))]


def batch_not_used(df: pd.DataFrame) -> pd.DataFrame:
    """The calls of batch runs sent directly because no batch could be made (their details say why)."""
    if df.empty or "details" not in df.columns:
        return df.iloc[0:0]
    return df[df.details.map(lambda d: isinstance(d, dict) and bool(d.get("batch_not_used")))]


def batch_section(df: pd.DataFrame, labels: Labels | None = None) -> list[tuple[str, str]]:
    """("Batch runs", markdown) when some calls went through a batch API or were meant to, else nothing: what
    the batch APIs saved, each model's batched answers at the batch price and, from the same usage, at the
    direct price; and the calls sent directly because the provider made no batch, with its reason."""
    batched, unused = batch_calls(df), batch_not_used(df)
    if batched.empty and unused.empty:
        return []
    labels = labels or labels_for(df)
    parts = _batched_table(batched, labels) if not batched.empty else []
    if not unused.empty:
        reasons = unused.assign(reason=unused.details.map(lambda d: d["batch_not_used"]))
        rows = [[cell_text(cell_label(group.iloc[0], labels)), str(len(group)), str(int((group.status == "ok").sum())),
                 reason] for (_, _, reason), group in reasons.groupby(["model", "variant", "reason"], dropna=False,
                                                                      sort=False)]
        parts += [table(rows, ["model", "calls", "ok", "batch not used: why"], ["---", "---:", "---:", "---"]),
                  "Sent directly, at the direct price, because the provider did not create the batch "
                  "(`batch.retry_failed=direct`)."]
    return [("Batch runs", "\n\n".join(parts))]


def _batched_table(batched: pd.DataFrame, labels: Labels) -> list[str]:
    batched = batched.assign(direct_usd=batched.details.map(lambda d: d["batch"].get("direct_cost_usd")),
                             batch_id=batched.details.map(lambda d: d["batch"]["id"]))
    rows = []
    for _, group in batched.groupby(["model", "variant"], dropna=False, sort=False):
        ok = group[group.status == "ok"]
        at_batch, at_direct = ok.cost_usd.sum(min_count=1), ok.direct_usd.sum(min_count=1)
        saved = at_direct - at_batch if not (_missing(at_batch) or _missing(at_direct)) else None
        rows.append([cell_text(cell_label(group.iloc[0], labels)), str(group.batch_id.nunique()), str(len(group)),
                     str(len(ok)), dollars(at_batch), dollars(at_direct), dollars(saved)])
    return [
        table(rows, ["model", "batches", "calls", "ok", "at batch price", "at direct price", "saved"],
              ["---"] + ["---:"] * 6),
        "Answered through the providers' batch APIs (`model.batch=true`): cost at the batch price; *at direct "
        "price* prices the same usage as direct calls. Their latency is the batch's turnaround (submitted to "
        "ended), and they have no time to first token."]


def errors_section(df: pd.DataFrame, failed_jobs: list[str], labels: Labels | None = None) -> str | None:
    bad = df[df.status != "ok"]
    if bad.empty and not failed_jobs:
        return None
    lines = [f"- job `{job}` crashed before it finished: its traceback is in `{job}/job_error.txt`"
             for job in failed_jobs]
    if not bad.empty:
        labels = labels or labels_for(df)
        counts = bad.groupby(["model", "variant", "status", "error"], dropna=False).size().reset_index(name="n")
        rows = [[cell_label(r, labels), r.status, r.n, cell_text(r.error, 300)]
                for r in counts.sort_values("n", ascending=False).itertuples()]
        lines.append(table(rows, ["model", "status", "calls", "reason"]))
    return "\n\n".join(lines)


def spent_text(df: pd.DataFrame) -> str:
    """What the run paid, every billed attempt included: '$0.0123', 'n/a' when no call that went to a model
    has a known price, or both for a mix."""
    if df.empty:
        return dollars(0.0)
    called = df[(df.status != "skipped") & ~df.cache_hit]
    unknown = int(called.spent_usd.isna().sum())  # calls of a model whose price nobody knows, answered or not
    if unknown and unknown == len(called) and df.spent_usd.fillna(0).sum() == 0:
        return "n/a (no known price)"
    known = dollars(df.spent_usd.fillna(0).sum())
    return f"{known} + n/a for {unknown} call{'s' * (unknown != 1)} with no known price" if unknown else known


def cost_text(df: pd.DataFrame) -> str:
    """What the calls cost at list price, as spent_text says what they spent: 'n/a' when no answered call
    has a known price, '$0.0123 + n/a for 3 calls with no known price' for a mix."""
    answered = df[df.status == "ok"] if not df.empty else df
    unknown = int(answered.cost_usd.isna().sum()) if not df.empty else 0
    if unknown and unknown == len(answered):
        return "n/a (no known price)"
    known = dollars(answered.cost_usd.fillna(0).sum() if not df.empty else 0.0)
    return f"{known} + n/a for {unknown} call{'s' * (unknown != 1)} with no known price" if unknown else known


def write(folder: Path, df: pd.DataFrame, summary: pd.DataFrame, plots: list[Path], command: str,
          config_text: str, failed_jobs: list[str], warnings: list[str],
          extra_sections: list[tuple[str, str]] = (), about: list[str] = (), answer_notes: dict | None = None) -> Path:
    """Write folder/report.md. `about`: lines on what ran (run id, sweep); `extra_sections`: (title, markdown)."""
    counts = df.status.value_counts() if not df.empty else pd.Series(dtype=int)
    labels = labels_for(df)
    lines = [f"# Comparison: {folder.name}", ""]
    calls = f"{len(df)} call{'' if len(df) == 1 else 's'}"
    lines.append(f"{calls}: {counts.get('ok', 0)} ok, {counts.get('error', 0)} error, "
                 f"{counts.get('skipped', 0)} skipped; spent {spent_text(df)}.")
    lines += [""] + [f"- {line}" for line in about] + ([""] if about else [])
    lines += [fenced(command), ""]
    for warning in warnings:
        lines += [f"> **Warning:** {warning}", ""]
    lines += ["## Summary", "", summary_table(summary, labels) if not summary.empty else "*no calls*", ""]
    if not summary.empty and summary.timing_from_cache.fillna(0).any():
        lines += [CACHED_TIMING_NOTE, ""]
    if not summary.empty and summary.unpriced.fillna(0).any():
        lines += ["*n/a*: calls of a model with no known price are left out of the dollars (unknown, not $0).", ""]
    if not df.empty:
        lines += ["## Cost by model and task", "", cost_table(df, labels), "",
                  "Cost at list price; *spent* is what this run paid (cache hits cost nothing). *Per 1k items*: "
                  "the mean cost of running one item once (all its steps), times 1,000. *tok/s*: output tokens "
                  "per second of call time, over calls the model answered (not cache hits; for a cell answered "
                  "wholly from the cache, over its original calls).", ""]
    spread = spread_table(summary, labels) if not summary.empty else None
    if spread:
        lines += ["## Spread of repeated answers", "", spread, ""]
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem.replace('_', ' ')}]({p.name})" + "\n" for p in plots]
    for title, body in extra_sections:
        lines += [f"## {title}", "", body, ""]
    if not df.empty:
        lines += ["## Answers side by side", "", answers_section(df, labels, answer_notes, folder), ""]
        transcripts = transcripts_section(df)
        if transcripts:
            lines += ["## Transcripts", "", transcripts, ""]
    errors = errors_section(df, failed_jobs, labels)
    if errors:
        lines += ["## Errors", "", errors, ""]
    lines += ["## Config", "", "<details><summary>config of the first job</summary>", "",
              fenced(config_text.strip(), "yaml"), "", "</details>", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
