"""Dry run (`dry_run=true`): what a job would send and what it would cost, with no model call.

A job runs the task's own code for each item, as a real run does (`prepare()`, then `run()`), with a
session that keeps the messages of the cell's first call and answers it with nothing, so a multi-step
task stops there. The pages a task scrapes are fetched and counted, and a cell that could not be
estimated (a page that cannot be read) is a row with its reason in `error`. Input tokens are counted
with tiktoken, every answer is assumed `max_tokens` long (an upper bound), and priced at list price with
runner.calling.costs (at the batch price when model.batch=true). Judging is paid too: each judge scorer
adds one call per answer it would score and per judge (rows whose `step` starts with `judge`, priced at the
judge model's list price, the model its own config names; its prompt holds the rubric, the question and the
answer, assumed max_tokens long, and its verdict is assumed judge.max_tokens long). A pairwise scorer's
calls depend on how many cells the sweep has: each job writes one share row per answer and judge (step
`judge-NAME@pairs`), and `combine` counts the calls: n cells that answered an item make n(n-1) calls per
judge (n(n-1)/2 pairs, each in both orders), with both answers assumed max_tokens long.
It prints each cell and the job's total and writes them to the job's estimate.csv.
At the end of a run or sweep, `combine` writes the combined estimate.csv at the root, prints the totals per
model, answering and judging apart, the grand total against `budget_usd`, and the cells that could not be
estimated, and exits 1 if there are any. A judge without its key stops a real run before any call
(runner.calling.preflight): its rows say so, and `combine` ends with the real run's line and exit code 2.
Images (task.images) count by their provider's rule for their size, an estimate (runner.calling.vision); a
model that takes no images is said to be skipped, as a real run would skip it.
No SDK client is built, so nothing can reach a model.
"""
from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from runner import money, stopping, yaml_files
from runner.calling import power, vision
from runner.calling.asking import asking
from runner.calling.costs import call_cost
from runner.calls import Response, Usage, text_of
from runner.folders import JOB_ERROR_FILE, job_folders, job_order
from runner.providers import provider_for
from runner.scorers import JUDGE_PREFIX, Scorer, judge_models, judge_step, scorers_for
from runner.scorers import judge as judge_prompt
from runner.scorers import pairwise as pairwise_prompt
from runner.settings import ModelSettings, RunSettings, StatsSettings, stats_settings
from runner.tasks import task_for
from runner.tasks.base import Cell, Task
from runner.tokens import APPROXIMATE_ENCODING, count_messages, encoding_name

ESTIMATE_FILE = "estimate.csv"
COLUMNS = ["run_id", "job", "model", "provider", "model_id", "task", "prompt", "temperature", "item", "repeat",
           "step", "input_tokens", "output_tokens", "tokens_source", "cost_usd", "error", "note"]
MULTI_STEP_NOTE = Task.estimate_note  # a multi-step task's note, unless the task says more (tools)
SKIP_NOTE = "a real run would skip this call: "  # then why (a model that takes no images, or no tools)
IMAGE_NOTE = "input tokens include {tokens} for images, estimated from their sizes (the provider counts its own)"
JUDGE_NOTE = "judging {model}'s answer, assumed max_tokens long"
JUDGE_STEP_NOTE = "one answer per cell assumed for a scorer on step {step!r}"
PAIRS = "pairs"  # the step a pairwise scorer's share rows judge: judge-NAME@pairs
PAIR_NOTE = "pairwise: {model}'s answer against each other cell's, both orders, both answers assumed max_tokens long"


@dataclass
class DryRunSession:
    """The session a task runs with in a dry run: it keeps the messages of each cell's first call, or why
    the cell could not run, and calls nothing."""

    root: Path | None = None  # the run's or sweep's folder: page snapshots land there, as in a real run
    first_call: dict[int, list[dict]] = field(default_factory=dict)  # by item
    failed: dict[int, str] = field(default_factory=dict)  # by item
    tools: dict[int, tuple] = field(default_factory=dict)  # by item: the tools its first call offers

    async def call(self, cell: Cell, messages: list[dict], *, tools: tuple = (), **_) -> Response:
        self.first_call.setdefault(cell.index, messages)
        self.tools.setdefault(cell.index, tools)
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


