"""Dry run (`dry_run=true`): what a job would send and what it would cost, with no model call.

A job builds its cells and messages exactly as a real run does (the task's `prepare()` runs, so the
pages a task scrapes are fetched and counted), counts input tokens with tiktoken, assumes every answer
is `max_tokens` long (an upper bound), and prices that at list price with `runner.costs`. It prints
each cell and the job's total and writes them to the job's estimate.csv. At the end of a run or sweep,
`finish` writes the combined estimate.csv at the root and prints the grand total. No SDK client is built,
so nothing can reach a model.
"""
from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from runner.costs import call_cost
from runner.providers.base import Response, Usage
from runner.settings import RunSettings
from runner.tasks import task_for
from runner.tasks.base import Cell, Task
from runner.tokens import APPROXIMATE_ENCODING, count_messages, encoding_name

ESTIMATE_FILE = "estimate.csv"
COLUMNS = ["run_id", "job", "model", "provider", "model_id", "task", "prompt", "temperature", "item", "repeat",
           "input_tokens", "output_tokens", "tokens_source", "cost_usd", "note"]
MULTI_STEP_NOTE = "first call only: this task makes further calls per cell that depend on the answers"


@dataclass
class DryRunSession:
    """The session a task's prepare() gets in a dry run: it keeps why a cell could not run, calls nothing."""

    root: Path | None = None  # the run's or sweep's folder: page snapshots land there, as in a real run
    notes: dict[tuple[int, int], str] = field(default_factory=dict)

    async def call(self, cell: Cell, messages: list[dict], **_) -> Response:
        return Response(error="dry run: no model is called", error_kind="skipped")

    def fail(self, cell: Cell, reason: str, **_) -> None:
        self.notes[(cell.index, cell.repeat)] = reason


def usd(value: Decimal | float | None) -> str:
    """Dollars to the last digit the price gives ($0.0004208), not rounded away."""
    return "n/a (no known price)" if value is None else f"${format_exact(value)}"


def _key_note(run: RunSettings) -> str:
    """What a real run would do without the model's key (building the provider makes no SDK client)."""
    from runner.providers import provider_for
    from runner.providers.base import MissingKey

    try:
        provider_for(run.model).check_key()
    except MissingKey as exc:
        return f"a real run would skip this model: {exc}"
    return ""


def estimate_rows(run: RunSettings, run_id: str = "", job: str = "", root: Path | None = None) -> list[dict]:
    """One estimate row per cell of the job."""
    task: Task = task_for(run)
    session = DryRunSession(root=root)
    asyncio.run(task.prepare(session))
    multi_step = task.multi_step
    key_note = _key_note(run)
    counted: dict[int, tuple[int, str]] = {}  # repeats of an item send the same messages
    rows = []
    for cell in task.cells():
        if cell.index not in counted:
            counted[cell.index] = count_messages(task.messages(cell), run.model.id, approximate=True)
        input_tokens, source = counted[cell.index]
        cost = call_cost(run.model, Usage(input_tokens, run.max_tokens, 0, source))
        notes = [session.notes.get((cell.index, cell.repeat), ""), MULTI_STEP_NOTE if multi_step else "", key_note]
        rows.append(dict(
            run_id=run_id, job=job, model=run.model.name, provider=run.model.provider, model_id=run.model.id,
            task=run.task.name, prompt=run.prompt.name, temperature=run.temperature, item=cell.label,
            repeat=cell.repeat, input_tokens=input_tokens, output_tokens=run.max_tokens, tokens_source=source,
            cost_usd="" if cost is None else format_exact(cost), note="; ".join(n for n in notes if n)))
    return rows


def format_exact(value: Decimal | float) -> str:
    return format(value if isinstance(value, Decimal) else Decimal(repr(value)), "f")


def counting_note(run: RunSettings, source: str) -> str:
    own = encoding_name(run.model.id)
    if source != "tiktoken":
        return "input tokens estimated at about 4 characters a token (tiktoken's files are unavailable)"
    if own:
        return f"input tokens counted with tiktoken ({own}, {run.model.id}'s own encoding)"
    return (f"input tokens counted with tiktoken ({APPROXIMATE_ENCODING}), an approximation for "
            f"{run.model.provider} models")


