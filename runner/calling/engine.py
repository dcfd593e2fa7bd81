"""Runs one job's cells: concurrent calls under each model's limits, one retry policy, one record per call.

Cells are made as `model.concurrency` workers pull them, so memory stays flat however many cells a job has.
Every call ends as a record with status ok, error or skipped; nothing a provider does stops the job.
A call is answered from the response cache when it can be; otherwise it waits for a place under the
model's limits (runner.calling.limits) and, with `budget_usd`, for its worst-case cost to fit (runner.calling.budget).
A provider is prepared (SDK imported, client built) once, before its first call that the cache does not
answer and outside every call's clock: latency_s times the call, not the runner's start-up.
Every attempt the provider billed (its response came back with usage: an empty answer tried again, a length
cut) counts in the row's spent_usd and, as it ends, against the budget; a retry is reserved like a first
attempt. A row's started_at is when its call's first attempt began. An answer is cached, then recorded, and
a run stopped meanwhile (its calls cancelled, runner.stopping) still records it and its billed attempts.
In a batch run (`model.batch=true`) the job's model is asked through runner.calling.batch instead of
directly: the same cache, budget (at the batch price) and records, with every cell in flight at once so
that each step's calls make one batch.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from runner import money
from runner.calling import vision
from runner.calling.asking import Asking, asking
from runner.calling.asking import request as request_for
from runner.calling.batch import PENDING, Batches, BatchPending
from runner.calling.budget import Budget, Hold, worst_case_cost
from runner.calling.cache import ResponseCache, cache_key
from runner.calling.costs import attempt_cost, bill, call_cost, known_price
from runner.calling.limits import ModelLimits
from runner.calling.progress import Progress
from runner.calling.retry import backoff_s
from runner.calls import Request, Response, Tool, seed_for
from runner.providers.base import Provider, refuse_empty
from runner.providers.reasons import redacted_line
from runner.records import Record, RecordWriter
from runner.settings import ModelSettings, RunSettings
from runner.tasks.base import Cell, Task
from runner.tokens import count_messages
from runner.words import counted

log = logging.getLogger(__name__)
SHARED_NOTE = "answered by an earlier job of this run: the same call, as the model was sent no temperature"


@dataclass
class Tally:
    ok: int = 0
    error: int = 0
    skipped: int = 0
    spent_usd: float = 0.0
    calls: int = 0
    cache_hits: int = 0
    reached: int = 0  # calls that went to a model (not skipped, not answered from the cache)
    unpriced: int = 0  # of those, calls of a model with no known price: what they spent is unknown, not 0

    def add(self, record: Record) -> None:
        self.calls += 1
        setattr(self, record.status, getattr(self, record.status) + 1)
        self.spent_usd += record.spent_usd or 0.0
        self.cache_hits += record.cache_hit
        reached = record.status != "skipped" and not record.cache_hit
        self.reached += reached
        self.unpriced += reached and record.spent_usd is None

    def merge(self, other: Tally) -> None:
        """Add another session's counts to these (a sweep's judging spans several sessions)."""
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def spent(self, digits: int = 4) -> str:
        """'$0.0123 spent', 'n/a spent' (no price known), '$0.0123 spent + 3 calls at no known price'."""
        if self.unpriced and self.unpriced == self.reached:
            return "n/a spent (no known price)"
        unknown = f" + {counted(self.unpriced, 'call')} at no known price" if self.unpriced else ""
        return f"{money.dollars_to(self.spent_usd, digits)} spent{unknown}"


def now() -> str:
    """started_at's form: UTC to the second (a sweep's calls share these texts, runner.analysis.run_folder)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Attempts:
    """One call's attempts as they happen: when the first began, every one the provider billed so far (kept
    here, so that a run stopped between two attempts still records what they cost), and the budget's hold on
    each."""

    hold: Hold
    started_at: str = ""
    billed: list[Response] = field(default_factory=list)


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
    cache: ResponseCache | None = None  # None: cache=false
    budget: Budget | None = None  # None: no budget_usd
    tally: Tally = field(default_factory=Tally)
    skip_reason: str | None = None
    opponent_skip_reasons: dict[str, str] = field(default_factory=dict)  # an opponent whose key is missing
    limits: dict[ModelSettings, ModelLimits] = field(default_factory=dict)
    variant: str = ""  # the job's overrides beyond model/task/prompt/temperature (runner.variant)
    prepared: dict[Provider, asyncio.Task] = field(default_factory=dict)  # each provider's one prepare()
    batches: Batches | None = None  # model.batch=true: the job's model answers through its batch API
    prices: dict[ModelSettings, bool] = field(default_factory=dict)  # whether each model's price is known
    # what each model's calls send, by provider and the temperature and max_tokens asked (a judge's differ)
    asks: dict[tuple, Asking] = field(default_factory=dict)
    shared: ResponseCache | None = None  # with cache off: this run's answers to calls sent no temperature

    def ask(self, provider: Provider, temperature: float | None = None, max_tokens: int | None = None) -> Asking:
        """What a call to this provider's model sends, at the run's temperature and max_tokens unless given
        (decided once per model and settings: runner.calling.asking)."""
        temperature = self.run.temperature if temperature is None else temperature
        max_tokens = self.run.max_tokens if max_tokens is None else max_tokens
        ask = self.asks.get((provider, temperature, max_tokens))
        if ask is None:
            ask = self.asks[(provider, temperature, max_tokens)] = asking(provider.model, temperature, max_tokens)
        return ask

    def _record(self, cell: Cell, provider: Provider, ask: Asking | None = None, max_tokens: int | None = None,
                started_at: str = "", **values) -> Record:
        """The call's record: the model and the settings it was asked with (a judge's own, not the cell's)."""
        model = provider.model
        ask = ask or self.ask(provider)
        if ask.note:  # the row says what was not sent
            values["note"] = "; ".join(filter(None, [values.get("note", ""), ask.note]))
        values.setdefault("spent_usd", 0.0 if self._priced(model) else None)  # nothing was paid, if a price is known
        record = Record(
            run_id=self.run_id, variant=self.variant, model=model.name, provider=model.provider, model_id=model.id,
            task=self.run.task.name, prompt=self.run.prompt.name, temperature=ask.recorded_temperature,
            item=cell.label, repeat=cell.repeat, job=self.job,
            max_tokens=self.run.max_tokens if max_tokens is None else max_tokens,
            base_url=provider.endpoint(), started_at=started_at or now(), reasoning_effort=ask.reasoning or "",
            **values,
        )
        self.writer.write(record)
        self.tally.add(record)
        return record

    def fail(self, cell: Cell, reason: str, *, step: str = "", details: dict | None = None,
             status: str = "error") -> None:
        self._record(cell, self.provider, status=status, error=reason, step=step, details=details or {})

    def _limits(self, model: ModelSettings) -> ModelLimits:
        # by the whole config, not its name: a judge `gpt` and a swept `gpt model.id=...` are two models
        if model not in self.limits:
            self.limits[model] = ModelLimits(model)
        return self.limits[model]

    def _priced(self, model: ModelSettings) -> bool:
        if model not in self.prices:
            self.prices[model] = known_price(model)
        return self.prices[model]

    async def judge(self, cell: Cell, messages: list[dict], *, judge: str, step: str, details: dict,
                    schema: dict) -> Response:
        """One judge's call: the judge's own model (composed from its config alone, runner.scorers.judge_models)
        asked for a verdict of this JSON Schema (structured outputs where the judge has them: no prefill, which
        Claude 4.6 and later refuse), at the run's `judge` settings in every cell, never the cell's temperature
        or max_tokens."""
        settings = self.run.judge
        return await self.call(cell, messages, step=step, json_mode=True, json_schema=schema, details=details,
                               model=judge, temperature=settings.temperature, max_tokens=settings.max_tokens)

    async def call(self, cell: Cell, messages: list[dict], *, step: str = "", json_mode: bool = False,
                   json_schema: dict | None = None, note: str = "", details: dict | None = None,
                   model: str | None = None, temperature: float | None = None,
                   max_tokens: int | None = None, tools: tuple[Tool, ...] = ()) -> Response:
        """One call of the job's model (or of `model`, an opponent or a judge), at the cell's temperature and
        max_tokens unless given; `tools`: the functions it may call instead of answering (a tool loop's turn,
        made directly even in a batch run: each turn waits for the last one's tool results)."""
        provider = self.provider if model is None else self.opponents[model]
        settings = provider.model
        context = dict(step=step, messages=messages, note=note, details=details or {})
        ask = self.ask(provider, temperature, max_tokens)
        asked = dict(ask=ask, max_tokens=max_tokens)  # what the record says it was asked
        request = request_for(ask, messages, json_mode=json_mode, json_schema=json_schema,
                              seed=seed_for(self.run.seed, cell.repeat), tools=tools)
        # the row says what was sent: no seed where the provider's API takes none
        sent_seed = request.seed if provider.takes_seed else None
        # an opponent is called directly, and so is a tool loop's turn
        batched = self.batches is not None and provider is self.provider and not tools
        # a model sent no temperature is asked the same at every temperature of a sweep: with the cache off,
        # the run's own store answers the later jobs from the first (`shared`), so no call is paid twice
        shared = self.shared if request.temperature is None else None
        key = cache_key(settings, provider.endpoint(), request, cell.repeat, self.run.seed) \
            if self.cache is not None or batched or shared is not None else None
        store = self.cache if self.cache is not None and self.run.cache == "on" else shared
        if store is not None:
            hit = await store.get(key)
            if hit is not None and hit.answered:  # an empty answer cached by an older version is no answer
                if store is shared:
                    context["note"] = "; ".join(filter(None, [note, SHARED_NOTE]))
                # a fixed seed is in the key, so the answer came from it; a fresh one was never sent
                self._record(cell, provider, **asked, cache_hit=True, spent_usd=0.0, retries=0,
                             seed=sent_seed if self.run.seed is not None else None,
                             billed_input_tokens=0, billed_output_tokens=0,
                             **_answer(hit, call_cost(settings, hit.usage)), **context)
                return hit
        skip = self.skip_reason or (self.opponent_skip_reasons.get(model) if model else None) \
            or (provider.refuses_tools() if tools else None) \
            or vision.refusal(settings, ask.capabilities, messages) \
            or (self.budget.reason if self.budget and self.budget.reached else None)
        worst_case = None
        if not skip and self.budget is not None:
            worst_case = worst_case_cost(settings, request, batch=batched)
            if worst_case is None:  # preflight refuses this for the job's model; an opponent may still get here
                skip = f"no known price for {settings.name} under budget_usd: set model.price"
        attempts = Attempts(Hold(self.budget if not skip else None, worst_case, wait=self.batches is None))
        if not skip and not await attempts.hold.take():  # a batch's round waits for every cell: no waiting here
            skip = self.budget.reason
        if skip:
            self._record(cell, provider, **asked, status="skipped", error=skip, **context)
            return Response(error=skip, error_kind="skipped")
        try:
            if batched:
                attempts.started_at = now()
                answer = await self.batches.ask(key, request, dict(item=cell.label, repeat=cell.repeat, step=step))
                response, retries = answer.response, answer.retries
                if answer.note:  # called directly instead: the row says why
                    context["note"] = "; ".join(filter(None, [note, answer.note]))
                if answer.not_used:
                    context["details"] = {**context["details"], "batch_not_used": answer.not_used}
            else:
                response, retries = await self._with_retries(provider, request, attempts)
        except asyncio.CancelledError:  # the run is being stopped: attempts already billed are still recorded
            if attempts.billed:
                last = attempts.billed[-1]
                stopped = Response(error="the run was stopped before this call was answered", error_kind="stopped",
                                   usage=last.usage, batch_id=last.batch_id, billed_before=attempts.billed[:-1])
                self._record_answer(cell, provider, stopped, len(attempts.billed) - 1, attempts,
                                    dict(context, **asked, seed=sent_seed))
            await attempts.hold.release(0.0)
            raise
        if not batched:  # settled attempt by attempt; held here only when the model could not be set up
            await attempts.hold.release(0.0)
        if response.error_kind == PENDING:  # batch.wait=false: the batch answers it in a later run
            await attempts.hold.release(0.0)
            raise BatchPending(response.error)
        if response.batch_id is not None:
            context["note"] = "; ".join(filter(None, [note, f"batch {response.batch_id}: latency is its turnaround"]))
            direct = call_cost(settings, response.usage) if response.ok else None  # what the batch saved
            context["details"] = {**context["details"], "batch": {"id": response.batch_id, "direct_cost_usd": direct}}
        try:
            if response.ok and self.cache is not None:  # before the record: a kill never loses a paid answer
                await self.cache.put(key, settings.id, response)
            if response.ok and shared is not None:
                await shared.put(key, settings.id, response)
        except Exception as exc:  # noqa: BLE001 - an answer the cache could not keep is still this call's answer
            log.warning("%s: the answer was not kept in the response cache: %s", settings.name, exc)
        finally:  # recorded even when the run is stopped during the cache's write: never in the cache alone
            self._record_answer(cell, provider, response, retries, attempts, dict(context, **asked, seed=sent_seed))
            if batched:  # a batch's call is settled whole, once its round is back
                await attempts.hold.release(bill(settings, response, self._priced(settings)).spent_usd)
        if batched:
            self.batches.answered(key)
        return response

    def _record_answer(self, cell: Cell, provider: Provider, response: Response, retries: int, attempts: Attempts,
                       context: dict) -> None:
        """Record a call that went to the model, with what every attempt of it the provider billed cost."""
        settings = provider.model
        paid = bill(settings, response, self._priced(settings))
        details = context["details"]
        if len(paid.attempts) > 1 or (paid.attempts and not response.usage.reported):
            details = {**details, "billed_attempts": paid.attempts}
        cost = call_cost(settings, response.usage, batch=response.batch_id is not None) \
            if response.usage.reported else None
        self._record(cell, provider, started_at=attempts.started_at, spent_usd=paid.spent_usd, retries=retries,
                     billed_input_tokens=paid.input_tokens, billed_output_tokens=paid.output_tokens,
                     **_answer(response, cost), **{**context, "details": details})

    async def _prepared(self, provider: Provider) -> Response | None:
        """Prepare the provider once, whichever call comes first; concurrent first calls wait for the same
        preparation, each before its own clock starts. A failure is this call's error row (and the next
        call tries again)."""
        task = self.prepared.get(provider)
        if task is not None and task.done() and not task.cancelled() and task.exception() is None:
            return None  # every call after the first
        if task is None or task.done():  # the first call, or the last try failed
            task = self.prepared[provider] = asyncio.ensure_future(_prepare(provider))
        try:
            await asyncio.shield(task)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be set up fails its calls, not the job
            log.debug("preparing %s failed", provider.model.name, exc_info=True)
            return Response(error=redacted_line(f"could not set up {provider.model.name}: {type(exc).__name__}: {exc}",
                                           500), error_kind="prepare")
        return None

    async def _with_retries(self, provider: Provider, request: Request,
                            attempts: Attempts | None = None) -> tuple[Response, int]:
        """The call, tried again by the retry policy; each attempt is reserved under the budget before it starts
        and settled as it ends. The answer carries the earlier attempts the provider billed (billed_before)."""
        settings = provider.model
        attempts = attempts or Attempts(Hold(None, None))  # a batch's request called directly: its round's budget
        failed = await self._prepared(provider)
        if failed is not None:
            return failed, 0
        limits = self._limits(settings)
        priced = self._priced(settings)
        # what tokens-per-minute limits count: the input plus the most the answer may take
        tokens = count_messages(request.messages, settings.id)[0] + request.max_tokens if settings.tpm else 0
        attempt = 0
        while True:
            permit = await limits.acquire(tokens)
            attempts.started_at = attempts.started_at or now()  # the row's call began with its first attempt
            response = None
            try:
                response = refuse_empty(await _within(settings.timeout_s, provider.generate(request)))
            except asyncio.TimeoutError:
                response = Response(error=f"timed out after {settings.timeout_s:g} s (model.timeout_s)",
                                    error_kind="timeout", retryable=True)
            finally:
                limits.release(permit, response)
            if response.usage.reported:
                attempts.billed.append(response)
            await attempts.hold.release(attempt_cost(settings, response, priced))  # counted as it happens
            if response.ok or not response.retryable or attempt + 1 >= settings.max_attempts:
                if not response.ok and attempt:
                    response.error = f"{response.error} (after {counted(attempt + 1, 'attempt')})"
                break
            delay = backoff_s(attempt, response.retry_after_s)
            log.debug("%s: %s; retrying in %.1f s", settings.name, response.error, delay)  # rows count retries
            await asyncio.sleep(delay)
            if not await attempts.hold.take():
                response.error = f"{response.error} (not tried again: {self.budget.reason})"
                break
            attempt += 1
        response.billed_before = [earlier for earlier in attempts.billed if earlier is not response]
        return response, attempt