JUDGE_KEY_NOTE = "a real run would stop before any call (exit 2): "  # then the judge and its missing key


def _key_note(model: ModelSettings) -> str:
    """What a real run would do without the model's key (building the provider makes no SDK client)."""
    missing = provider_for(model).missing_key()
    return f"a real run would skip this model: {missing}" if missing else ""


def _judge_key_note(name: str, model: ModelSettings) -> str:
    """A judge without its key is no skip: preflight stops the real run (runner.calling.preflight)."""
    missing = provider_for(model).missing_key()
    return f"{JUDGE_KEY_NOTE}judge {name} ({model.provider}/{model.id}): {missing}" if missing else ""


def estimate_rows(run: RunSettings, run_id: str = "", job: str = "", root: Path | None = None) -> list[dict]:
    """One estimate row per cell of the job."""
    task: Task = task_for(run)
    session = DryRunSession(root=root)
    cells = list(task.cells())  # a dry run's rows are few enough to hold
    stopping.run(session.run(task, cells))
    multi_step = task.multi_step
    key_note = _key_note(run.model)
    provider = provider_for(run.model)  # builds no SDK client: asked only what the model takes
    ask = asking(run.model, run.temperature, run.max_tokens)
    cap = ask.max_tokens  # the cap sent: room for thinking too
    counted: dict[int, tuple[int, str, int]] = {}  # repeats of an item send the same messages
    rows = []
    for cell in cells:
        row = dict(
            run_id=run_id, job=job, model=run.model.name, provider=run.model.provider, model_id=run.model.id,
            task=run.task.name, prompt=run.prompt.name, temperature=run.temperature, item=cell.label,
            repeat=cell.repeat, step="", input_tokens="", output_tokens="", tokens_source="", cost_usd="", error="",
            note=key_note)
        if cell.index in session.failed:
            rows.append({**row, "error": session.failed[cell.index]})
            continue
        messages = session.first_call[cell.index]
        if cell.index not in counted:
            text_tokens, source = count_messages(_with_tools(messages, session.tools.get(cell.index)),
                                                 run.model.id, approximate=True)
            pictures = vision.image_tokens(run.model, messages)
            counted[cell.index] = (text_tokens + pictures, source, pictures)
        input_tokens, source, pictures = counted[cell.index]
        cost = call_cost(run.model, Usage(input_tokens, cap, 0, source), batch=run.model.batch)
        refused = (provider.refuses_tools() if session.tools.get(cell.index) else None) \
            or vision.refusal(run.model, ask.capabilities, messages)
        notes = [task.estimate_note if multi_step else "", f"{SKIP_NOTE}{refused}" if refused else "",
                 IMAGE_NOTE.format(tokens=pictures) if pictures else "", _thinking_note(cap, run.max_tokens),
                 key_note]  # last: what a real run would do with this row
        rows.append({**row, "input_tokens": input_tokens, "output_tokens": cap, "tokens_source": source,
                     "cost_usd": "" if cost is None else money.exact(cost),
                     "note": "; ".join(n for n in notes if n)})
    scorers = [s for s in scorers_for(run) if s.is_judge or s.is_pairwise]
    if scorers:
        rows += judging_rows(run, scorers, judge_models(scorers), session, cells, rows)
    return rows


def _with_tools(messages: list[dict], tools: tuple | None) -> list[dict]:
    """The messages, and the tools offered as one more message of their JSON: providers send the tools' names,
    descriptions and schemas to the model, and bill them as input."""
    if not tools:
        return messages
    return [*messages, {"role": "system", "content": json.dumps([tool.wire() for tool in tools])}]


