"""Batch runs through Anthropic's Message Batches: the real command line and the real anthropic SDK against a
strict fake (tests/fakes/anthropic_batches.py) that serves results from the batch's results_url as JSONL."""
from __future__ import annotations

import json
from decimal import Decimal

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from runner.calls import Request, Response
from runner.providers.anthropic import AnthropicProvider
from runner.settings import ModelSettings
from tests.fakes.anthropic_batches import anthropic_batch_server

ITEMS = "task.inputs=[{audience: data scientists}, {audience: sailors}, {audience: owls}]"
FAST = "batch.poll_s=0.02"


def env_for(server) -> dict:
    return {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "test-key"}


def price(row: dict, processing: str | None) -> Decimal:
    usage = PriceUsage(input_tokens=int(row["input_tokens"]), cache_read_tokens=int(row["cached_tokens"]) or None,
                       output_tokens=int(row["output_tokens"]))
    context = {"processing": processing} if processing else None
    return calc_price(usage, row["model_id"], provider_id="anthropic", price_context=context).total_price


def test_a_message_batch_answers_every_cell_at_the_batch_price_once(runner, tmp_path):
    with anthropic_batch_server() as server:
        run = runner("model=claude", "model.batch=true", FAST, ITEMS, "temperature=0.4", env=env_for(server))
    assert run.code == 0, run.stderr
    assert len(server.batches.submissions(server)) == 1
    assert not [r for r in server.requests_to("/v1/messages") if r.path == "/v1/messages"]  # nothing direct
    [request] = server.batches.submissions(server)
    params = [entry["params"] for entry in request.json["requests"]]
    assert all(p["temperature"] == 0.4 and p["model"] == "claude-haiku-4-5" for p in params)
    rows = run.rows()
    assert len(rows) == 3 and {row["status"] for row in rows} == {"ok"}
    for row in rows:  # results come back in another order: each answer is matched by its custom id
        assert row["item"] in row["response"]
        assert Decimal(row["cost_usd"]) == price(row, "batch") < price(row, None)
        assert row["ttft_s"] == "" and "msgbatch_0001" in row["note"]
    assert not list((tmp_path / "cache" / "batches").glob("*.json"))


def test_errored_and_expired_requests(runner):
    def fail(params):
        return "prompt is too long" if "owls" in params["messages"][-1]["content"] else None

    with anthropic_batch_server(fail=fail, expire=1, expire_keep=2) as server:
        run = runner("model=claude", "model.batch=true", "batch.retry_failed=none", FAST, ITEMS, env=env_for(server))
    assert run.code == 1
    # the first batch answered two (one of them errored) and let one expire: that one alone is sent again
    submissions = server.batches.submissions(server)
    assert [len(r.json["requests"]) for r in submissions] == [3, 1]
    rows = {row["item"]: row for row in run.rows()}
    assert rows["owls"]["status"] == "error"
    assert "invalid_request_error: prompt is too long" in rows["owls"]["error"]
    assert {rows[item]["status"] for item in ("data scientists", "sailors")} == {"ok"}


def test_json_mode_goes_into_the_batch_as_the_forced_tool_call_or_the_prefill_put_back_in_its_answer():
    request = Request([{"role": "user", "content": "Reply in JSON"}], 0.0, 50, json_mode=True)
    provider = AnthropicProvider(ModelSettings(name="claude", provider="anthropic", id="claude-haiku-4-5", batch=True))
    params = provider.batch_entry("c1", request)["params"]
    assert params["messages"] == request.messages and params["tool_choice"] == {"type": "tool", "name": "json_answer"}
    assert params["temperature"] == 0.0 and "extra_body" not in params
    old = AnthropicProvider(ModelSettings(name="claude", provider="anthropic", id="claude-haiku-4-5", batch=True,
                                          tool_call=False))  # a model without tools: the prefill
    entry = old.batch_entry("c1", request)
    assert entry["params"]["messages"][-1] == {"role": "assistant", "content": "{"}
    answer = old.batch_answer(request, Response(text='"links": []}'))
    assert json.loads(answer.text) == {"links": []}
