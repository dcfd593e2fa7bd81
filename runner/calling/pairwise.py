"""Pairwise judging over a sweep: every two cells' answers to the same item and repeat, shown to each judge
in both orders (A/B, then B/A) so that a judge's preference for a position cancels out.

Pairs need every cell's answers, so this runs once a sweep has answered (at the end of a multirun, before
its comparison is built) or over a finished sweep (`python -m runner.score SWEEP scorer=pairwise`). A cell is
what runner.variant calls one: model, prompt, temperature and the job's other swept keys; two cells pair up
on the same task, item and repeat. The judges' calls go through the engine like every call (cached,
retried, limited, priced, counted in the budget) and are recorded in the sweep's `pairwise/results.jsonl`
as judging rows (step `judge-<scorer>@...`); the verdicts replace the sweep's pairwise.jsonl and .csv.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path

from runner import variant
from runner.calling.costs import call_cost
from runner.calling.engine import JobSession, Tally
from runner.calling.scoring import JUDGING_IN_FLIGHT, answers, final_answers, judge_columns, question_of
from runner.scorers import Scorer, judge_step, pairwise, scorers_for
from runner.scorers.pair_rows import PAIRWISE_FOLDER, TIE, PairRow, remove_pairs, write_pairs
from runner.settings import RunSettings
from runner.tasks import task_for
from runner.tasks.base import Cell

log = logging.getLogger(__name__)
ORDERS = ("AB", "BA")


def cell_name(record: dict) -> str:
    """One cell as text, the same in every run of the sweep: `gpt prompt=default temperature=0.7 max_tokens=64`
    (the model, then what else tells the cell apart; the report shows only the parts cells differ in)."""
    temperature = record.get("temperature")
    shown = f"{float(temperature):g}" if temperature is not None else ""
    return " ".join([str(record.get("model")), f"prompt={record.get('prompt')}", f"temperature={shown}",
                     *variant.parts(str(record.get("variant") or ""))])


def pairwise_scorers(run: RunSettings) -> list[Scorer]:
    return [s for s in scorers_for(run) if s.is_pairwise]


class PairJudging:
    """The judging of one task's pairs through one session."""

    def __init__(self, session: JobSession, cells: dict[tuple, Cell]) -> None:
        self.session = session
        self.cells = cells
        self.gate = asyncio.Semaphore(JUDGING_IN_FLIGHT)

    async def pair(self, scorer: Scorer, a: dict, b: dict) -> list[PairRow]:
        """Both orders of one pair for every judge: 2 rows per judge."""
        return list(await asyncio.gather(*(self._order(scorer, a, b, order, judge)
                                           for judge in scorer.judges for order in ORDERS)))

    async def _order(self, scorer: Scorer, a: dict, b: dict, order: str, judge: str) -> PairRow:
        names = cell_name(a), cell_name(b)
        row = PairRow(run_id=self.session.run_id, scorer=scorer.name, task=str(a.get("task", "")),
                      item=str(a.get("item", "")), repeat=int(a.get("repeat") or 0), cell_a=names[0],
                      cell_b=names[1], order=order, **judge_columns(self.session, judge))
        for record, name in ((a, names[0]), (b, names[1])):
            if record.get("status") != "ok":
                row.status, row.reason = "skipped", f"no answer from {name} (its call was {record.get('status')})"
                return row
        cell = self.cells.get((a.get("item"), a.get("repeat")))
        if cell is None:  # an item no longer in the task's inputs: its fields are unknown
            row.status, row.reason = "error", f"item {a.get('item')!r} is not in task.inputs any more"
            return row
        missing = self.session.opponent_skip_reasons.get(judge)
        if missing:
            row.status, row.reason = "skipped", f"judge {judge}: {missing}"
            return row
        first, second = (a, b) if order == "AB" else (b, a)
        messages = pairwise.messages(scorer.rubric, cell.item, question_of(a), str(first.get("response") or ""),
                                     str(second.get("response") or ""))
        step = judge_step(scorer.name, f"{names[0]} | {names[1]} {order}")
        details = {"scorer": scorer.name, "pair": list(names), "order": order}
        async with self.gate:
            response = await self.session.judge(cell, messages, judge=judge, step=step, details=details,
                                                 schema=pairwise.VERDICT_SCHEMA)
        if response.error_kind == "skipped":
            row.status, row.reason = "skipped", response.error or ""
            return row
        if not response.ok:
            row.status, row.reason = "error", f"the judge's call failed: {response.error}"
            return row
        row.cost_usd = call_cost(self.session.opponents[judge].model, response.usage)
        try:
            row.better, row.reason = pairwise.read_verdict(response.text)
        except ValueError as exc:
            row.status, row.reason = "error", str(exc)
            return row
        shown = (cell_name(first), cell_name(second))
        row.winner = TIE if row.better == "tie" else shown[0] if row.better == "A" else shown[1]
        return row


def _answers_by_task(jobs: list[tuple[Path, RunSettings]]) -> dict[str, dict[tuple, dict[str, dict]]]:
    """{task: {(item, repeat): {cell name: that cell's final answer record}}}, from every job's results.jsonl."""
    found: dict[str, dict[tuple, dict[str, dict]]] = {}
    for folder, _ in jobs:
        for record in final_answers(answers(folder)):
            key = (record.get("item"), record.get("repeat"))
            found.setdefault(str(record.get("task", "")), {}).setdefault(key, {})[cell_name(record)] = record
    return found


async def judge_sweep(root: Path, jobs: list[tuple[Path, RunSettings]]) -> Tally | None:
    """Judge every pair of the sweep's cells with its pairwise scorers and replace pairwise.jsonl/.csv;
    None (and no pairwise file left behind) when the sweep has no pairwise scorer."""
    from runner.calling.job import job_session

    runs = {}  # each task's settings: the first job that ran it (its scorers, cache, budget)
    for _, run in jobs:
        runs.setdefault(run.task.name, run)
    scorers = {task: pairwise_scorers(run) for task, run in runs.items()}
    if not any(scorers.values()):
        remove_pairs(root)
        return None
    by_task = _answers_by_task(jobs)
    rows: list[PairRow] = []
    tally = Tally()
    for task_name, run in runs.items():
        mine = scorers[task_name]
        pairs = [(a, b) for group in by_task.get(task_name, {}).values()
                 for a, b in itertools.combinations([group[n] for n in sorted(group)], 2)]
        if not mine or not pairs:
            continue
        task = task_for(run)
        async with job_session(run, task, root / PAIRWISE_FOLDER, run_id=root.name, job=PAIRWISE_FOLDER, root=root,
                               variant="", scorers=mine) as session:
            for name, provider in session.opponents.items():  # a judge without its key: skipped rows, no call
                reason = provider.missing_key()
                if reason:
                    session.opponent_skip_reasons.setdefault(name, reason)
            judging = PairJudging(session, {(cell.label, cell.repeat): cell for cell in task.cells()})
            done = await asyncio.gather(*(judging.pair(scorer, a, b) for scorer in mine for a, b in pairs))
            rows += [row for pair in done for row in pair]
            tally.merge(session.tally)
    written = write_pairs(root, rows)
    log.info("%d pairwise verdicts -> %s", written, root / "pairwise.csv")
    return tally