def _thinking_note(cap: int, max_tokens: int) -> str:
    return f"output cap {cap} = max_tokens {max_tokens} + {cap - max_tokens} for thinking" if cap > max_tokens else ""


def judging_rows(run: RunSettings, scorers: list[Scorer], judges: dict[str, ModelSettings],
                 session: DryRunSession, cells: list[Cell], answering: list[dict]) -> list[dict]:
    """One row per judging call a real run would make: per judge scorer, each answer it scores (an item's
    final answer per repeat, or the call of the step it names) times its judges. The judge sees the rubric,
    the question and the answer: the answer counts max_tokens input tokens, the verdict judge.max_tokens
    output tokens, at judge.temperature (how the engine asks every judge, whatever the cell's settings)."""
    rows = []
    counted: dict[tuple, tuple[int, str]] = {}  # (scorer, judge, item): repeats send the same prompt
    verdict_tokens = run.judge.max_tokens
    for scorer in scorers:
        for name in scorer.judges:
            model = judges[name]
            key_note = _judge_key_note(name, model)
            for cell, answered in zip(cells, answering):
                if answered.get("error"):
                    continue  # no answer estimated, nothing to judge
                key = (scorer.name, name, cell.index)
                if key not in counted:
                    question = next((text_of(m.get("content")) for m in reversed(session.first_call[cell.index])
                                     if m.get("role") == "user"), "")
                    if scorer.is_pairwise:  # two answers shown
                        shown = pairwise_prompt.messages(scorer.rubric, cell.item, question, "", "")
                    else:
                        shown = judge_prompt.messages(scorer.rubric, cell.item, question, "")
                    prompt, source = count_messages(shown, model.id, approximate=True)
                    counted[key] = (prompt + run.max_tokens * (2 if scorer.is_pairwise else 1), source)
                input_tokens, source = counted[key]
                ask = asking(model, run.judge.temperature, verdict_tokens)
                cap = ask.max_tokens  # the verdict's tokens and a reasoning judge's room for thinking
                cost = call_cost(model, Usage(input_tokens, cap, 0, source))  # judges are called directly
                notes = [(PAIR_NOTE if scorer.is_pairwise else JUDGE_NOTE).format(model=run.model.name),
                         JUDGE_STEP_NOTE.format(step=scorer.step) if scorer.step else "",
                         _thinking_note(cap, verdict_tokens),
                         key_note]  # last: judge_key_problems reads the real run's words from here to the end
                step = judge_step(scorer.name, PAIRS if scorer.is_pairwise else scorer.step or "")
                rows.append({**answered, "model": name, "provider": model.provider, "model_id": model.id,
                             "temperature": ask.recorded_temperature, "step": step,
                             "input_tokens": input_tokens, "output_tokens": cap, "tokens_source": source,
                             "cost_usd": "" if cost is None else money.exact(cost),
                             "note": "; ".join(n for n in notes if n)})
    return rows


def is_judging(row: dict) -> bool:
    return str(row.get("step") or "").startswith(JUDGE_PREFIX)


def is_pair_share(row: dict) -> bool:
    """A job's row for a pairwise scorer: not yet a call, until the sweep's cells are counted."""
    return is_judging(row) and str(row.get("step") or "").endswith("@" + PAIRS)