def totals(rows: list[dict]) -> tuple[int, int, Decimal, int]:
    """(input tokens, output tokens, dollars over the priced calls, calls with no known price)."""
    costs = [row["cost_usd"] for row in rows]
    known = sum((Decimal(c) for c in costs if c not in ("", None)), Decimal(0))
    return (sum(int(r["input_tokens"]) for r in rows), sum(int(r["output_tokens"]) for r in rows), known,
            sum(c in ("", None) for c in costs))


def total_text(rows: list[dict]) -> str:
    input_tokens, output_tokens, cost, unpriced = totals(rows)
    text = f"{len(rows)} call(s), {input_tokens} input tokens, {output_tokens} output tokens, {usd(cost)}"
    return text + (f" (+ {unpriced} call(s) with no known price)" if unpriced else "")


def estimate_job(run: RunSettings, folder: Path, run_id: str, job: str, root: Path | None = None) -> list[dict]:
    """Estimate one job: print it per cell and in total, write the job's estimate.csv."""
    rows = estimate_rows(run, run_id, job, root)
    write(folder / ESTIMATE_FILE, rows)
    head = (f"dry run, no model called: {run.model.name} ({run.model.provider}/{run.model.id}), task "
            f"{run.task.name}, prompt {run.prompt.name}, temperature {run.temperature:g}")
    lines = [head, f"  {'item':<32} {'repeat':>6} {'input tokens':>12} {'output tokens':>13} {'cost':>14}"]
    for row in rows:
        cost = Decimal(row["cost_usd"]) if row["cost_usd"] != "" else None
        lines.append(f"  {row['item'][:32]:<32} {row['repeat']:>6} {row['input_tokens']:>12} "
                     f"{row['output_tokens']:>13} {usd(cost):>14}" + (f"  ({row['note']})" if row["note"] else ""))
    lines.append(f"  job total: {total_text(rows)}")
    if rows:
        lines.append(f"  {counting_note(run, rows[0]['tokens_source'])}; output tokens assume every answer is "
                     f"max_tokens={run.max_tokens} long (an upper bound); cached input and cache hits not counted")
    print("\n".join(lines), flush=True)
    return rows


def write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def job_estimates(folder: Path) -> list[Path]:
    """The estimate.csv of a single run's folder, or of each job folder of a sweep."""
    if (folder / ESTIMATE_FILE).exists() and not any(folder.glob(f"*/{ESTIMATE_FILE}")):
        return [folder / ESTIMATE_FILE]
    return sorted(folder.glob(f"*/{ESTIMATE_FILE}"),
                  key=lambda p: (not p.parent.name.isdigit(), int(p.parent.name) if p.parent.name.isdigit() else 0))


def is_dry_run(folder: Path) -> bool:
    """A folder whose jobs estimated instead of calling (no job wrote results)."""
    from runner.folders import job_folders

    return bool(job_estimates(folder)) and not any(
        (job / "results.jsonl").exists() for job in job_folders(folder))


def finish(folder: Path) -> int:
    """Combine the jobs' estimates at the root, print the total per model and overall; the exit code."""
    from runner.folders import JOB_ERROR_FILE

    rows = [row for path in job_estimates(folder) for row in read(path)]
    write(folder / ESTIMATE_FILE, rows)
    crashed = sorted(p.parent.name for p in folder.glob(f"*/{JOB_ERROR_FILE}"))
    lines = ["dry run estimate (no model called):"]
    models: dict[str, list[dict]] = {}
    for row in rows:
        models.setdefault(row["model"], []).append(row)
    for model, model_rows in models.items():
        lines.append(f"  {model}: {total_text(model_rows)}")
        if totals(model_rows)[3]:
            row = model_rows[0]
            lines.append(f"  warning: no known price for {model} ({row['provider']}/{row['model_id']}): its cost "
                         f"is left out; set model.price in its config to count it")
    lines.append(f"  total: {total_text(rows)}; output tokens assumed at max_tokens (an upper bound)")
    for job in crashed:
        lines.append(f"  job {job} failed: see {folder / job / JOB_ERROR_FILE}")
    lines.append(f"  -> {folder / ESTIMATE_FILE}")
    print("\n".join(lines), flush=True)
    return 1 if crashed else 0
