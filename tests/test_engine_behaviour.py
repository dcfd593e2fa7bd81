"""The engine's promises, in this process, on the scripted provider (tests/fakes/inprocess.py): the job runs
as a run's job does after Hydra (runner.calling.job.execute), with the real engine, retry policy, response
cache, budget and record writer; only the model's answers are scripted. The command line's own part (exit
codes, files, logs) is tested end to end in test_cli.py and test_engine.py."""
from __future__ import annotations

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
    assert records[0]["error"] == "SCRIPTED_API_KEY is not set: put it in .env or the environment"
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
