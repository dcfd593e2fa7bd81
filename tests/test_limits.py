"""Per-model limits: adaptive concurrency, requests and tokens per minute, and calls of several models per cell."""
from __future__ import annotations

import asyncio
import io

from runner.calling.engine import JobSession, Tally, run_cells
from runner.calling.limits import ModelLimits
from runner.calling.progress import Progress
from runner.calls import Response, Usage
from runner.providers.openai import OpenAIProvider
from runner.records import RecordWriter, read_records
from runner.settings import ModelSettings, PromptSettings, RunSettings, TaskSettings
from runner.tasks.base import Task
from tests.fakes.openai_server import openai_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def model(**values) -> ModelSettings:
    return ModelSettings(name="gpt", provider="openai", id="gpt-4.1-mini", **values)


RATE_LIMITED = Response(error="HTTP 429", status_code=429, retryable=True)


def ok(tokens: int = 0) -> Response:
    return Response(text="fine", usage=Usage(tokens, 0, 0))


async def started(limits: ModelLimits, tokens: int = 0) -> asyncio.Task:
    """An acquire that is still waiting after the loop has had its turn."""
    task = asyncio.create_task(limits.acquire(tokens))
    for _ in range(5):
        await asyncio.sleep(0)
    return task


def test_a_burst_of_429s_halves_concurrency_once_and_successes_win_it_back():
    async def go():
        limits = ModelLimits(model(concurrency=8))
        permits = [await limits.acquire(0) for _ in range(4)]
        for permit in permits:
            limits.release(permit, RATE_LIMITED)
        assert limits.allowed == 4  # four 429s of one burst: one cut
        later = await limits.acquire(0)
        limits.release(later, RATE_LIMITED)
        assert limits.allowed == 2  # a call started after the cut that still gets a 429 cuts again
        for expected in (3, 4):
            for _ in range(limits.allowed):
                limits.release(await limits.acquire(0), ok())
            assert limits.allowed == expected
        for _ in range(50):
            limits.release(await limits.acquire(0), ok())
        assert limits.allowed == 8  # never above model.concurrency

    asyncio.run(go())


def test_calls_wait_for_a_free_place():
    async def go():
        limits = ModelLimits(model(concurrency=2))
        first, _second = await limits.acquire(0), await limits.acquire(0)
        third = await started(limits)
        assert not third.done()
        limits.release(first, ok())
        await asyncio.wait_for(third, 5)
        assert limits.in_flight == 2

    asyncio.run(go())


def test_requests_per_minute_is_a_sliding_window():
    async def go():
        clock = Clock()
        limits = ModelLimits(model(concurrency=8, rpm=2), clock=clock)
        first, second = await limits.acquire(0), await limits.acquire(0)
        third = await started(limits)
        limits.release(first, ok())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not third.done()  # a free place is not enough: two calls started this minute
        clock.now += 61
        limits.release(second, ok())
        await asyncio.wait_for(third, 5)

    asyncio.run(go())


def test_tokens_per_minute_counts_what_calls_really_used():
    async def go():
        limits = ModelLimits(model(concurrency=8, tpm=100), clock=Clock())
        first = await limits.acquire(60)
        second = await started(limits, 60)
        assert not second.done()  # 60 + 60 estimated tokens would pass 100 a minute
        limits.release(first, ok(tokens=20))  # it used 20: there is room now
        await asyncio.wait_for(second, 5)

    asyncio.run(go())


def test_retry_after_holds_back_new_calls_to_the_model():
    async def go():
        clock = Clock()
        limits = ModelLimits(model(concurrency=8), clock=clock)
        busy = await limits.acquire(0)
        limits.release(await limits.acquire(0),
                       Response(error="HTTP 429", status_code=429, retryable=True, retry_after_s=5))
        waiting = await started(limits)
        assert not waiting.done()
        clock.now += 6
        limits.release(busy, ok())
        await asyncio.wait_for(waiting, 5)

    asyncio.run(go())


class Exchange(Task):
    """Two calls per cell, the second to another model: what brochure and debate tasks do."""

    async def run(self, cell, session):
        first = await session.call(cell, self.messages(cell.item), step="ask")
        await session.call(cell, [{"role": "user", "content": f"Rate this: {first.text}"}], step="rate",
                           model="judge")


def test_concurrency_bounds_calls_of_every_model_a_cell_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("RUNNER_STRICT_SDK_VALIDATION", "1")
    with openai_server(latency_s=0.05) as main_server, openai_server(latency_s=0.05) as judge_server:
        main = model(concurrency=3, base_url=main_server.url + "/v1")
        judge = ModelSettings(name="judge", provider="openai", id="gpt-4.1-nano", concurrency=1,
                              base_url=judge_server.url + "/v1")
        run = RunSettings(model=main, task=TaskSettings(name="exchange", kind="single", user="Joke about {n}",
                                                        inputs=tuple({"n": str(i)} for i in range(12))),
                          prompt=PromptSettings(name="default"), temperature=0.5, max_tokens=16, repeats=1,
                          cache="off", dry_run=False, budget_usd=None, cache_dir=None, history=None)

        async def go() -> Tally:
            providers = OpenAIProvider(main), OpenAIProvider(judge)
            with RecordWriter(tmp_path) as writer:
                session = JobSession(run=run, provider=providers[0], writer=writer, run_id="r", job="",
                                     opponents={"judge": providers[1]})
                try:
                    return await run_cells(Exchange(run), session)
                finally:
                    for provider in providers:
                        await provider.aclose()

        tally = asyncio.run(go())
    assert tally.ok == 24
    assert main_server.max_in_flight <= 3 and judge_server.max_in_flight == 1
    rows = list(read_records(tmp_path / "results.jsonl"))
    assert sorted({(r["model"], r["step"]) for r in rows}) == [("gpt", "ask"), ("judge", "rate")]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal():
    tally = Tally(ok=2, error=1, calls=3, spent_usd=0.0123)
    stream = Terminal()

    async def go():
        progress = Progress("gpt", 10, tally, stream=stream)
        for _ in range(3):
            progress.cell_done()
        shown = asyncio.create_task(progress.show())
        while "\r" not in stream.getvalue():
            await asyncio.sleep(0.01)
        shown.cancel()
        await asyncio.gather(shown, return_exceptions=True)

    asyncio.run(go())
    text = stream.getvalue()
    assert "gpt: 3/10 done, 1 error, 0 skipped, $0.0123 spent, ETA " in text  # "1 error", not "1 errors"
    assert text.endswith("\r\x1b[2K")  # the live line is cleared at the end
