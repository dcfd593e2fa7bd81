"""Scores a job's answers: each scorer on each answer it applies to, judges called through the same engine.

The answers are read back from the job's results.jsonl, so scoring a finished run (`python -m runner.score`)
is the same code as scoring a run that just answered. Judge calls go through the job's session: cached,
retried, limited, priced, counted in the budget, and recorded in results.jsonl with `step` starting with
`judge` (runner.scorers.judge_step). The scores replace the job's scores.jsonl and scores.csv.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from runner.calling.costs import call_cost
from runner.calling.engine import JobSession
from runner.calls import text_of
from runner.records import read_records
from runner.scorers import JUDGE_PREFIX, Scorer, judge, judge_step, tool_use
from runner.scorers.checks import MissingField, verdict
from runner.scorers.rows import NOT_APPLICABLE, ScoreRow, write_scores
from runner.tasks.base import Cell, Task
from runner.tasks.tools import in_tool_loop

log = logging.getLogger(__name__)

JUDGING_IN_FLIGHT = 32  # judge calls started at once; each judge model's own limits still apply


def answers(folder: Path) -> list[dict]:
    """The job's calls that answered something (not judging), the last record of each call."""
    path = folder / "results.jsonl"
    by_call: dict[tuple, dict] = {}
    for record in (read_records(path) if path.exists() else ()):
        if str(record.get("step") or "").startswith(JUDGE_PREFIX):
            continue
        key = tuple(record.get(k) for k in ("model", "variant", "prompt", "temperature", "item", "repeat", "step"))
        by_call.pop(key, None)
        by_call[key] = record
    return list(by_call.values())


def final_answers(records: list[dict]) -> list[dict]:
    """Each item's answer per repeat: the last call of its cell that is no conversation turn (a tool loop's
    turns are no conversation: its last turn is its answer)."""
    last: dict[tuple, dict] = {}
    for record in records:
        if not str(record.get("step") or "").startswith("turn") or in_tool_loop(record.get("details")):
            last[(record.get("model"), record.get("item"), record.get("repeat"))] = record
    return list(last.values())


def cell_tool_calls(records: list[dict]) -> dict[tuple, list[dict]]:
    """Every tool call each cell made, turn by turn: {(model, item, repeat): [call, ...]}."""
    turns: dict[tuple, list[tuple[int, list]]] = {}
    for record in records:
        details = record.get("details")
        if in_tool_loop(details):
            key = (record.get("model"), record.get("item"), record.get("repeat"))
            turns.setdefault(key, []).append((int(details.get("turn") or 0), record.get("tool_calls") or []))
    return {key: [call for _, calls in sorted(found, key=lambda pair: pair[0]) for call in calls]
            for key, found in turns.items()}


def judge_columns(session: JobSession, name: str) -> dict:
    """What a score or pairwise row says of its judge: the config name, the model id it calls and the
    settings every one of its calls is made with (the run's `judge`)."""
    return dict(judge=name, judge_model_id=session.opponents[name].model.id,
                judge_temperature=session.run.judge.temperature, judge_max_tokens=session.run.judge.max_tokens)


def question_of(record: dict) -> str:
    """What the answer answered: the last user message's text (a page task's page text included; a judge is
    shown no image)."""
    return next((text_of(m.get("content")) for m in reversed(record.get("messages") or []) if m.get("role") == "user"),
                "")