async def _prepare(provider: Provider) -> None:
    """provider.prepare(), told with what it took: a start-up cost (importing the openai SDK took 0.5 to
    1.2 s on a 2-core machine, loading the embedded model more) that the calls' figures would otherwise hide."""
    started, cpu = time.perf_counter(), time.process_time()
    await provider.prepare()
    took = time.perf_counter() - started
    if took >= 0.1:
        log.info("%s prepared in %.2f s, %.2f s of CPU here (the SDK's import and client, or the local model's load)",
                 provider.model.name, took, time.process_time() - cpu)


async def _within(seconds: float, call):
    """The call's result, or asyncio.TimeoutError after `seconds`. `asyncio.timeout` (Python 3.11+) runs the
    call in the calling task; `wait_for` would wrap every call in a task of its own, whose end takes two
    more turns of the event loop: with dozens of answers arriving at once, each of those turns waits for
    all the others, and the next call starts later (about 0.1 s over 400 calls at 32 in flight)."""
    if not hasattr(asyncio, "timeout"):  # Python 3.10
        return await asyncio.wait_for(call, timeout=seconds)
    async with asyncio.timeout(seconds):
        return await call


def _answer(response: Response, cost: float | None) -> dict:
    """A response's record fields; cost_usd is the list price of its tokens (the last attempt's, answered or
    not) whether or not this run paid it."""
    usage = response.usage
    return dict(
        status="ok" if response.ok else "error", error=response.error or "",
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cached_tokens=usage.cached_tokens,
        tokens_source=usage.source if usage.input_tokens is not None else "",
        cost_usd=cost,
        latency_s=response.latency_s, ttft_s=response.ttft_s, finish_reason=response.finish_reason or "",
        response=response.text, reasoning=response.reasoning, reasoning_tokens=usage.reasoning_tokens,
        tool_calls=response.tool_calls,
        reasoning_tokens_source=usage.reasoning_source if usage.reasoning_tokens is not None else "")


