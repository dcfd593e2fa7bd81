"""Gemini's thinking models, unpatched, through both Google SDKs against the strict fake (tests/fakes/gemini_server.py),
which refuses what the API refuses and spends thought tokens against maxOutputTokens: room for thinking, model.reasoning
as thinkingBudget (2.5) or thinkingLevel (3.x), thought summaries kept apart from the answer, thought tokens counted
and priced as output, JSON Schemas, and the command line's cells."""
from __future__ import annotations

import asyncio
import csv
import json
from decimal import Decimal

import pytest
import requests
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from runner.calling.asking import asking, request
from runner.calls import Request
from runner.errors import ConfigError
from runner.providers import provider_for
from runner.providers.base import refuse_empty
from runner.providers.gemini import GeminiProvider
from runner.settings import ModelSettings
from tests.fakes.gemini_batches import gemini_batch_server
from tests.fakes.gemini_server import DYNAMIC_THOUGHTS, LEVEL_THOUGHTS, budget_thoughts, gemini_server, thought_summary

MESSAGES = [{"role": "user", "content": "Tell a joke about data"}]
ANSWER = "Answer to: Tell a joke about data"
CONTENTS = [{"role": "user", "parts": [{"text": "Tell a joke about data"}]}]
SDKS = [None, "generativeai"]
ROOM = GeminiProvider.thinking_room


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    for name in ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def model(server=None, model_id="gemini-2.5-flash", **values) -> ModelSettings:
    return ModelSettings(name="gemini", provider="gemini", id=model_id, base_url=server.url if server else None,
                         **values)


def generate(settings: ModelSettings, req: Request):
    async def go():
        provider = provider_for(settings)
        try:
            return await provider.generate(req)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def ask(settings: ModelSettings, messages=MESSAGES, **options) -> Request:
    """The call as a run makes it: what the model takes decided by runner.calling.asking."""
    return request(asking(settings, 0.7, 256), messages, **options)


def sent(server) -> dict:
    return server.received[-1].json["generationConfig"]


def env_for(server) -> dict:
    return {"GOOGLE_GEMINI_BASE_URL": server.url, "GEMINI_API_KEY": "test-key"}


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def price(row: dict) -> Decimal:
    usage = PriceUsage(input_tokens=int(row["input_tokens"]), output_tokens=int(row["output_tokens"]))
    return calc_price(usage, row["model_id"], provider_id="google").total_price


# --- what each model takes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model_id,efforts,default", [
    ("gemini-2.5-pro", ("minimal", "low", "medium", "high"), "medium"),  # cannot turn thinking off
    ("gemini-2.5-flash", ("none", "minimal", "low", "medium", "high"), "medium"),
    ("gemini-2.5-flash-lite", ("none", "minimal", "low", "medium", "high"), "none"),  # off unless told
    ("gemini-3-pro-preview", ("low", "high"), "high"),
    ("gemini-3.1-pro-preview", ("low", "medium", "high"), "high"),
    ("gemini-3-flash-preview", ("minimal", "low", "medium", "high"), "high"),
    ("gemini-3.5-flash", ("minimal", "low", "medium", "high"), "medium"),
    ("gemini-3.7-flash", ("low", "medium", "high"), "medium"),  # not in the catalogue: the family decides
    ("gemini-2.0-flash", (), None),  # does not think
])
def test_each_family_takes_its_own_efforts_and_thinks_by_default_as_google_documents(model_id, efforts, default):
    ask_ = asking(model(model_id=model_id), 0.7, 256)
    caps = ask_.capabilities
    assert (caps.efforts, caps.default_effort) == (efforts, default)
    assert caps.reasoning == bool(efforts)
    # a model that thinks by default gets room for it, within its output limit; one that does not, none
    assert ask_.max_tokens == 256 + (ROOM[default] if default and default != "none" else 0)