def pair_calls(rows: list[dict]) -> list[dict]:
    """The rows with each pairwise share row made into the calls it stands for: n cells that answered an item
    (and repeat) make n(n-1) calls per pairwise scorer and judge, each cell's row standing for n-1 of them (a
    single run, one cell, makes none)."""
    def key(row: dict) -> tuple:
        return row["step"], row["model"], row["task"], row["item"], row["repeat"]

    cells = Counter(key(row) for row in rows if is_pair_share(row))
    return [copy for row in rows for copy in ([row] * (cells[key(row)] - 1) if is_pair_share(row) else [row])]


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
    shares = [row for row in rows if is_pair_share(row)]
    rows = [row for row in rows if not is_pair_share(row)]  # the job's own calls
    judging = [row for row in rows if is_judging(row)]
    for row in rows:
        if row is (judging[0] if judging else None):
            lines.append(f"  judging: {'judge and step':<22} {'item':<20} {'repeat':>6} {'input tokens':>12} "
                         f"{'output tokens':>13} {'cost':>14}")
        if row.get("error"):
            lines.append(f"  {row['item'][:32]:<32} {row['repeat']:>6} could not be estimated: {row['error']}")
            continue
        cost = Decimal(row["cost_usd"]) if row["cost_usd"] != "" else None
        where = f"{row['item'][:32]:<32}"
        if is_judging(row):
            where = f"  {row['model'] + ' ' + row['step']:<29} {row['item'][:20]:<20}"
        lines.append(f"  {where} {row['repeat']:>6} {row['input_tokens']:>12} "
                     f"{row['output_tokens']:>13} {money.exact_dollars(cost):>14}"
                     + (f"  ({row['note']})" if row["note"] else ""))
    lines.append(f"  job total: {total_text(rows)}")
    if judging:
        lines.append(f"    answering: {total_text([r for r in rows if not is_judging(r)])}; "
                     f"judging: {total_text(judging)}")
    if estimated(rows):
        verdicts = f", every verdict judge.max_tokens={run.judge.max_tokens} long" if judging or shares else ""
        lines.append(f"  {counting_note(run, estimated(rows)[0]['tokens_source'])}; output tokens assume every "
                     f"answer is max_tokens={run.max_tokens} long{verdicts} (an upper bound; a reasoning "
                     f"model's room for thinking is added); cached input and cache hits not counted")
    if shares:
        lines.append(f"  pairwise judging ({', '.join(sorted({r['model'] + ' ' + r['step'] for r in shares}))}): "
                     f"counted over the sweep's cells in the combined estimate")
    print("\n".join(lines), flush=True)
    return rows + shares


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


def _first_config(folder: Path) -> dict:
    for path in sorted(folder.glob(".hydra/config.yaml")) + sorted(folder.glob("*/.hydra/config.yaml")):
        config = yaml_files.parse(path.read_text(encoding="utf-8")) or {}
        return config if isinstance(config, dict) else {}
    return {}


def budget_of(folder: Path) -> float | None:
    """The run's budget_usd, from its first job's saved config (every job of a sweep shares one budget)."""
    value = _first_config(folder).get("budget_usd")
    return None if value is None else float(value)


def stats_of(folder: Path) -> StatsSettings:
    """The run's `stats` settings, from its first job's saved config (checked by the job before it ran)."""
    return stats_settings(_first_config(folder).get("stats"))


