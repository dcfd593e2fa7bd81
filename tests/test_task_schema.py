"""A task's `schema:`: its answers are asked for in that JSON Schema, the providers' own way (OpenAI's strict
structured outputs, llama.cpp's grammar; JSON mode for a model without structured outputs), and the is_json
scorer checks the answers against it when it has no schema of its own. A bad schema is bad input. Each test
runs the real command line against a strict fake (tests/fakes/openai_server.py) or the embedded model."""
from __future__ import annotations

import csv
import json

import pytest

from runner.tasks.brochure import LINKS_SCHEMA
from tests.fakes.openai_server import openai_server
from tests.fakes.site import site
from tests.test_tasks import brochure_model

KEY = {"OPENAI_API_KEY": "test-key"}
# every object closed and every property required: OpenAI's strict structured outputs take it as it is
STRICT = {"type": "object", "additionalProperties": False, "required": ["summary", "concepts"],
          "properties": {"summary": {"type": "string"}, "concepts": {"type": "array", "items": {"type": "string"}}}}
STRICT_ARG = ("task.schema={type: object, additionalProperties: false, required: [summary, concepts], "
              "properties: {summary: {type: string}, concepts: {type: array, items: {type: string}}}}")
# open (other properties allowed): sent without strict, so the API does not hold the answer to it
OPEN_ARG = "task.schema={type: object, required: [summary], properties: {summary: {type: string}}}"


def env_for(ai) -> dict:
    return {**KEY, "OPENAI_BASE_URL": ai.url + "/v1"}


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def answers_sent(ai) -> list[dict]:
    return [r.json for r in ai.requests_to("/v1/chat/completions")]


def test_a_task_schema_goes_as_strict_structured_output_and_is_json_checks_the_answers_by_it(runner):
    with openai_server() as ai:
        run = runner("model=gpt", "task=tutor", STRICT_ARG, "scorer=is_json", env=env_for(ai))
    assert run.code == 0, run.stderr[-2000:]
    sent = answers_sent(ai)
    assert len(sent) == 2 and all(body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": STRICT, "strict": True}} for body in sent)
    for row in run.rows():
        assert row["status"] == "ok" and set(json.loads(row["response"])) == {"summary", "concepts"}
    scores = [r for r in read_csv(run.root() / "scores.csv") if r["scorer"] == "is_json"]
    assert len(scores) == 2 and all(r["pass"] == "true" and r["reason"] == "matches the schema" for r in scores)


def test_is_json_fails_an_answer_the_task_schema_does_not_take_and_a_scorers_own_schema_wins(runner):
    """An open schema goes without strict, so nothing holds the model to it: is_json is what tells."""
    with openai_server(answer=lambda messages: '{"summary": 3}') as ai:
        run = runner("model=gpt", "task=tutor", OPEN_ARG, "scorer=is_json",
                     "+scorer.any_object={type: is-json, value: {type: object}}", env=env_for(ai))
    assert run.code == 0, run.stderr[-2000:]
    assert all(body["response_format"]["json_schema"]["strict"] is False for body in answers_sent(ai))
    scores = read_csv(run.root() / "scores.csv")
    task_schema = [r for r in scores if r["scorer"] == "is_json"]
    assert len(task_schema) == 2 and all(r["pass"] == "false" for r in task_schema)
    assert task_schema[0]["reason"] == "does not match the schema: 3 is not of type 'string' at summary"
    own = [r for r in scores if r["scorer"] == "any_object"]
    assert len(own) == 2 and all(r["pass"] == "true" for r in own)


def test_a_model_without_structured_outputs_is_asked_in_json_mode(runner):
    """JSON mode takes no schema, and OpenAI's wants the word JSON in the messages: the prompt says what to write."""
    with openai_server(answer=lambda messages: '{"summary": "sorts keys", "concepts": ["sorted"]}') as ai:
        run = runner("model=gpt", "model.structured_output=false", "task=tutor", STRICT_ARG, "scorer=is_json",
                     "task.user='Explain this code as JSON with a summary and its concepts: {question}'",
                     env=env_for(ai))
    assert run.code == 0, run.stderr[-2000:]
    assert all(body["response_format"] == {"type": "json_object"} for body in answers_sent(ai))
    assert all(r["pass"] == "true" for r in read_csv(run.root() / "scores.csv") if r["scorer"] == "is_json")


@pytest.mark.parametrize("task,extra,steps", [
    ("chat", [], {"turn-1", "turn-2", "turn-3"}),
    ("debate", ["task.opponent=gpt", "task.turns=2"],
     {"turn-1-model", "turn-1-opponent", "turn-2-model", "turn-2-opponent"}),
])
def test_every_answer_of_a_multi_turn_task_is_asked_in_its_schema(runner, task, extra, steps):
    with openai_server() as ai:
        run = runner("model=gpt", f"task={task}", STRICT_ARG, *extra, env=env_for(ai))
    assert run.code == 0, run.stderr[-2000:]
    assert {row["step"] for row in run.rows()} == steps
    assert len(answers_sent(ai)) == len(steps)
    assert all(body["response_format"]["json_schema"]["schema"] == STRICT for body in answers_sent(ai))
    # the conversation goes on from the JSON answers
    assert all(json.loads(row["response"])["summary"] for row in run.rows())


def test_the_page_tasks_answer_in_the_tasks_schema_and_the_brochures_links_in_their_own(runner):
    with site() as web, openai_server(answer=brochure_model(web.url)) as ai:
        brochure = runner("model=gpt", "task=brochure", f"task.inputs=[{{company: Acme, url: '{web.url}/'}}]",
                          STRICT_ARG, env=env_for(ai))
        summary = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/]", STRICT_ARG,
                         "hydra.run.dir=outputs/runs/summary", env=env_for(ai))
    assert brochure.code == 0, brochure.stderr[-2000:]
    assert summary.code == 0, summary.stderr[-2000:]
    links_call, write_call, summary_call = answers_sent(ai)
    assert links_call["response_format"]["json_schema"]["schema"] == LINKS_SCHEMA
    assert write_call["response_format"]["json_schema"]["schema"] == STRICT
    assert summary_call["response_format"]["json_schema"]["schema"] == STRICT


@pytest.mark.parametrize("schema,said", [
    ("{type: objekt}", "task.schema (task tutor) is not a valid JSON Schema: 'objekt' is not valid under any of "
                       "the given schemas (at type)"),
    ("{type: object, required: summary}", "is not a valid JSON Schema: 'summary' is not of type 'array' "
                                          "(at required)"),
    ("'a string'", "task.schema (task tutor) must be a JSON Schema (a mapping), got 'a string'"),
])
def test_a_bad_task_schema_is_bad_input_before_any_call(runner, schema, said):
    with openai_server() as ai:
        run = runner("model=gpt", "task=tutor", f"task.schema={schema}", env=env_for(ai))
        assert not ai.received
    assert run.code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], run.stderr


def test_the_embedded_model_answers_in_the_task_schema_through_llama_cpps_grammar(runner):
    run = runner("task=joke", "task.schema={type: object, additionalProperties: false, required: [funny], "
                 "properties: {funny: {type: boolean}}}", "scorer=is_json", "max_tokens=24", "temperature=0")
    assert run.code == 0, run.stderr[-2000:]
    answer = json.loads(run.rows()[0]["response"])
    assert set(answer) == {"funny"} and isinstance(answer["funny"], bool)
    assert [r["pass"] for r in read_csv(run.root() / "scores.csv") if r["scorer"] == "is_json"] == ["true"]