@pytest.mark.parametrize("model_id,effort,named", [
    ("gemini-2.5-pro", "none", "minimal, low, medium, high"),
    ("gemini-3-pro-preview", "medium", "low, high"),
    ("gemini-3-pro-preview", "none", "low, high"),
    ("gemini-2.0-flash", "low", "does not reason"),
])
def test_an_effort_the_model_does_not_take_is_a_config_error_naming_those_it_takes(model_id, effort, named):
    with pytest.raises(ConfigError, match=named):
        asking(model(model_id=model_id, reasoning=effort), 0.7, 256)


# --- a default run of a thinking model ---------------------------------------------------------------------

@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("sdk", SDKS)
def test_a_default_call_of_a_thinking_model_has_room_to_think_and_answers(sdk, stream):
    with gemini_server() as server:
        settings = model(server, sdk=sdk, stream=stream)
        response = refuse_empty(generate(settings, ask(settings)))
    assert response.ok, response.error
    assert response.text == ANSWER
    config = sent(server)
    assert config["maxOutputTokens"] == 256 + ROOM["medium"]  # dynamic thinking: up to about 8,192 tokens
    thinking = config.get("thinkingConfig", {})
    assert not {"thinkingBudget", "thinking_budget", "thinkingLevel", "thinking_level"} & set(thinking)
    assert response.usage.reasoning_tokens == DYNAMIC_THOUGHTS
    assert response.usage.output_tokens == len(ANSWER.split()) + DYNAMIC_THOUGHTS  # thoughts are billed output


@pytest.mark.parametrize("sdk", SDKS)
def test_without_room_the_thoughts_use_the_cap_and_the_empty_answer_says_why(sdk):
    with gemini_server() as server:
        response = refuse_empty(generate(model(server, sdk=sdk), Request(MESSAGES, 0.7, 256)))
    assert response.text == "" and response.usage.reasoning_tokens == 256 and response.usage.output_tokens == 256
    assert response.error == ("empty answer: all 256 output tokens were used without any text (finish_reason "
                              "length): raise max_tokens")


# --- model.reasoning on the wire ---------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [True, False])
def test_efforts_on_gemini_2_5_are_thinking_budgets_and_spend_more_as_they_rise(stream):
    spent, budgets = {}, {}
    with gemini_server() as server:
        for effort in ("none", "low", "high"):
            settings = model(server, reasoning=effort, stream=stream)
            response = generate(settings, ask(settings))
            assert response.ok, response.error
            assert response.text == ANSWER
            spent[effort] = response.usage.reasoning_tokens
            thinking = sent(server)["thinkingConfig"]
            budgets[effort] = thinking["thinking_budget"]
            assert thinking.get("include_thoughts", False) is (effort != "none")  # refused with budget 0
    # within 2.5 Flash's range (1-24,576): high's room is more than Flash takes as a budget
    assert budgets == {"none": 0, "low": ROOM["low"], "high": 24576}
    assert spent == {"none": 0, "low": budget_thoughts(ROOM["low"]), "high": budget_thoughts(24576)}
    assert spent["none"] < spent["low"] < spent["high"]


@pytest.mark.parametrize("model_id,effort", [("gemini-3-pro-preview", "low"), ("gemini-3-pro-preview", "high"),
                                             ("gemini-3-flash-preview", "minimal"), ("gemini-3.5-flash", "medium")])
def test_efforts_on_gemini_3_are_thinking_levels(model_id, effort):
    with gemini_server() as server:
        settings = model(server, model_id=model_id, reasoning=effort)
        response = generate(settings, ask(settings))
    assert response.ok, response.error
    thinking = sent(server)["thinkingConfig"]
    assert thinking == {"thinking_level": effort.upper(), "include_thoughts": True}  # never a budget beside it
    assert sent(server)["maxOutputTokens"] == 256 + ROOM[effort]
    assert response.usage.reasoning_tokens == LEVEL_THOUGHTS[effort]


