"""The engine's promises, in this process, on the scripted provider (tests/fakes/inprocess.py): the job runs
as a run's job does after Hydra (runner.calling.job.execute), with the real engine, retry policy, response
cache, budget and record writer; only the model's answers are scripted. The command line's own part (exit
codes, files, logs) is tested end to end in test_cli.py and test_engine.py."""
from __future__ import annotations

import pytest

from runner.calling.budget import worst_case_cost
from runner.calls import Request
from tests.fakes.inprocess import Wait, answer, failure

OWLS = "task.inputs=[{audience: owls}]"


def test_a_retryable_failure_is_retried_and_counted(scripted, run_settings, run_here):
    scripted.steps = [failure("rate_limit", 429, retry_after_s=0.01), failure("server", 503, retry_after_s=0.01)]
    records, tally = run_here(run_settings("model=scripted", OWLS))
    [row] = records
    assert row["status"] == "ok" and row["retries"] == 2 and tally.ok == 1
    assert len(scripted.received) == 3


def test_a_call_that_still_fails_is_an_error_row_that_says_after_how_many_attempts(scripted, run_settings, run_here):
    scripted.otherwise = lambda request: failure("server", 500, retry_after_s=0.01)
    records, _ = run_here(run_settings("model=scripted", OWLS, "model.max_attempts=3"))
    [row] = records
    assert row["status"] == "error" and row["error"] == "HTTP 500: server (after 3 attempts)"
    assert row["retries"] == 2 and len(scripted.received) == 3


def test_a_failure_that_is_not_retryable_fails_at_once(scripted, run_settings, run_here):
    scripted.steps = [failure("bad_request", 400, retryable=False)]
    records, _ = run_here(run_settings("model=scripted", OWLS))
    assert [(r["status"], r["retries"]) for r in records] == [("error", 0)] and len(scripted.received) == 1


def test_an_empty_answer_is_an_error_and_is_tried_again(scripted, run_settings, run_here):
    scripted.steps = [answer(""), answer("at last")]
    records, _ = run_here(run_settings("model=scripted", OWLS))
    [row] = records
    assert row["status"] == "ok" and row["response"] == "at last" and row["retries"] == 1


def test_a_call_past_model_timeout_s_is_cut_off(scripted, run_settings, run_here):
    scripted.steps = [Wait(5.0)]
    records, _ = run_here(run_settings("model=scripted", OWLS, "model.timeout_s=0.2", "model.max_attempts=1"))
    [row] = records
    assert row["status"] == "error" and row["error"] == "timed out after 0.2 s (model.timeout_s)"


def test_a_missing_key_skips_the_cells_and_sends_nothing(scripted, run_settings, run_here, monkeypatch):
    monkeypatch.delenv("SCRIPTED_API_KEY")
    records, tally = run_here(run_settings("model=scripted", repeats=2))
    assert {r["status"] for r in records} == {"skipped"} and tally.skipped == 2
    assert records[0]["error"] == "SCRIPTED_API_KEY is not set in the environment or in ./.env"
    assert scripted.received == []


def test_model_concurrency_bounds_the_calls_in_flight(scripted, run_settings, run_here):
    scripted.steps = [Wait(0.05) for _ in range(12)]
    run_here(run_settings("model=scripted", "model.concurrency=3", repeats=12))
    assert scripted.max_in_flight == 3


def test_the_cache_reuses_only_identical_successful_calls(scripted, run_settings, run_here, tmp_path):
    first, _ = run_here(run_settings("model=scripted", repeats=2), tmp_path / "first")
    assert len(scripted.received) == 2  # each repeat is its own call
    again, tally = run_here(run_settings("model=scripted", repeats=2), tmp_path / "again")
    assert len(scripted.received) == 2 and tally.cache_hits == 2
    assert [r["cache_hit"] for r in again] == [True, True] and [r["spent_usd"] for r in again] == [0.0, 0.0]
    assert [r["cost_usd"] for r in again] == [r["cost_usd"] for r in first] and first[0]["cost_usd"] > 0
    assert [r["response"] for r in again] == [r["response"] for r in first]

    run_here(run_settings("model=scripted", repeats=2, temperature=0.2), tmp_path / "other")  # another parameter
    assert len(scripted.received) == 4
    refreshed, _ = run_here(run_settings("model=scripted", repeats=2, cache="refresh"), tmp_path / "refresh")
    assert len(scripted.received) == 6 and {r["cache_hit"] for r in refreshed} == {False}
    bypassed, _ = run_here(run_settings("model=scripted", repeats=2, cache=False), tmp_path / "bypass")
    assert len(scripted.received) == 8 and {r["cache_hit"] for r in bypassed} == {False}

    scripted.steps = [failure("server", 500, retryable=False)]
    failed, _ = run_here(run_settings("model=scripted", OWLS), tmp_path / "failed")
    assert failed[0]["status"] == "error" and len(scripted.received) == 9
    retried, _ = run_here(run_settings("model=scripted", OWLS), tmp_path / "retried")
    assert retried[0]["cache_hit"] is False and len(scripted.received) == 10  # errors are not cached
    assert (tmp_path / "cache" / "responses.sqlite").exists()


