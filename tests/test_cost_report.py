"""Costs end to end (CLI against the strict OpenAI fake) and the report's cost and speed figures."""
from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from runner.analysis.report import cost_table
from runner.analysis.summary import frame, summarize
from runner.money import dollars, dollars_to
from tests.fakes.openai_server import openai_server

ITEMS = "task.inputs=[{audience: data scientists}, {audience: sailors who love long jokes}]"


@pytest.mark.parametrize("stream", ["true", "false"])
def test_every_row_costs_what_genai_prices_says_for_its_model_and_usage(runner, stream):
    with openai_server(cached_tokens=4) as server:
        run = runner("model=gpt", f"model.stream={stream}", "cache=false", "repeats=2", ITEMS,
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    rows = run.rows()
    assert len(rows) == 4 and len(server.received) == 4
    total = Decimal(0)
    for row in rows:
        assert row["tokens_source"] == "provider" and int(row["cached_tokens"]) == 4
        usage = PriceUsage(input_tokens=int(row["input_tokens"]), cache_read_tokens=int(row["cached_tokens"]),
                           output_tokens=int(row["output_tokens"]))
        price = calc_price(usage, row["model_id"], provider_id="openai").total_price
        assert Decimal(row["cost_usd"]) == price  # to the last digit, as results.csv writes it
        assert Decimal(row["spent_usd"]) == price  # no cache hit: this run paid the list price
        total += price
    [summary] = run.rows("summary.csv")
    assert Decimal(summary["cost_usd"]).quantize(Decimal("1e-12")) == total.quantize(Decimal("1e-12"))
    # 2 items x 2 repeats = 4 cells; per 1,000 items is the mean cost of one cell times 1,000
    assert float(summary["cost_per_1k_items_usd"]) == pytest.approx(float(total) / 4 * 1000)
    assert float(summary["tokens_per_s"]) > 0
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    assert "## Cost by model and task" in report
    assert "no known price" not in report


def test_unknown_model_price_is_empty_with_a_warning_in_the_report(runner):
    with openai_server() as server:
        run = runner("model=gpt", "model.id=my-private-model", "cache=false",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    [row] = run.rows()
    assert row["status"] == "ok" and row["cost_usd"] == "" and row["spent_usd"] == ""
    [summary] = run.rows("summary.csv")
    assert summary["cost_usd"] == "" and summary["price_known"] == "False"
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    assert "no known price for gpt (openai/my-private-model)" in report


def record(**values) -> dict:
    base = dict(run_id="r", model="gpt", provider="openai", model_id="gpt-4.1-mini", task="brochure",
                prompt="default", temperature=0.7, status="ok", cache_hit=False, response="text")
    return base | values


def test_cost_per_1k_items_adds_a_multi_step_cells_calls_and_averages_repeats():
    records = []
    for repeat, (links, write) in enumerate([(0.001, 0.004), (0.002, 0.005)]):
        for item in ("acme", "globex"):
            records.append(record(item=item, repeat=repeat, step="links", cost_usd=links, spent_usd=links,
                                  input_tokens=100, output_tokens=10, latency_s=1.0))
            records.append(record(item=item, repeat=repeat, step="write", cost_usd=write, spent_usd=write,
                                  input_tokens=200, output_tokens=90, latency_s=2.0))
    [row] = summarize(frame(records)).to_dict("records")
    assert row["calls"] == 8 and row["items"] == 2 and row["cells"] == 4
    # each cell costs links + write; the mean over 2 items x 2 repeats, times 1,000
    assert row["cost_per_1k_items_usd"] == pytest.approx((0.005 + 0.007) / 2 * 1000)
    assert row["cost_per_call_usd"] == pytest.approx(0.024 / 8)
    assert row["tokens_per_s"] == pytest.approx(4 * 100 / (4 * 3.0))  # output tokens over call time


def test_cache_hits_cost_nothing_and_do_not_count_as_speed():
    records = [record(item="a", repeat=0, cost_usd=0.002, spent_usd=0.002, output_tokens=50, latency_s=2.0),
               record(item="a", repeat=1, cost_usd=0.002, spent_usd=0.0, output_tokens=50, latency_s=0.001,
                      cache_hit=True)]
    [row] = summarize(frame(records)).to_dict("records")
    assert row["spent_usd"] == pytest.approx(0.002) and row["cost_usd"] == pytest.approx(0.004)
    assert row["tokens_per_s"] == pytest.approx(25.0)  # 50 tokens in 2 s; the replayed answer took no model time
    assert row["latency_mean_s"] == pytest.approx(2.0)


def test_cost_by_model_and_task_sums_over_prompts_and_temperatures():
    records = [record(item="a", repeat=0, temperature=t, prompt=p, cost_usd=0.001, spent_usd=0.001,
                      output_tokens=10, latency_s=1.0)
               for t in (0.0, 1.0) for p in ("default", "concise")]
    records.append(record(model="local", provider="local", model_id="SmolLM2", item="a", repeat=0, cost_usd=0.0,
                          spent_usd=0.0, output_tokens=10, latency_s=0.5))
    df = frame(records)
    rollup = summarize(df, ["model", "task"]).set_index("model")
    assert rollup.loc["gpt", "cells"] == 4  # one item in four variants
    assert rollup.loc["gpt", "cost_per_1k_items_usd"] == pytest.approx(1.0)
    assert rollup.loc["local", "cost_usd"] == 0
    table = cost_table(df)
    assert "| gpt | brochure | 4 | 4 | $0.004000 | $1.0000 | $0.004000 | 10.0 |" in table
    assert "| local | brochure | 1 | 1 | $0 | $0 | $0 | 20.0 |" in table


def library_price(row: dict, input_tokens: int, output_tokens: int) -> Decimal:
    usage = PriceUsage(input_tokens=input_tokens, output_tokens=output_tokens)
    return calc_price(usage, row["model_id"], provider_id="openai").total_price


def test_empty_answers_that_came_back_with_usage_are_paid_for_in_spent_usd_and_the_report(runner):
    """The provider bills an answer with no text: every attempt of these error rows counts in spent_usd, in
    the run's last line and in the report, at genai-prices' price for its usage."""
    with openai_server(answer=lambda messages: "") as server:
        run = runner("model=gpt", "cache=false", "model.max_attempts=3", ITEMS,
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 1, run.stderr
    rows = run.rows()
    assert len(rows) == 2 and len(server.received) == 6 and {r["status"] for r in rows} == {"error"}
    total = Decimal(0)
    for row in rows:
        attempt = library_price(row, int(row["input_tokens"]), 0)
        assert Decimal(row["cost_usd"]) == attempt > 0 and Decimal(row["spent_usd"]) == 3 * attempt
        assert int(row["billed_input_tokens"]) == 3 * int(row["input_tokens"])
        total += 3 * attempt
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    assert f"2 calls: 0 ok, 2 error, 0 skipped; spent {dollars(float(total))}." in report
    log = (run.root() / "runner.log").read_text(encoding="utf-8")
    assert f"gpt: 0 ok, 2 error, 0 skipped, {dollars_to(float(total), 6)} spent" in log
    [summary] = run.rows("summary.csv")
    assert Decimal(summary["spent_usd"]) == total


def test_a_stream_broken_after_its_usage_arrived_was_billed(runner):
    """The usage chunk came, the finish reason never did: an error worth a retry, and paid for each time."""
    with openai_server(finish_in_stream=False) as server:
        run = runner("model=gpt", "cache=false", "model.max_attempts=2", "task.inputs=[{audience: owls}]",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 1, run.stderr
    [row] = run.rows()
    assert row["status"] == "error" and row["error"].startswith("the stream ended before a finish reason")
    attempt = library_price(row, int(row["input_tokens"]), int(row["output_tokens"]))
    assert Decimal(row["cost_usd"]) == attempt > 0 and Decimal(row["spent_usd"]) == 2 * attempt
    assert len(server.received) == 2


def test_a_judge_with_no_known_price_costs_n_a_not_0_in_what_judging_cost(runner, tmp_path):
    """Two judges, one priced (gpt) and one whose model no price library knows: its calls are unknown money,
    as a model's are in the rest of the report, and the judging total says how many calls it leaves out."""
    conf = tmp_path / "myconf" / "model"
    conf.mkdir(parents=True)
    with openai_server() as server:
        (conf / "priceless.yaml").write_text(f"provider: openai\nid: my-private-judge\nbase_url: {server.url}/v1\n")
        run = runner("--config-dir", str(tmp_path / "myconf"), "model=gpt", "cache=false", ITEMS,
                     "+scorer.funny={type: judge, judges: [gpt, priceless], rubric: funny}", "~task.scorers",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    judging = [r for r in run.rows() if r["step"] == "judge-funny"]
    assert {(r["model"], r["spent_usd"] == "") for r in judging} == {("gpt", False), ("priceless", True)}
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    section = report.split("## What judging cost", 1)[1].split("\n## ", 1)[0]
    [priceless] = [line for line in section.splitlines() if line.startswith("| priceless |")]
    assert priceless.endswith("| n/a (no known price) | n/a (no known price) |") and "$0" not in priceless, section
    gpt_cost = sum(Decimal(r["cost_usd"]) for r in judging if r["model"] == "gpt")
    assert f"Judging at list price: {dollars(float(gpt_cost))} + n/a for 2 calls with no known price;" in section