def test_a_model_that_does_not_think_is_sent_no_thinking_config():
    with gemini_server() as server:
        settings = model(server, model_id="gemini-2.0-flash")
        response = generate(settings, ask(settings))
    assert response.ok, response.error
    assert "thinkingConfig" not in sent(server) and sent(server)["maxOutputTokens"] == 256
    assert response.usage.reasoning_tokens is None  # not a thinking model: nothing to report


def test_a_setting_the_api_refuses_is_an_error_row_with_its_reason():
    # what a run never sends (asking refuses it first), sent anyway: the SDK's 400 becomes a row, not a retry
    with gemini_server() as server:
        response = generate(model(server, model_id="gemini-2.5-pro"), Request(MESSAGES, 0.7, 256, reasoning="none"))
    assert not response.ok and not response.retryable and response.error_kind == "bad_request"
    assert "Budget 0 is invalid. This model only works in thinking mode." in response.error


# --- thought summaries and time to first token ---------------------------------------------------------------

@pytest.mark.parametrize("stream", [True, False])
def test_thought_summaries_are_kept_as_reasoning_never_in_the_answer(stream):
    with gemini_server() as server:
        settings = model(server, model_id="gemini-3-pro-preview", stream=stream)
        response = generate(settings, ask(settings))
    assert response.ok, response.error
    assert response.text == ANSWER  # the answer's part carries a thoughtSignature: still just the answer
    assert response.reasoning == thought_summary(CONTENTS)
    assert sent(server)["thinkingConfig"] == {"include_thoughts": True}  # asked for: it costs no more


def test_time_to_first_token_is_the_first_answer_text_not_the_first_thought():
    delay = 0.1
    thinking_s = len(thought_summary(CONTENTS).split()) * delay  # the thought chunks, all before the answer's

    async def go(settings):
        provider = provider_for(settings)
        await provider.prepare()  # the client is built before the call's clock starts, as in a run
        try:
            return await provider.generate(ask(settings))
        finally:
            await provider.aclose()

    with gemini_server(chunk_delay_s=delay) as server:
        response = asyncio.run(go(model(server, model_id="gemini-3-pro-preview")))
    assert response.ok, response.error
    assert response.ttft_s >= thinking_s
    assert response.latency_s - response.ttft_s < thinking_s  # only the answer's chunks came after it


def test_the_course_sdk_reads_thought_tokens_from_the_total():
    # google-generativeai's protos have no thoughtsTokenCount; totalTokenCount counts the thoughts
    with gemini_server() as server:
        settings = model(server, model_id="gemini-3-pro-preview", sdk="generativeai")
        response = generate(settings, ask(settings))
    assert response.ok, response.error
    assert response.text == ANSWER and response.reasoning == ""  # it cannot ask for summaries
    assert "thinkingConfig" not in sent(server)
    assert response.usage.reasoning_tokens == LEVEL_THOUGHTS["high"]
    assert response.usage.output_tokens == len(ANSWER.split()) + LEVEL_THOUGHTS["high"]


def test_a_reasoning_setting_through_the_course_sdk_is_a_config_error_naming_model_sdk():
    with pytest.raises(ConfigError, match="model.sdk=generativeai cannot send it"):
        provider_for(model(reasoning="low", sdk="generativeai"))


# --- JSON without prefill ------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"links": {"type": "array", "items": {"type": "string"}}},
          "required": ["links"], "additionalProperties": False}


@pytest.mark.parametrize("stream", [True, False])
def test_a_json_schema_is_sent_as_response_json_schema(stream):
    with gemini_server(answer=lambda contents: '{"links": []}') as server:
        settings = model(server, stream=stream)
        response = generate(settings, ask(settings, json_schema=SCHEMA))
        fallback = model(server, structured_output=False)
        generate(fallback, ask(fallback, json_schema=SCHEMA))
    assert response.ok, response.error
    assert json.loads(response.text) == {"links": []}
    first, second = (r.json["generationConfig"] for r in server.received)
    assert first["responseMimeType"] == "application/json" and first["responseJsonSchema"] == SCHEMA
    assert second["responseMimeType"] == "application/json" and "responseJsonSchema" not in second