def test_cache_false_never_creates_the_cache(scripted, run_settings, run_here, tmp_path):
    records, _ = run_here(run_settings("model=scripted", cache=False))
    assert records[0]["status"] == "ok"
    assert not (tmp_path / "cache").exists()


def test_the_budget_stops_calls_before_it_is_passed(scripted, run_settings, run_here):
    limit = 0.0004
    scripted.steps = [Wait(0.3) for _ in range(30)]  # long enough to overlap on a busy machine
    run = run_settings("model=scripted", repeats=30, cache=False, budget_usd=limit, max_tokens=16)
    records, _ = run_here(run)
    ok = [r for r in records if r["status"] == "ok"]
    skipped = [r for r in records if r["status"] == "skipped"]
    assert len(records) == 30 and ok and skipped
    assert {r["error"] for r in skipped} == {f"budget of ${limit:g} reached"}
    spent = sum(r["spent_usd"] for r in ok)
    assert spent <= limit
    assert len(scripted.received) == len(ok)  # a skipped call is never sent
    assert scripted.max_in_flight > 1  # calls were in flight together while the budget was kept
    worst = worst_case_cost(run.model, Request(ok[0]["messages"], run.temperature, 16))
    assert limit - spent < worst  # it stopped only when one more call could have passed the limit


def test_the_cache_keeps_answers_of_another_endpoint_apart(scripted, run_settings, run_here, tmp_path):
    """The same model id behind another endpoint (a proxy, another server) may answer otherwise."""
    run_here(run_settings("model=scripted", OWLS, "+model.base_url=http://127.0.0.1:9/v1"), tmp_path / "a")
    again, _ = run_here(run_settings("model=scripted", OWLS, "+model.base_url=http://127.0.0.1:9/v1"), tmp_path / "b")
    other, _ = run_here(run_settings("model=scripted", OWLS, "+model.base_url=http://127.0.0.1:10/v1"), tmp_path / "c")
    assert again[0]["cache_hit"] is True and other[0]["cache_hit"] is False
    assert other[0]["base_url"] == "http://127.0.0.1:10/v1" and len(scripted.received) == 2


def test_a_model_that_cannot_be_set_up_fails_that_call_in_one_line_and_the_next_call_tries_again(
        scripted, run_settings, run_here):
    scripted.prepare_errors = [RuntimeError("no GPU here " + "x" * 600)]
    run = run_settings("model=scripted", "model.concurrency=1", OWLS, repeats=3, cache=False)
    records, _ = run_here(run)
    failed, answered, later = records
    assert failed["status"] == "error" and failed["retries"] == 0 and len(failed["error"]) == 500
    assert failed["error"].startswith("could not set up scripted: RuntimeError: no GPU here xxx")
    assert failed["error"].endswith("...")
    assert answered["status"] == later["status"] == "ok" and len(scripted.received) == 2
    assert scripted.prepared == 2  # the failed try and the one that worked; never again once it has


# scripted.yaml's price: $1 per million input tokens, $4 per million output tokens
def price(input_tokens: int, output_tokens: int) -> float:
    return (input_tokens * 1 + output_tokens * 4) / 1e6


def test_every_attempt_the_provider_billed_counts_in_spent_usd_whatever_the_rows_status(
        scripted, run_settings, run_here, tmp_path):
    """An empty answer came back with usage: the provider billed it, and the retry that answered is billed
    again. The row's cost is its answer's list price; what the run spent is every billed attempt."""
    scripted.steps = [answer("", 10, 5), failure("server", 503, retry_after_s=0.01), answer("", 10, 5),
                      answer("at last", 12, 6)]
    records, tally = run_here(run_settings("model=scripted", OWLS, cache=False))
    [row] = records
    assert row["status"] == "ok" and row["retries"] == 3
    assert row["cost_usd"] == pytest.approx(price(12, 6)) and (row["input_tokens"], row["output_tokens"]) == (12, 6)
    assert row["spent_usd"] == pytest.approx(price(10, 5) * 2 + price(12, 6))  # the 503 had no usage: not billed
    assert (row["billed_input_tokens"], row["billed_output_tokens"]) == (32, 16)
    assert [a["output_tokens"] for a in row["details"]["billed_attempts"]] == [5, 5, 6]
    assert tally.spent_usd == row["spent_usd"]

    scripted.steps = [answer("", 10, 5)] * 4  # every attempt empty: an error row that still paid four times
    records, tally = run_here(run_settings("model=scripted", OWLS, cache=False), tmp_path / "empty")
    [row] = records
    assert row["status"] == "error" and row["error"].endswith("(after 4 attempts)")
    assert (row["input_tokens"], row["output_tokens"]) == (10, 5) and row["cost_usd"] == pytest.approx(price(10, 5))
    assert row["spent_usd"] == pytest.approx(4 * price(10, 5)) and tally.spent_usd == row["spent_usd"]
    assert (row["billed_input_tokens"], row["billed_output_tokens"]) == (40, 20)
    assert tally.spent(6) == f"${4 * price(10, 5):.6f} spent"


