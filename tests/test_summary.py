"""summary.csv's numbers in process, each worked out by hand from a handful of calls: counts, latency and
ttft percentiles, tokens, speed, cost per call and per 1,000 items, spent, and how much repeats agree."""
from __future__ import annotations

import pytest

from runner.analysis.summary import frame, summarize
from runner.records import Record


def call(model: str, item: str, repeat: int, status: str = "ok", **extra) -> dict:
    return Record(run_id="r", model=model, provider="openai", model_id=f"{model}-id", task="joke",
                  prompt="default", temperature=0.7, item=item, repeat=repeat, status=status, **extra).data()


def rows() -> dict:
    calls = [
        call("gpt", "a", 0, latency_s=1.0, ttft_s=0.2, input_tokens=10, output_tokens=5, cost_usd=0.001,
             spent_usd=0.001, response="Yes"),
        # a cache hit: its cost is the list price, it paid nothing, and its (original) timing is not this run's
        call("gpt", "a", 1, latency_s=9.0, ttft_s=4.0, input_tokens=10, output_tokens=15, cost_usd=0.003,
             spent_usd=0.0, cache_hit=True, response=" yes "),
        call("gpt", "b", 0, latency_s=2.0, ttft_s=0.3, input_tokens=20, output_tokens=10, cost_usd=0.002,
             spent_usd=0.002, response="No"),
        call("gpt", "b", 1, "error", latency_s=5.0, error="HTTP 500"),
        call("gpt", "c", 0, "skipped", error="budget of $1 reached"),
        call("nollm", "a", 0, latency_s=1.0, input_tokens=1, output_tokens=1, response="x"),  # no known price
        call("cached", "a", 0, latency_s=0.5, ttft_s=0.1, output_tokens=4, cost_usd=0.5, spent_usd=0.0,
             cache_hit=True, response="z"),
        call("cached", "a", 1, latency_s=1.5, ttft_s=0.3, output_tokens=4, cost_usd=0.5, spent_usd=0.0,
             cache_hit=True, response="Q"),
    ]
    summary = summarize(frame(calls))
    return {row["model"]: row for row in summary.to_dict("records")}


def test_counts_tokens_and_timing_of_a_cell():
    gpt = rows()["gpt"]
    assert (gpt["calls"], gpt["ok"], gpt["error"], gpt["skipped"], gpt["cache_hits"]) == (5, 3, 1, 1, 1)
    assert (gpt["items"], gpt["repeats"], gpt["cells"]) == (3, 2, 5)
    assert (gpt["input_tokens"], gpt["output_tokens"]) == (40, 30)  # every answered call, cached ones too
    # timing from the calls this run made (a0, b0), not the cache hit's nor the failed call's
    assert gpt["latency_mean_s"] == pytest.approx(1.5) and gpt["latency_p50_s"] == pytest.approx(1.5)
    assert gpt["latency_p95_s"] == pytest.approx(1.95)
    assert gpt["ttft_mean_s"] == pytest.approx(0.25) and gpt["ttft_p50_s"] == pytest.approx(0.25)
    assert gpt["ttft_p95_s"] == pytest.approx(0.295)
    assert gpt["timing_from_cache"] == 0
    assert gpt["tokens_per_s"] == pytest.approx(15 / 3.0)
    assert (gpt["provider"], gpt["model_id"]) == ("openai", "gpt-id")


def test_cost_spent_and_cost_per_thousand_items():
    gpt = rows()["gpt"]
    assert gpt["cost_usd"] == pytest.approx(0.006) and gpt["cost_per_call_usd"] == pytest.approx(0.002)
    assert gpt["cost_per_1k_items_usd"] == pytest.approx(0.006 / 3 * 1000)  # over the 3 priced cells
    assert gpt["spent_usd"] == pytest.approx(0.003) and gpt["price_known"] and gpt["unpriced"] == 0


def missing(value) -> bool:
    return value is None or value != value  # None, or NaN in a column that has numbers in other rows


def test_a_model_with_no_known_price_costs_and_spent_unknown_not_zero():
    nollm = rows()["nollm"]
    assert missing(nollm["cost_usd"]) and missing(nollm["cost_per_call_usd"])
    assert missing(nollm["cost_per_1k_items_usd"]) and missing(nollm["spent_usd"])
    assert not nollm["price_known"] and nollm["unpriced"] == 1
    assert missing(nollm["answer_agreement"]) and missing(nollm["answer_length_std"])  # one repeat: no spread
    assert missing(nollm["ttft_mean_s"]) and nollm["tokens_per_s"] == pytest.approx(1.0)


def test_a_cell_answered_from_the_cache_keeps_its_timing_and_paid_nothing():
    cached = rows()["cached"]
    assert cached["timing_from_cache"] == 2 and cached["latency_mean_s"] == pytest.approx(1.0)
    assert cached["ttft_p50_s"] == pytest.approx(0.2)
    assert cached["spent_usd"] == 0 and cached["cost_usd"] == pytest.approx(1.0)


def test_repeats_agree_beyond_case_and_whitespace():
    gpt, cached = rows()["gpt"], rows()["cached"]
    assert gpt["answer_agreement"] == pytest.approx(1.0)  # "Yes" and " yes "; item b has one answer
    assert gpt["answer_length_std"] == pytest.approx((1.0 + 0.0) / 2)  # lengths 3 and 5; b alone
    assert cached["answer_agreement"] == pytest.approx(0.5)


def test_calls_timed_at_zero_seconds_have_no_speed_rather_than_an_infinite_one():
    (row,) = summarize(frame([call("fast", "a", 0, latency_s=0.0, output_tokens=5, response="x")])).to_dict("records")
    assert missing(row["tokens_per_s"]) and row["latency_p50_s"] == 0.0


def test_summary_csv_writes_sums_without_float_noise():
    """Three calls at $0.1 each cost $0.3 in summary.csv, not 0.30000000000000004: the one CSV writer rounds
    to 12 significant digits, and still never writes exponent notation."""
    from runner.analysis.build import plain_numbers

    calls = [call("gpt", str(i), 0, cost_usd=0.1, spent_usd=0.1, latency_s=0.1 * (i + 1), input_tokens=1,
                  output_tokens=1, response="x") for i in range(3)]
    calls.append(call("tiny", "a", 0, cost_usd=1.2e-07, spent_usd=1.2e-07, input_tokens=1, output_tokens=1,
                      response="x"))
    written = plain_numbers(summarize(frame(calls))).set_index("model")
    assert sum([0.1, 0.1, 0.1]) != 0.3  # what a sum gives
    assert (written.loc["gpt", "cost_usd"], written.loc["gpt", "spent_usd"]) == ("0.3", "0.3")
    assert written.loc["gpt", "cost_per_1k_items_usd"] == "100.0"
    assert written.loc["tiny", "cost_usd"] == "0.00000012"