def test_the_course_sdk_sends_the_schema_as_far_as_its_proto_holds_it():
    with gemini_server(answer=lambda contents: '{"links": []}') as server:
        settings = model(server, model_id="gemini-2.0-flash", sdk="generativeai")
        response = generate(settings, ask(settings, json_schema=SCHEMA))
    assert response.ok, response.error
    config = sent(server)
    assert config["responseMimeType"] == "application/json"
    # the proto's own shape (types as its enum's numbers: OBJECT 6, ARRAY 5, STRING 1), without
    # additionalProperties, which the API's responseSchema refuses
    assert config["responseSchema"] == {"type": 6, "properties": {"links": {"type": 5, "items": {"type": 1}}},
                                        "required": ["links"]}


# --- the fake refuses what the API refuses -----------------------------------------------------------------

def post(server, model_id: str, config: dict) -> requests.Response:
    return requests.post(f"{server.url}/v1beta/models/{model_id}:generateContent", timeout=10,
                         headers={"x-goog-api-key": "test-key"},
                         json={"contents": CONTENTS, "generationConfig": config})


@pytest.mark.parametrize("model_id,config,message", [
    ("gemini-3-pro-preview", {"thinkingConfig": {"thinkingLevel": "low", "thinkingBudget": 1024}},
     "You can only set only one of thinking budget and thinking level."),
    ("gemini-2.5-flash", {"thinkingConfig": {"thinkingLevel": "LOW"}},
     "Thinking level is not supported for this model."),
    ("gemini-3-pro-preview", {"thinkingConfig": {"thinking_level": "MEDIUM"}},
     "Thinking level MEDIUM is not supported for this model."),
    ("gemini-3.7-flash", {"thinkingConfig": {"thinkingLevel": "minimal"}},
     "Thinking level MINIMAL is not supported for this model."),
    ("gemini-2.5-pro", {"thinkingConfig": {"thinkingBudget": 0}},
     "Budget 0 is invalid. This model only works in thinking mode."),
    ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": 32768}}, "The thinking budget (32768) is invalid."),
    ("gemini-2.5-flash-lite", {"thinkingConfig": {"thinkingBudget": 100}}, "The thinking budget (100) is invalid."),
    ("gemini-2.0-flash", {"thinkingConfig": {"includeThoughts": True}}, "thinking_config is not supported."),
    ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": 0, "includeThoughts": True}},
     "Thinking_config.include_thoughts is only enabled when thinking is enabled."),
    ("gemini-2.5-flash", {"thinkingConfig": {"thinkingEffort": "low"}},
     'Unknown name "thinkingEffort" at \'generation_config.thinking_config\''),
    ("gemini-2.5-flash", {"responseMimeType": "application/json", "responseSchema": SCHEMA},
     'Unknown name "additionalProperties" at \'generation_config.response_schema\''),
    ("gemini-2.5-flash", {"responseJsonSchema": SCHEMA}, "needs response_mime_type application/json"),
])
def test_the_fake_refuses_what_the_api_refuses(model_id, config, message):
    with gemini_server() as server:
        reply = post(server, model_id, config)
    assert reply.status_code == 400
    assert reply.json()["error"]["status"] == "INVALID_ARGUMENT" and message in reply.json()["error"]["message"]


