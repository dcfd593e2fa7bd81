"""Runs one job's cells: concurrent calls, the runner's one retry policy, one record per call.

Cells are pulled by `model.concurrency` workers, so memory stays flat however many cells a job has.
Every call ends as a record with status ok, error or skipped; nothing a provider does stops the job.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from runner.costs import call_cost
from runner.providers.base import MissingKey, Provider, Request, Response
from runner.records import Record, RecordWriter
from runner.settings import ModelSettings, RunSettings
from runner.tasks.base import Cell, Task

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 60.0


@dataclass
class Tally:
    ok: int = 0
    error: int = 0
    skipped: int = 0
    spent_usd: float = 0.0
    calls: int = 0

    def add(self, record: Record) -> None:
        self.calls += 1
        setattr(self, record.status, getattr(self, record.status) + 1)
        self.spent_usd += record.spent_usd or 0.0


def backoff_s(attempt: int, retry_after_s: float | None) -> float:
    """Exponential back-off with full jitter; a server's Retry-After wins, capped."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), RETRY_AFTER_CAP_S)
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt))


@dataclass
class JobSession:
    """What tasks call: makes each model call, retries it by policy, and records it."""

    run: RunSettings
    provider: Provider
    writer: RecordWriter
    run_id: str
    job: str
    opponents: dict[str, Provider] = field(default_factory=dict)
    root: Path | None = None  # the run's or sweep's folder: files every job shares (page snapshots)
    tally: Tally = field(default_factory=Tally)
    skip_reason: str | None = None
    opponent_skip_reasons: dict[str, str] = field(default_factory=dict)  # an opponent whose key is missing

    def _record(self, cell: Cell, model: ModelSettings, **values) -> Record:
        record = Record(
            run_id=self.run_id, model=model.name, provider=model.provider, model_id=model.id,
            task=self.run.task.name, prompt=self.run.prompt.name, temperature=self.run.temperature,
            item=cell.label, repeat=cell.repeat, job=self.job, max_tokens=self.run.max_tokens,
            base_url=model.base_url or "", started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **values,
        )
        self.writer.write(record)
        self.tally.add(record)
        return record

    def fail(self, cell: Cell, reason: str, *, step: str = "", details: dict | None = None,
             status: str = "error") -> None:
        self._record(cell, self.run.model, status=status, error=reason, step=step, details=details or {})

    async def call(self, cell: Cell, messages: list[dict], *, step: str = "", json_mode: bool = False,
                   note: str = "", details: dict | None = None, model: str | None = None) -> Response:
        provider = self.provider if model is None else self.opponents[model]
        settings = provider.model
        skip_reason = self.skip_reason or (self.opponent_skip_reasons.get(model) if model else None)
        if skip_reason:
            self._record(cell, settings, status="skipped", error=skip_reason, step=step,
                         messages=messages, note=note, details=details or {})
            return Response(error=skip_reason, error_kind="skipped")
        request = Request(messages=messages, temperature=self.run.temperature,
                          max_tokens=self.run.max_tokens, json_mode=json_mode)
        response, retries = await self._with_retries(provider, request)
        cost = call_cost(settings, response.usage) if response.ok else None
        self._record(
            cell, settings, status="ok" if response.ok else "error", error=response.error or "",
            input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens,
            cached_tokens=response.usage.cached_tokens,
            tokens_source=response.usage.source if response.usage.input_tokens is not None else "",
            cost_usd=cost, spent_usd=cost, latency_s=response.latency_s, ttft_s=response.ttft_s,
            finish_reason=response.finish_reason or "", retries=retries, response=response.text,
            step=step, messages=messages, note=note, details=details or {},
        )
        return response

    async def _with_retries(self, provider: Provider, request: Request) -> tuple[Response, int]:
        settings = provider.model
        attempt = 0
        while True:
            try:
                response = await asyncio.wait_for(provider.generate(request), timeout=settings.timeout_s)
            except asyncio.TimeoutError:
                response = Response(error=f"timed out after {settings.timeout_s:g} s (model.timeout_s)",
                                    error_kind="timeout", retryable=True)
            if response.ok or not response.retryable or attempt + 1 >= settings.max_attempts:
                if not response.ok and attempt:
                    response.error = f"{response.error} (after {attempt + 1} attempts)"
                return response, attempt
            delay = backoff_s(attempt, response.retry_after_s)
            log.info("%s: %s; retrying in %.1f s", settings.name, response.error, delay)
            await asyncio.sleep(delay)
            attempt += 1


async def run_cells(task: Task, session: JobSession) -> Tally:
    """Run every cell of the task with at most `model.concurrency` cells in flight."""
    try:
        session.provider.check_key()
    except MissingKey as exc:
        session.skip_reason = str(exc)
    for name, opponent in session.opponents.items():
        try:
            opponent.check_key()
        except MissingKey as exc:
            session.opponent_skip_reasons[name] = str(exc)
    cells = task.cells()
    if not session.skip_reason:
        await task.prepare(session)
    queue: asyncio.Queue[Cell] = asyncio.Queue()
    for cell in cells:
        queue.put_nowait(cell)

    async def worker() -> None:
        while True:
            try:
                cell = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await task.run(cell, session)
            except Exception as exc:  # noqa: BLE001 - a task bug must not lose the other cells
                log.exception("cell %s failed", cell.label)
                session.fail(cell, f"{type(exc).__name__}: {exc}")

    workers = max(1, min(session.provider.model.concurrency, len(cells)))
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    log.info("%d calls in %.2f s", session.tally.calls, time.perf_counter() - started)
    return session.tally