def test_a_priced_call_that_failed_without_usage_spent_0_not_an_unknown_amount(scripted, run_settings, run_here):
    scripted.steps = [failure("bad_request", 400, retryable=False)]
    records, tally = run_here(run_settings("model=scripted", OWLS, cache=False))
    [row] = records
    assert row["status"] == "error" and row["spent_usd"] == 0.0 and row["cost_usd"] is None
    assert tally.spent() == "$0.0000 spent"


def test_a_model_with_no_known_price_is_unpriced_even_when_every_call_fails(scripted, run_settings, run_here):
    from runner.analysis.summary import frame, summarize

    scripted.otherwise = lambda request: failure("bad_request", 400, retryable=False)
    records, tally = run_here(run_settings("model=scripted", "model.price=null", repeats=2, cache=False))
    assert {r["status"] for r in records} == {"error"} and {r["spent_usd"] for r in records} == {None}
    assert tally.spent() == "n/a spent (no known price)"
    [summary] = summarize(frame(records)).to_dict("records")
    assert summary["price_known"] is False and summary["spent_usd"] is None


def test_the_budget_counts_billed_attempts_as_they_happen_and_stops_retries_that_would_pass_it(
        scripted, run_settings, run_here):
    """Eight items whose answers all come back empty, with usage: each attempt is paid for. The budget keeps
    every attempt it let start, retries included, and nothing starts once one more could pass it."""
    scripted.otherwise = lambda request: answer("", 10, 5)
    limit = 0.0003
    run = run_settings("model=scripted", "model.concurrency=1", repeats=8, cache=False, budget_usd=limit,
                       max_tokens=16)
    records, tally = run_here(run)
    paid = len(scripted.received) * price(10, 5)
    assert sum(r["spent_usd"] or 0 for r in records) == pytest.approx(paid) == pytest.approx(tally.spent_usd)
    assert paid <= limit
    worst = worst_case_cost(run.model, Request(records[0]["messages"], run.temperature, 16))
    assert limit - paid < worst  # it stopped only when one more attempt could have passed the limit
    assert len(scripted.received) < 8 * 4 and {r["status"] for r in records} == {"error", "skipped"}
    stopped = [r for r in records if "not tried again" in r["error"]]
    assert len(stopped) <= 1 and all(r["error"].endswith(f"(not tried again: budget of ${limit:g} reached)")
                                     for r in stopped)


def test_started_at_is_when_the_call_began_not_when_it_ended(scripted, run_settings, run_here):
    from datetime import datetime, timedelta, timezone

    scripted.steps = [failure("server", 503, retry_after_s=0.01), Wait(2.5)]
    settings = run_settings("model=scripted", OWLS, cache=False)
    before = datetime.now(timezone.utc)
    records, _ = run_here(settings)
    [row] = records
    assert row["status"] == "ok" and row["retries"] == 1
    # to the second: its first attempt began within a second of the run, and the answer came 2.5 s later
    assert datetime.fromisoformat(row["started_at"]) <= before + timedelta(seconds=1)


def test_a_run_stopped_between_attempts_still_records_what_the_billed_ones_cost(scripted, run_settings, tmp_path):
    """The first attempt came back empty, with usage (billed); the run is stopped (SIGTERM cancels the calls)
    while the retry waits its turn. The row says so, with the billed attempt's tokens and cost."""
    import asyncio

    from runner.calling.job import execute
    from runner.calls import Response, Usage
    from runner.records import read_records

    scripted.steps = [Response(text="", usage=Usage(10, 5, 0), finish_reason="stop", retry_after_s=30.0)]
    settings = run_settings("model=scripted", OWLS, cache=False)

    async def stopped_while_waiting():
        job = asyncio.ensure_future(execute(settings, tmp_path / "run", run_id="run"))
        while not scripted.received:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the empty answer is back; the retry waits 30 s
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(stopped_while_waiting())
    [row] = read_records(tmp_path / "run" / "results.jsonl")
    assert row["status"] == "error" and row["error"] == "the run was stopped before this call was answered"
    assert row["spent_usd"] == pytest.approx(price(10, 5)) and row["billed_input_tokens"] == 10
    assert len(scripted.received) == 1
