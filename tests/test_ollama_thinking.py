"""Ollama's thinking models, unpatched, through the real ollama package against the strict fake
(tests/fakes/ollama_server.py): `think` as model.reasoning (true/false, or a level for gpt-oss), room for thinking
in num_predict, the thinking kept apart from the answer, and a JSON Schema as `format`."""
from __future__ import annotations

import asyncio
import csv
import json

import pytest
import requests

from runner.calling.asking import asking, request
from runner.calls import Request
from runner.errors import ConfigError
from runner.providers.base import refuse_empty
from runner.providers.ollama import OllamaProvider
from runner.settings import ModelSettings
from tests.fakes.ollama_server import THOUGHT, ollama_server, thinking_text

MESSAGES = [{"role": "user", "content": "Tell a joke about data"}]
ANSWER = "Answer to: Tell a joke about data"
PULLED = ("llama3.2", "qwen3", "gpt-oss:20b")
ROOM = OllamaProvider.thinking_room


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)


def model(server=None, model_id="qwen3", **values) -> ModelSettings:
    return ModelSettings(name="llama", provider="ollama", id=model_id, base_url=server.url if server else None,
                         **values)


def generate(settings: ModelSettings, req: Request):
    async def go():
        provider = OllamaProvider(settings)
        try:
            return await provider.generate(req)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def ask(settings, **options) -> Request:
    return request(asking(settings, 0.7, 256), MESSAGES, **options)


@pytest.mark.parametrize("model_id,efforts", [("qwen3:8b", ("none", "medium")), ("deepseek-r1:7b", ("none", "medium")),
                                              ("gpt-oss:20b", ("low", "medium", "high")), ("llama3.2", ())])
def test_which_models_think_and_what_they_take_comes_from_their_family(model_id, efforts):
    caps = asking(model(model_id=model_id), 0.7, 256).capabilities
    assert caps.efforts == efforts and caps.reasoning == bool(efforts) and caps.structured_output


@pytest.mark.parametrize("model_id,effort,named", [("qwen3", "low", "none, medium"),
                                                   ("gpt-oss:20b", "none", "low, medium, high"),
                                                   ("llama3.2", "medium", "does not reason")])
def test_an_effort_the_model_does_not_take_is_a_config_error(model_id, effort, named):
    with pytest.raises(ConfigError, match=named):
        asking(model(model_id=model_id, reasoning=effort), 0.7, 256)


@pytest.mark.parametrize("stream", [True, False])
def test_a_default_call_of_a_thinking_model_has_room_and_keeps_its_thinking_apart(stream):
    with ollama_server(models=PULLED) as server:
        settings = model(server, stream=stream)
        response = refuse_empty(generate(settings, ask(settings)))
    assert response.ok, response.error
    body = server.received[0].json
    assert "think" not in body and body["options"]["num_predict"] == 256 + ROOM["medium"]
    assert response.text == ANSWER
    assert response.reasoning == thinking_text(MESSAGES, THOUGHT["medium"])
    assert response.usage.output_tokens == THOUGHT["medium"] + len(ANSWER.split())  # eval_count holds both
    # Ollama says only the sum: the thinking's share of the text, an estimate close to what the fake thought
    assert abs(response.usage.reasoning_tokens - THOUGHT["medium"]) <= 5
    assert response.usage.reasoning_source == "estimate"


def test_without_room_the_thinking_uses_num_predict_and_the_answer_is_empty():
    with ollama_server(models=PULLED) as server:
        response = refuse_empty(generate(model(server), Request(MESSAGES, 0.7, 256)))
    assert response.text == "" and response.finish_reason == "length" and response.usage.output_tokens == 256
    assert "all 256 output tokens were used without any text" in response.error


