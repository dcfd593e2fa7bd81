"""Dry run (`dry_run=true`): what a job would send and what it would cost, with no model call.

A job runs the task's own code for each item, as a real run does (`prepare()`, then `run()`), with a
session that keeps the messages of the cell's first call and answers it with nothing, so a multi-step
task stops there. The pages a task scrapes are fetched and counted, and a cell that could not be
estimated (a page that cannot be read) is a row with its reason in `error`. Input tokens are counted
with tiktoken, every answer is assumed `max_tokens` long (an upper bound), and priced at list price with
runner.calling.costs (at the batch price when model.batch=true). It prints each cell and the job's total and
writes them to the job's estimate.csv.
At the end of a run or sweep, `combine` writes the combined estimate.csv at the root, prints the grand total and
the cells that could not be estimated, and exits 1 if there are any. No SDK client is built, so nothing
can reach a model.
"""
from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from runner import money
from runner.calling.costs import call_cost
from runner.calls import Response, Usage
from runner.folders import JOB_ERROR_FILE, job_folders, job_order
from runner.providers import provider_for
from runner.settings import RunSettings
from runner.tasks import task_for
from runner.tasks.base import Cell, Task
from runner.tokens import APPROXIMATE_ENCODING, count_messages, encoding_name

ESTIMATE_FILE = "estimate.csv"
COLUMNS = ["run_id", "job", "model", "provider", "model_id", "task", "prompt", "temperature", "item", "repeat",
           "input_tokens", "output_tokens", "tokens_source", "cost_usd", "error", "note"]
MULTI_STEP_NOTE = "first call only: this task makes further calls per cell that depend on the answers"


@dataclass
class DryRunSession:
    """The session a task runs with in a dry run: it keeps the messages of each cell's first call, or why
    the cell could not run, and calls nothing."""

    root: Path | None = None  # the run's or sweep's folder: page snapshots land there, as in a real run
    first_call: dict[int, list[dict]] = field(default_factory=dict)  # by item
    failed: dict[int, str] = field(default_factory=dict)  # by item

    async def call(self, cell: Cell, messages: list[dict], **_) -> Response:
        self.first_call.setdefault(cell.index, messages)
        return Response(error="dry run: no model is called", error_kind="skipped")

    def fail(self, cell: Cell, reason: str, **_) -> None:
        self.failed.setdefault(cell.index, reason)

    async def run(self, task: Task, cells: list[Cell]) -> None:
        """The task's own prepare() and run() for one cell of each item (repeats send the same messages)."""
        await task.prepare(self)
        for cell in cells:
            if cell.index in self.first_call or cell.index in self.failed:
                continue
            try:
                await task.run(cell, self)
            except Exception as exc:  # noqa: BLE001 - as in a real run, a task bug fails its cell only
                self.fail(cell, f"{type(exc).__name__}: {exc}")
            if cell.index not in self.first_call:
                self.failed.setdefault(cell.index, "the task made no call for this item")


def _key_note(run: RunSettings) -> str:
    """What a real run would do without the model's key (building the provider makes no SDK client)."""
    missing = provider_for(run.model).missing_key()
    return f"a real run would skip this model: {missing}" if missing else ""

def estimate_rows(run: RunSettings, run_id: str = "", job: str = "", root: Path | None = None) -> list[dict]:
    """One estimate row per cell of the job."""
    task: Task = task_for(run)
    session = DryRunSession(root=root)
    cells = task.cells()
    asyncio.run(session.run(task, cells))
    multi_step = task.multi_step
    key_note = _key_note(run)
    counted: dict[int, tuple[int, str]] = {}  # repeats of an item send the same messages
    rows = []
    for cell in cells:
        row = dict(
            run_id=run_id, job=job, model=run.model.name, provider=run.model.provider, model_id=run.model.id,
            task=run.task.name, prompt=run.prompt.name, temperature=run.temperature, item=cell.label,
            repeat=cell.repeat, input_tokens="", output_tokens="", tokens_source="", cost_usd="", error="",
            note=key_note)
        if cell.index in session.failed:
            rows.append({**row, "error": session.failed[cell.index]})
            continue
        if cell.index not in counted:
            counted[cell.index] = count_messages(session.first_call[cell.index], run.model.id, approximate=True)
        input_tokens, source = counted[cell.index]
        cost = call_cost(run.model, Usage(input_tokens, run.max_tokens, 0, source), batch=run.model.batch)
        notes = [MULTI_STEP_NOTE if multi_step else "", key_note]
        rows.append({**row, "input_tokens": input_tokens, "output_tokens": run.max_tokens, "tokens_source": source,
                     "cost_usd": "" if cost is None else money.exact(cost),
                     "note": "; ".join(n for n in notes if n)})
    return rows