def test_the_fake_takes_what_the_api_takes_and_reports_thoughts_beside_the_answer():
    with gemini_server() as server:
        ok = [post(server, "gemini-2.5-flash", {"thinkingConfig": {"thinking_budget": 0}}),
              post(server, "gemini-2.5-pro", {"thinkingConfig": {"thinkingBudget": 128, "includeThoughts": True}}),
              post(server, "gemini-3-pro-preview", {"thinkingConfig": {"thinkingLevel": "high"}}),
              post(server, "gemini-3-pro-preview", {"thinkingConfig": {"thinkingBudget": 1024}})]  # still taken
    assert [r.status_code for r in ok] == [200] * 4
    usage = ok[2].json()["usageMetadata"]
    assert usage["thoughtsTokenCount"] == LEVEL_THOUGHTS["high"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] + \
        usage["thoughtsTokenCount"]
    parts = ok[1].json()["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and parts[1] == {"text": ANSWER}


# --- the command line ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sdk", SDKS)
def test_a_default_run_of_gemini_2_5_flash_answers_every_call_and_prices_the_billed_tokens(runner, sdk):
    overrides = ["model=gemini", "model.id=gemini-2.5-flash", "task=tutor"] + ([f"model.sdk={sdk}"] if sdk else [])
    with gemini_server() as server:
        run = runner(*overrides, env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    rows = run.rows()
    assert rows and len(server.received) == len(rows)  # no refused call, none sent again
    for row in rows:
        assert row["status"] == "ok" and row["response"].strip() and row["finish_reason"] == "stop"
        assert row["reasoning_tokens"] == str(DYNAMIC_THOUGHTS) and row["reasoning_tokens_source"] == "provider"
        assert int(row["output_tokens"]) > DYNAMIC_THOUGHTS  # the thoughts are inside the billed output
        assert Decimal(row["cost_usd"]) == price(row)
    records = [json.loads(line) for line in (run.root() / "results.jsonl").read_text().splitlines()]
    for record in records:
        if sdk is None:  # google-genai asks for the thought summaries: kept in results.jsonl only
            assert record["reasoning"].startswith("**Weighing the request**")
        assert "Weighing the request" not in record["response"]


def test_swept_efforts_make_cells_whose_thought_tokens_rise_and_are_priced(runner, tmp_path):
    with gemini_server() as server:
        run = runner("-m", "model=gemini", "model.id=gemini-2.5-flash", "model.reasoning=none,low,high",
                     "hydra.sweep.dir=outputs/sweeps/efforts", env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    root = tmp_path / "outputs/sweeps/efforts"
    summary = {r["variant"]: int(float(r["reasoning_tokens"])) for r in read_csv(root / "summary.csv")}
    assert summary == {"model.id=gemini-2.5-flash model.reasoning=none": 0,
                       "model.id=gemini-2.5-flash model.reasoning=low": budget_thoughts(ROOM["low"]),
                       "model.id=gemini-2.5-flash model.reasoning=high": budget_thoughts(24576)}
    rows = read_csv(root / "results.csv")
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == len(server.received)
    assert all(Decimal(r["cost_usd"]) == price(r) for r in rows)
    assert {r.json["generationConfig"]["thinkingConfig"]["thinking_budget"] for r in server.received} == \
        {0, ROOM["low"], 24576}


@pytest.mark.parametrize("overrides,named", [
    (["model.id=gemini-2.5-pro", "model.reasoning=low,none"], "minimal, low, medium, high"),
    (["model.id=gemini-2.5-flash", "model.sdk=generativeai", "model.reasoning=low"], "model.sdk=generativeai"),
])
def test_a_setting_that_cannot_be_sent_exits_2_before_any_call(runner, overrides, named):
    with gemini_server() as server:
        run = runner("-m", "model=gemini", *overrides, env=env_for(server))
    assert run.code == 2, run.stderr[-2000:]
    assert named in run.stderr
    assert server.received == []


def test_a_batch_sends_the_thinking_setting_and_reads_the_thought_tokens(runner):
    with gemini_batch_server() as server:
        run = runner("model=gemini", "model.id=gemini-2.5-flash", "model.reasoning=low", "model.batch=true",
                     "batch.poll_s=0.02", env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    [submission] = server.batches.submissions(server)
    [entry] = submission.json["batch"]["inputConfig"]["requests"]["requests"]
    assert entry["request"]["generationConfig"]["thinkingConfig"] == {"include_thoughts": True,
                                                                      "thinking_budget": ROOM["low"]}
    [row] = run.rows()
    assert row["status"] == "ok" and row["reasoning_tokens"] == str(budget_thoughts(ROOM["low"]))
