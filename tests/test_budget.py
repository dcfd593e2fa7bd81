"""The spending limit's ledger, in process: what fits, what waits, what is skipped, and that a sweep's jobs
share it (the end-to-end budget tests are in test_engine_behaviour.py and test_engine.py)."""
from __future__ import annotations

import asyncio

from runner.calling.budget import Budget, worst_case_cost
from runner.calls import Request
from runner.settings import ModelSettings, Price

# $1 per input token and $2 per output token: costs read as token counts
PRICED = ModelSettings(name="m", provider="anthropic", id="claude-x", price=Price(input=1e6, output=2e6))


def test_a_call_that_lands_exactly_on_the_limit_is_let_in_and_the_next_is_not(tmp_path):
    async def scenario():
        budget = Budget(1.0, tmp_path)
        try:
            assert await budget.admit(0.5) and await budget.admit(0.5)  # 0.5 + 0.5 is not past 1.0
            await budget.settle(0.5, 0.5)
            await budget.settle(0.5, 0.25)  # spent 0.75: a reservation is replaced by what the call cost
            assert await budget.admit(0.25)
            await budget.settle(0.25, 0.25)
            assert not await budget.admit(0.01)  # nothing in flight and it does not fit: reached
            assert budget.reached and budget.reason == "budget of $1 reached"
            assert not await budget.admit(0.0)  # once reached, every later call is skipped
        finally:
            budget.close()

    asyncio.run(scenario())


def test_a_call_that_does_not_fit_waits_for_the_calls_in_flight_to_settle(tmp_path):
    async def scenario():
        budget = Budget(1.0, tmp_path)
        try:
            assert await budget.admit(0.8)
            waiting = asyncio.create_task(budget.admit(0.5))
            await asyncio.sleep(0.05)
            assert not waiting.done()  # 0.8 + 0.5 would pass the limit while the first call is in flight
            await budget.settle(0.8, 0.3)
            assert await asyncio.wait_for(waiting, 5)  # 0.3 spent + 0.5 fits
            assert budget.in_flight == 1 and not budget.reached
        finally:
            budget.close()

    asyncio.run(scenario())


def test_the_jobs_of_a_sweep_share_one_ledger(tmp_path):
    async def scenario():
        first, second = Budget(1.0, tmp_path), Budget(1.0, tmp_path)
        try:
            assert await first.admit(0.7)
            assert not await second.admit(0.5)  # the other job's reservation counts
            assert second.reached and not first.reached
            await first.settle(0.7, 0.1)
            assert await first.admit(0.9)
        finally:
            first.close()
            second.close()

    asyncio.run(scenario())


def test_the_worst_case_counts_every_byte_and_the_framing_when_tiktoken_does_not_know_the_model():
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "café"}]
    # 3 for the reply, 3 per message, then UTF-8 bytes (8 + 5): 22 input tokens, plus all 7 output tokens
    assert worst_case_cost(PRICED, Request(messages, 0.0, 7)) == 22 + 2 * 7
    assert worst_case_cost(ModelSettings(name="m", provider="anthropic", id="no-such-model"),
                           Request(messages, 0.0, 7)) is None


def test_a_job_under_a_budget_sends_calls_until_the_next_could_pass_it(scripted, run_settings, run_here):
    """One call at a time, so the count is exact: every call sent was reserved and paid for, every later one
    skipped, and nothing is sent once the budget is reached."""
    limit = 0.0004
    run = run_settings("model=scripted", "model.concurrency=1", repeats=12, cache=False, budget_usd=limit,
                       max_tokens=16)
    records, tally = run_here(run)
    ok = [r for r in records if r["status"] == "ok"]
    skipped = [r for r in records if r["status"] == "skipped"]
    assert ok and skipped and len(ok) + len(skipped) == 12
    assert {r["error"] for r in skipped} == {f"budget of ${limit:g} reached"}
    assert len(scripted.received) == len(ok)
    assert {r["finish_reason"] for r in ok} == {"stop"} and {r["finish_reason"] for r in skipped} == {""}
    spent = sum(r["spent_usd"] for r in ok)
    assert 0 < spent <= limit and tally.skipped == len(skipped)
    worst = worst_case_cost(run.model, Request(ok[0]["messages"], run.temperature, 16))
    assert limit - spent < worst  # it stopped only when one more call could have passed the limit