@pytest.mark.parametrize("model_id,efforts,sent", [
    ("qwen3", ("none", "medium"), [False, True]),
    ("gpt-oss:20b", ("low", "medium", "high"), ["low", "medium", "high"]),
])
def test_efforts_are_sent_as_think_and_spend_more_as_they_rise(model_id, efforts, sent):
    spent = []
    with ollama_server(models=PULLED) as server:
        for effort in efforts:
            settings = model(server, model_id=model_id, reasoning=effort)
            response = generate(settings, ask(settings))
            assert response.ok and response.text == ANSWER, response.error
            spent.append(response.usage.reasoning_tokens)
    assert [r.json["think"] for r in server.received] == sent
    assert spent == sorted(spent) and spent[0] < spent[-1]
    assert (spent[0] == 0) is (model_id == "qwen3")  # qwen3 stops thinking when told; gpt-oss cannot


def test_time_to_first_token_waits_for_the_answer_after_the_thinking():
    delay = 0.01
    thinking_s = THOUGHT["low"] * delay  # the thinking's lines, all before the answer's

    async def go(settings):
        provider = OllamaProvider(settings)
        await provider.prepare()  # the client is built before the call's clock starts, as in a run
        try:
            return await provider.generate(ask(settings))
        finally:
            await provider.aclose()

    with ollama_server(models=PULLED, chunk_delay_s=delay) as server:
        response = asyncio.run(go(model(server, model_id="gpt-oss:20b", reasoning="low")))
    assert response.ok, response.error
    assert response.ttft_s >= thinking_s
    assert response.latency_s - response.ttft_s < thinking_s  # only the answer's lines came after it


def test_the_fake_refuses_think_as_ollama_does():
    with ollama_server(models=PULLED) as server:
        def post(**body):
            return requests.post(f"{server.url}/api/chat", timeout=10,
                                 json={"messages": MESSAGES, "stream": False, **body})

        plain = post(model="llama3.2", think=True)
        assert plain.status_code == 400 and plain.json() == {"error": '"llama3.2" does not support thinking'}
        level = post(model="qwen3", think="low")
        assert level.status_code == 400 and level.json() == {"error": 'think value "low" is not supported for '
                                                                      'this model'}
        assert post(model="llama3.2", think=False).status_code == 200
        assert post(model="gpt-oss:20b", think="high").status_code == 200
    # and a setting sent anyway is an error row with Ollama's reason, not retried
    with ollama_server(models=PULLED) as server:
        response = generate(model(server, model_id="llama3.2"), Request(MESSAGES, 0.7, 256, reasoning="medium"))
    assert not response.ok and not response.retryable and "does not support thinking" in response.error


SCHEMA = {"type": "object", "properties": {"links": {"type": "array", "items": {"type": "string"}}},
          "required": ["links"]}


def test_a_json_schema_is_sent_as_format_and_json_mode_is_the_fallback():
    with ollama_server(models=PULLED, answer=lambda m: '{"links": []}') as server:
        settings = model(server, model_id="llama3.2")
        response = generate(settings, ask(settings, json_schema=SCHEMA))
        fallback = model(server, model_id="llama3.2", structured_output=False)
        generate(fallback, ask(fallback, json_schema=SCHEMA))
    assert response.ok and json.loads(response.text) == {"links": []}
    assert [r.json["format"] for r in server.received] == [SCHEMA, "json"]


def test_a_sweep_of_thinking_on_and_off_makes_cells(runner, tmp_path):
    with ollama_server(models=PULLED) as server:
        run = runner("-m", "model=llama", "model.id=qwen3", "model.reasoning=none,medium",
                     "hydra.sweep.dir=outputs/sweeps/think", env={"OLLAMA_HOST": server.url})
    assert run.code == 0, run.stderr[-2000:]
    with open(tmp_path / "outputs/sweeps/think/summary.csv", newline="", encoding="utf-8") as handle:
        summary = {r["variant"]: int(float(r["reasoning_tokens"])) for r in csv.DictReader(handle)}
    assert summary["model.id=qwen3 model.reasoning=none"] == 0
    assert summary["model.id=qwen3 model.reasoning=medium"] > 0
    assert sorted(r.json["think"] for r in server.received) == [False, True]