class Scoring:
    def __init__(self, scorers: list[Scorer], task: Task, session: JobSession) -> None:
        self.scorers = scorers
        self.session = session
        self.task_name = session.run.task.name
        self.cells = {(cell.label, cell.repeat): cell for cell in task.cells()}
        self.gate = asyncio.Semaphore(JUDGING_IN_FLIGHT)

    def _row(self, record: dict, scorer: Scorer, **values) -> ScoreRow:
        return ScoreRow(run_id=self.session.run_id, job=self.session.job, model=str(record.get("model", "")),
                        task=str(record.get("task", "")), prompt=str(record.get("prompt", "")),
                        temperature=record.get("temperature"), variant=str(record.get("variant") or ""),
                        item=str(record.get("item", "")), repeat=int(record.get("repeat") or 0),
                        step=str(record.get("step") or ""), scorer=scorer.name, **values)

    async def score(self, records: list[dict]) -> list[ScoreRow]:
        final = {id(r) for r in final_answers(records)}
        self.tool_calls = cell_tool_calls(records)
        work = []
        for scorer in self.scorers:
            for record in records:
                if (scorer.step is None and id(record) in final) or scorer.applies_to(str(record.get("step") or "")):
                    work.append(self._one(scorer, record))
        done = await asyncio.gather(*work)
        return [row for rows in done for row in rows]

    async def _one(self, scorer: Scorer, record: dict) -> list[ScoreRow]:
        cell = self.cells.get((record.get("item"), record.get("repeat")))
        if record.get("status") != "ok":
            return [self._row(record, scorer, **self._who(j), status="skipped",
                              reason=f"no answer to score (the call was {record.get('status')}: {record.get('error')})")
                    for j in (scorer.judges or ("",))]
        if cell is None:  # an item no longer in the task's inputs: its fields are unknown
            return [self._row(record, scorer, status="error", **self._who(j),
                              reason=f"item {record.get('item')!r} is not in task.inputs any more")
                    for j in (scorer.judges or ("",))]
        answer = str(record.get("response") or "")
        if not scorer.is_judge:
            try:
                if scorer.is_tool_use:  # the calls of every turn of the cell
                    calls = self.tool_calls.get((record.get("model"), record.get("item"), record.get("repeat")), [])
                    found = tool_use.verdict(scorer, cell.item, calls)
                else:
                    found = verdict(scorer, cell.item, answer)
            except MissingField as exc:
                if scorer.required:  # preflight checked every item; an item that changed since is this row's error
                    return [self._row(record, scorer, status="error", reason=str(exc))]
                return [self._row(record, scorer, status="skipped", reason=NOT_APPLICABLE + (
                    exc.why or f"the item has no {exc.field} field, which this default scorer of task "
                               f"{self.task_name} reads: it scores the items that have one"))]
            except Exception as exc:  # noqa: BLE001 - a scorer that raises is that row's error, not the run's
                return [self._row(record, scorer, status="error", reason=f"{type(exc).__name__}: {exc}")]
            return [self._row(record, scorer, score=found.score, passed=found.passed, reason=found.reason)]
        return list(await asyncio.gather(*(self._judged(scorer, record, cell, answer, name)
                                           for name in scorer.judges)))

    async def _judged(self, scorer: Scorer, record: dict, cell: Cell, answer: str, name: str) -> ScoreRow:
        missing = self.session.opponent_skip_reasons.get(name)
        if missing:  # no call, no results row: a default run without keys keeps its results to its answers
            return self._row(record, scorer, **self._who(name), status="skipped", reason=f"judge {name}: {missing}")
        messages = judge.messages(scorer.rubric, cell.item, question_of(record), answer)
        step = judge_step(scorer.name, str(record.get("step") or ""))
        details = {"scorer": scorer.name, "judged_model": record.get("model"), "judged_step": record.get("step")}
        async with self.gate:
            response = await self.session.judge(cell, messages, judge=name, step=step, details=details,
                                                 schema=judge.VERDICT_SCHEMA)
        who = self._who(name)
        if response.error_kind == "skipped":
            return self._row(record, scorer, **who, status="skipped", reason=response.error or "")
        if not response.ok:
            return self._row(record, scorer, **who, status="error", reason=f"the judge's call failed: "
                                                                              f"{response.error}")
        cost = call_cost(self.session.opponents[name].model, response.usage)
        try:
            found = judge.read_verdict(response.text, scorer.threshold)
        except ValueError as exc:
            return self._row(record, scorer, **who, status="error", reason=str(exc), cost_usd=cost)
        return self._row(record, scorer, **who, score=found.score, passed=found.passed, reason=found.reason,
                         cost_usd=cost)

    def _who(self, name: str) -> dict:
        return judge_columns(self.session, name) if name else {}


async def score_job(scorers: list[Scorer], task: Task, session: JobSession, folder: Path) -> int:
    """Score the job's answers and replace its scores files; returns the rows written. A job without
    scorers writes no scores file (and leaves none of an earlier scoring behind). Pairwise scorers compare
    cells and are judged once over the sweep (runner.calling.pairwise), not here."""
    scorers = [s for s in scorers if not s.is_pairwise]
    if not scorers:
        for name in ("scores.jsonl", "scores.csv"):
            (folder / name).unlink(missing_ok=True)
        return 0
    for name, provider in session.opponents.items():  # judges added after the answers: their keys too
        if name not in session.opponent_skip_reasons:
            reason = provider.missing_key()
            if reason:
                session.opponent_skip_reasons[name] = reason
    rows = await Scoring(scorers, task, session).score(answers(folder))
    written = write_scores(folder, rows)
    log.info("%d score rows (%d scorers) -> %s", written, len(scorers), folder / "scores.csv")
    return written
