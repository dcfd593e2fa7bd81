"""The Ollama provider, unpatched, through the real ollama package against a strict /api/chat fake."""
from __future__ import annotations

import asyncio
import json

import pytest

from runner.calls import Request
from runner.providers.ollama import OllamaProvider
from runner.settings import ModelSettings
from tests.fakes.ollama_server import ollama_server
from tests.fakes.server import FakeServer, Reply

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell a joke about data"}]


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)


def call(url, stream=True, json_mode=False, messages=MESSAGES, max_tokens=64, model_id="llama3.2", **model):
    settings = ModelSettings(name="llama", provider="ollama", id=model_id, base_url=url, stream=stream, **model)

    async def go():
        provider = OllamaProvider(settings)
        try:
            return await provider.generate(Request(messages, 0.5, max_tokens, json_mode))
        finally:
            await provider.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("stream", [False, True])
def test_text_usage_from_the_final_line_and_request_shape(stream):
    with ollama_server(chunk_delay_s=0.01) as server:
        response = call(server.url, stream=stream)
    assert response.ok, response.error
    assert response.text == "Answer to: Tell a joke about data"
    assert response.usage.input_tokens == 3 + 5 + 2 * 3  # prompt_eval_count as the fake counts
    assert response.usage.output_tokens == 7  # eval_count
    assert response.usage.source == "provider" and response.usage.cached_tokens == 0
    assert response.finish_reason == "stop"
    body = server.received[0].json
    assert server.received[0].path == "/api/chat"
    assert body["messages"] == MESSAGES and body["stream"] is stream
    assert body["options"] == {"temperature": 0.5, "num_predict": 64}
    assert "format" not in body
    if stream:
        assert 0 < response.ttft_s < response.latency_s  # the rest of the answer came after the first text
    else:
        assert response.ttft_s is None and response.latency_s > 0


@pytest.mark.parametrize("stream", [False, True])
def test_length_is_the_finish_reason_when_num_predict_cuts_the_answer(stream):
    with ollama_server() as server:
        response = call(server.url, stream=stream, max_tokens=3)
    assert response.ok, response.error
    assert response.text == "Answer to: Tell" and response.finish_reason == "length"
    assert response.usage.output_tokens == 3


def test_json_mode_sends_format_json():
    with ollama_server(answer=lambda m: '{"links": []}') as server:
        response = call(server.url, json_mode=True)
    assert response.ok, response.error
    assert json.loads(response.text) == {"links": []}
    assert server.received[0].json["format"] == "json"


def test_ollama_host_is_honoured_when_base_url_is_not_set(monkeypatch):
    with ollama_server() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        response = call(None)
    assert response.ok, response.error
    assert len(server.received) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_that_is_not_pulled_says_how_to_pull_it(stream):
    with ollama_server(models=("llama3.2",)) as server:
        response = call(server.url, stream=stream, model_id="mistral")
    assert not response.ok and not response.retryable and response.error_kind == "not_found"
    assert "`ollama pull mistral`" in response.error
    assert len(server.received) == 1


@pytest.mark.parametrize("status,kind", [(429, "rate_limit"), (500, "server"), (503, "server")])
def test_transient_statuses_are_retryable(status, kind):
    with FakeServer({("POST", "/api/chat"): lambda r: Reply(status, {"error": "server busy"})}) as server:
        response = call(server.url)
    assert response.error_kind == kind and response.retryable
    assert f"HTTP {status}" in response.error and "server busy" in response.error
    assert len(server.received) == 1


def test_error_line_inside_the_stream_is_a_retryable_error():
    with ollama_server(stream_error_after=2) as server:
        response = call(server.url, stream=True)
    assert not response.ok and response.retryable and response.error_kind == "stream"
    assert "unexpected EOF" in response.error


def test_a_stream_cut_before_its_final_line_is_retryable():
    line = json.dumps({"model": "llama3.2", "created_at": "2026-11-24T10:00:00Z",
                       "message": {"role": "assistant", "content": "Hi"}, "done": False}).encode() + b"\n"
    route = lambda r: Reply(200, headers={"Content-Type": "application/x-ndjson"}, chunks=iter([line]))  # noqa: E731
    with FakeServer({("POST", "/api/chat"): route}) as server:
        response = call(server.url, stream=True)
    assert not response.ok and response.retryable and response.error_kind == "malformed"


@pytest.mark.parametrize("stream", [False, True])
def test_refused_connection_is_a_retryable_connection_error(stream):
    with FakeServer({}) as server:
        url = server.url
    response = call(url, stream=stream, timeout_s=2)
    assert response.error_kind == "connection" and response.retryable


# The command line, end to end: `python -m runner model=llama` against the fake through OLLAMA_HOST.

def test_cli_llama_through_ollama_host_gives_ok_rows_at_no_cost(runner):
    with ollama_server(chunk_delay_s=0.01) as server:
        run = runner("model=llama", "repeats=2", "cache=false", env={"OLLAMA_HOST": server.url})
    assert run.code == 0, run.stderr
    rows = run.rows()
    assert len(rows) == 2 and len(server.received) == 2
    for row in rows:
        assert row["status"] == "ok" and row["provider"] == "ollama" and row["model_id"] == "llama3.2"
        # the joke task's system (10 words) + user (10 words) + 3 per message, as the fake counts
        assert (row["input_tokens"], row["output_tokens"], row["tokens_source"]) == ("26", "12", "provider")
        assert row["finish_reason"] == "stop"
        assert 0 < float(row["ttft_s"]) < float(row["latency_s"])
        assert float(row["cost_usd"]) == 0.0  # local: no price unless model.price is set


def test_cli_llama_not_pulled_is_an_error_row_saying_how_to_pull(runner):
    with ollama_server(models=("qwen2.5",)) as server:
        run = runner("model=llama", "cache=false", env={"OLLAMA_HOST": server.url})
    assert run.code == 1, run.stderr
    rows = run.rows()
    assert [row["status"] for row in rows] == ["error"]
    assert "`ollama pull llama3.2`" in rows[0]["error"]
    assert len(server.received) == 1  # not retried: pulling is up to the user