def detectable_lines(rows: list[dict], stats: StatsSettings) -> list[str]:
    """Per task, before any call: the smallest difference between two cells' mean scores its items can
    detect (at stats.alpha with stats.power), for the spread stats.assumed_sd, alone and among every pair the
    report will adjust together; and the items stats.detect needs."""
    tasks: dict[str, tuple[set, set]] = {}
    for row in rows:
        if not is_judging(row):
            items, cells = tasks.setdefault(row["task"], (set(), set()))
            items.add(row["item"])
            cells.add(row["job"] or (row["model"], row["prompt"], row["temperature"]))
    family = sum(len(cells) * (len(cells) - 1) // 2 for _, cells in tasks.values())
    sd, confidence = stats.assumed_sd, f"{1 - stats.alpha:.0%} confidence with {stats.power:.0%} power"
    lines = []
    for task, (items, cells) in sorted(tasks.items()):
        alone = power.detectable_difference(len(items), sd, stats.alpha, stats.power)
        pairs = len(cells) * (len(cells) - 1) // 2
        head = f"  detectable difference, task {task} ({len(items)} items, {len(cells)} cell(s)): "
        if alone is None:
            lines.append(head + "too few items to tell two cells apart (at least 2 are needed)")
            continue
        text = head + f"{power.shown(alone)} between two cells' mean scores at {confidence}"
        if family > 1:
            among = power.detectable_difference(len(items), sd, stats.alpha / family, stats.power)
            text += f", {power.shown(among)} for a pair among the {family} the report adjusts together"
        text += f" (assuming per-item differences spread with sd {sd:g}: stats.assumed_sd)"
        if stats.detect:
            needed = power.items_needed(stats.detect, sd, stats.alpha, stats.power)
            text += f"; stats.detect={stats.detect:g} needs about {needed} items" if needed else \
                f"; stats.detect={stats.detect:g} needs more items than can be counted"
            if needed and family > 1:
                text += f" ({power.items_needed(stats.detect, sd, stats.alpha / family, stats.power)} among them)"
        lines.append(text + (f" [{pairs} pair(s) in this task]" if pairs > 1 and len(tasks) > 1 else ""))
    return lines


def combine(folder: Path) -> int:
    """Combine the jobs' estimates at the root, print the total per model and overall; the exit code."""
    rows = pair_calls([row for path in job_estimates(folder) for row in read(path)])
    write(folder / ESTIMATE_FILE, rows)
    crashed = sorted(p.parent.name for p in folder.glob(f"*/{JOB_ERROR_FILE}"))
    lines = ["dry run estimate (no model called):"]
    judging = [row for row in rows if is_judging(row)]
    for what, part in (("", [row for row in rows if not is_judging(row)]), ("judging by ", judging)):
        models: dict[str, list[dict]] = {}
        for row in part:
            models.setdefault(row["model"], []).append(row)
        for model, model_rows in models.items():
            lines.append(f"  {what}{model}: {total_text(model_rows)}")
            if totals(model_rows)[3]:
                row = model_rows[0]
                lines.append(f"  warning: no known price for {model} ({row['provider']}/{row['model_id']}): its "
                             f"cost is left out; set model.price in its config to count it")
    if judging:
        lines.append(f"  judging: {total_text(judging)}")
    lines.append(f"  total: {total_text(rows)}; output tokens assumed at max_tokens (an upper bound)")
    lines += detectable_lines(rows, stats_of(folder))
    budget = budget_of(folder)
    if budget is not None:
        cost = totals(rows)[2]
        lines.append(f"  budget_usd={budget:g}: " + (
            f"the estimate is within it ({money.exact_dollars(cost)} of {money.exact_dollars(Decimal(str(budget)))})"
            if cost <= Decimal(str(budget)) else
            f"the estimate ({money.exact_dollars(cost)}) is over it: a real run would stop starting calls "
            f"once it had spent ${budget:g}"))
    failed = {(row["item"], row["error"]): None for row in rows if row.get("error")}  # each reason once
    if failed:
        lines.append(f"  {sum(bool(row.get('error')) for row in rows)} cell(s) could not be estimated "
                     f"(estimate.csv's error column):")
        lines += [f"    {error}" if error.startswith(item) else f"    {item}: {error}" for item, error in failed]
    for job in crashed:
        lines.append(f"  job {job} failed: see {folder / job / JOB_ERROR_FILE}")
    lines.append(f"  -> {folder / ESTIMATE_FILE}")
    print("\n".join(lines), flush=True)
    stops = judge_key_problems(judging)
    for problem in stops:  # what the real run's checks would say, and its exit code
        print(f"runner: config error: {problem}; or leave it out of the scorer's judges (judges=[...] for the "
              f"tasks' own): a real run would stop before any call (exit 2)", file=sys.stderr)
    return 2 if stops else 1 if crashed or failed else 0


def judge_key_problems(rows: list[dict]) -> list[str]:
    """Each judge without its key, once: `judge NAME (provider/id): KEY is not set`."""
    found = (note.split(JUDGE_KEY_NOTE, 1)[1] for row in rows  # the last of a row's notes
             for note in [str(row.get("note") or "")] if JUDGE_KEY_NOTE in note)
    return list(dict.fromkeys(found))