def counting_note(run: RunSettings, source: str) -> str:
    own = encoding_name(run.model.id)
    if source != "tiktoken":
        return "input tokens estimated at about 4 characters a token (tiktoken's files are unavailable)"
    if own:
        return f"input tokens counted with tiktoken ({own}, {run.model.id}'s own encoding)"
    return (f"input tokens counted with tiktoken ({APPROXIMATE_ENCODING}), an approximation for "
            f"{run.model.provider} models")


def estimated(rows: list[dict]) -> list[dict]:
    return [row for row in rows if not row.get("error")]


def totals(rows: list[dict]) -> tuple[int, int, Decimal, int]:
    """(input tokens, output tokens, dollars over the priced calls, calls with no known price), over the
    cells that could be estimated."""
    rows = estimated(rows)
    costs = [row["cost_usd"] for row in rows]
    known = sum((Decimal(c) for c in costs if c not in ("", None)), Decimal(0))
    return (sum(int(r["input_tokens"]) for r in rows), sum(int(r["output_tokens"]) for r in rows), known,
            sum(c in ("", None) for c in costs))


def total_text(rows: list[dict]) -> str:
    input_tokens, output_tokens, cost, unpriced = totals(rows)
    calls = len(estimated(rows))
    text = f"{calls} call(s), {input_tokens} input tokens, {output_tokens} output tokens, {money.exact_dollars(cost)}"
    text += f" (+ {unpriced} call(s) with no known price)" if unpriced else ""
    return text + (f" (+ {len(rows) - calls} cell(s) that could not be estimated)" if len(rows) > calls else "")


def estimate_job(run: RunSettings, folder: Path, run_id: str, job: str, root: Path | None = None) -> list[dict]:
    """Estimate one job: print it per cell and in total, write the job's estimate.csv."""
    rows = estimate_rows(run, run_id, job, root)
    write(folder / ESTIMATE_FILE, rows)
    head = (f"dry run, no model called: {run.model.name} ({run.model.provider}/{run.model.id}), task "
            f"{run.task.name}, prompt {run.prompt.name}, temperature {run.temperature:g}")
    lines = [head, f"  {'item':<32} {'repeat':>6} {'input tokens':>12} {'output tokens':>13} {'cost':>14}"]
    for row in rows:
        if row.get("error"):
            lines.append(f"  {row['item'][:32]:<32} {row['repeat']:>6} could not be estimated: {row['error']}")
            continue
        cost = Decimal(row["cost_usd"]) if row["cost_usd"] != "" else None
        lines.append(f"  {row['item'][:32]:<32} {row['repeat']:>6} {row['input_tokens']:>12} "
                     f"{row['output_tokens']:>13} {money.exact_dollars(cost):>14}"
                     + (f"  ({row['note']})" if row["note"] else ""))
    lines.append(f"  job total: {total_text(rows)}")
    if estimated(rows):
        lines.append(f"  {counting_note(run, estimated(rows)[0]['tokens_source'])}; output tokens assume every "
                     f"answer is max_tokens={run.max_tokens} long (an upper bound); cached input and cache hits "
                     f"not counted")
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
    return sorted(folder.glob(f"*/{ESTIMATE_FILE}"), key=lambda path: job_order(path.parent))


def is_dry_run(folder: Path) -> bool:
    """A folder whose jobs estimated instead of calling (no job wrote results)."""
    return bool(job_estimates(folder)) and not any(
        (job / "results.jsonl").exists() for job in job_folders(folder))


def combine(folder: Path) -> int:
    """Combine the jobs' estimates at the root, print the total per model and overall; the exit code."""
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
    failed = {(row["item"], row["error"]): None for row in rows if row.get("error")}  # each reason once
    if failed:
        lines.append(f"  {sum(bool(row.get('error')) for row in rows)} cell(s) could not be estimated "
                     f"(estimate.csv's error column):")
        lines += [f"    {error}" if error.startswith(item) else f"    {item}: {error}" for item, error in failed]
    for job in crashed:
        lines.append(f"  job {job} failed: see {folder / job / JOB_ERROR_FILE}")
    lines.append(f"  -> {folder / ESTIMATE_FILE}")
    print("\n".join(lines), flush=True)
    return 1 if crashed or failed else 0