async def run_cells(task: Task, session: JobSession) -> Tally:
    """Run every cell of the task with at most `model.concurrency` cells in flight."""
    session.skip_reason = session.provider.missing_key()
    for name, opponent in session.opponents.items():
        reason = opponent.missing_key()
        if reason:
            session.opponent_skip_reasons[name] = reason
    cells = task.cells()  # made as the workers take them: the items of a file are read as the calls go
    total = task.cell_count()
    if not session.skip_reason:
        await task.prepare(session)
    label = f"{session.run.model.name}" + (f" (job {session.job})" if session.job else "")
    progress = Progress(label, total, session.tally)

    async def worker() -> None:
        for cell in cells:  # one iterator shared by every worker: each cell is taken once
            try:
                await task.run(cell, session)
            except BatchPending:
                pass  # its answer waits in the provider's batch: a later run collects it
            except Exception as exc:  # noqa: BLE001 - a task bug must not lose the other cells
                log.exception("cell %s failed", cell.label)
                session.fail(cell, f"{type(exc).__name__}: {exc}")
            finally:
                if session.batches is not None:
                    session.batches.cell_finished()
            progress.cell_done()

    workers = max(1, min(session.provider.model.concurrency, total))
    if session.batches is not None:  # every cell in flight, so that each step's calls make one batch
        workers = max(1, total)
        session.batches.active = total
    started, cpu = time.perf_counter(), time.process_time()
    shown = asyncio.create_task(progress.show())
    # Everything alive now (Hydra, the config, the modules) outlives the calls: keep the collector's full
    # passes from walking it again and again while answers arrive (they took 0.1 s of 400 calls' CPU)
    gc.freeze()
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        gc.unfreeze()
        shown.cancel()
        await asyncio.gather(shown, return_exceptions=True)
    log.info("%s in %.2f s, %.2f s of CPU here (%s)", counted(session.tally.calls, "call"),
             time.perf_counter() - started, time.process_time() - cpu, progress.counts())
    return session.tally
