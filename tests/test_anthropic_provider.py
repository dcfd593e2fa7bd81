"""The Anthropic provider, unpatched, through the real anthropic SDK against a strict Messages API fake."""
from __future__ import annotations

import asyncio
import json

import pytest

from runner.calls import Request
from runner.providers.anthropic import AnthropicProvider
from runner.providers.base import refuse_empty
from runner.settings import ModelSettings
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.server import FakeServer, Reply

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell a joke about data"}]
# what the fake counts: words of system + messages, plus 3 per message
INPUT_TOKENS = 3 + 5 + 3


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("RUNNER_STRICT_SDK_VALIDATION", "1")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)


def call(server, stream=True, json_mode=False, messages=MESSAGES, temperature=0.5, max_tokens=64, **model):
    settings = ModelSettings(name="claude", provider="anthropic", id="claude-haiku-4-5", base_url=server.url,
                             stream=stream, temperature_max=1, **model)

    async def go():
        provider = AnthropicProvider(settings)
        try:
            return await provider.generate(Request(messages, temperature, max_tokens, json_mode))
        finally:
            await provider.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("stream", [False, True])
def test_text_usage_and_request_shape(stream):
    with anthropic_server(chunk_delay_s=0.01) as server:
        response = call(server, stream=stream)
    assert response.ok, response.error
    assert response.text == "Answer to: Tell a joke about data"
    assert response.usage.input_tokens == INPUT_TOKENS
    assert response.usage.output_tokens == 7
    assert response.usage.cached_tokens == 0 and response.usage.source == "provider"
    assert response.finish_reason == "end_turn"
    received = server.received[0]
    assert received.path == "/v1/messages" and received.headers["anthropic-version"]
    body = received.json
    assert body["system"] == "You are terse."  # apart from the messages
    assert body["messages"] == [{"role": "user", "content": "Tell a joke about data"}]
    assert body["temperature"] == 0.5 and body["max_tokens"] == 64
    if stream:
        assert body["stream"] is True
        assert 0 < response.ttft_s < response.latency_s  # the rest of the answer came after the first text
    else:
        assert "stream" not in body
        assert response.ttft_s is None and response.latency_s > 0


@pytest.mark.parametrize("stream", [False, True])
def test_input_tokens_include_cache_reads_and_writes(stream):
    with anthropic_server(cache_read=6, cache_write=2) as server:
        response = call(server, stream=stream)
    assert response.ok, response.error
    assert response.usage.input_tokens == INPUT_TOKENS  # 3 uncached + 6 read + 2 written, as the API splits them
    assert response.usage.cached_tokens == 6
    assert response.usage.output_tokens == 7


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_stop_reason_is_the_finish_reason(stream):
    with anthropic_server() as server:
        response = call(server, stream=stream, max_tokens=3)
    assert response.ok, response.error
    assert response.text == "Answer to: Tell"
    assert response.finish_reason == "max_tokens" and response.usage.output_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_json_mode_answers_through_one_forced_tool_call_and_no_prefill(stream):
    """JSON mode without thinking: the answer is the input of the one tool the model must call (any object);
    the conversation ends with the user's message, as Claude 4.6 and later require."""
    messages = [{"role": "user", "content": "Reply in JSON with a key links"}]
    with anthropic_server(answer=lambda m: '{"links": ["/about"]}') as server:
        response = call(server, stream=stream, json_mode=True, messages=messages)
    assert response.ok, response.error
    assert json.loads(response.text) == {"links": ["/about"]}
    assert response.finish_reason == "tool_use"
    body = server.received[0].json
    assert body["messages"] == messages  # no prefill
    assert body["tools"] == [{"name": "json_answer", "description": "Give your answer: the JSON object asked for.",
                              "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "tool", "name": "json_answer"}
    if stream:
        assert 0 < response.ttft_s < response.latency_s  # the tool's JSON is the answer's text


@pytest.mark.parametrize("stream", [False, True])
def test_json_mode_prefills_an_open_brace_only_for_a_model_without_tools(stream):
    messages = [{"role": "user", "content": "Reply in JSON with a key links"}]
    with anthropic_server(answer=lambda m: '{"links": []}') as server:
        response = call(server, stream=stream, json_mode=True, messages=messages, tool_call=False)
    assert response.ok, response.error
    assert json.loads(response.text) == {"links": []}
    assert server.received[0].json["messages"] == [*messages, {"role": "assistant", "content": "{"}]
    assert "tools" not in server.received[0].json


def test_json_mode_with_nothing_after_the_prefill_is_no_answer():
    """The prefilled "{" alone is not the model's answer: the engine makes an empty answer an error row."""
    messages = [{"role": "user", "content": "Reply in JSON with a key links"}]
    with anthropic_server(answer=lambda m: "{") as server:
        response = call(server, json_mode=True, messages=messages, tool_call=False)
    assert response.ok and response.text == ""
    assert refuse_empty(response).error_kind == "empty" and response.retryable


def test_rejected_key_is_an_auth_error_sent_once(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "wrong-key")
    with anthropic_server() as server:
        response = call(server)
    assert not response.ok and response.error_kind == "auth" and not response.retryable
    assert response.error == "HTTP 401: key rejected (invalid x-api-key)"
    assert len(server.received) == 1  # the SDK's own retries are off


@pytest.mark.parametrize("status,kind,type_", [(429, "rate_limit", "rate_limit_error"), (500, "server", "api_error"),
                                               (529, "server", "overloaded_error")])
def test_transient_statuses_are_retryable_and_carry_retry_after(status, kind, type_):
    body = {"type": "error", "error": {"type": type_, "message": "busy"}}
    routes = {("POST", "/v1/messages"): lambda r: Reply(status, body, headers={"retry-after": "2"})}
    with FakeServer(routes) as server:
        response = call(server)
    assert response.error_kind == kind and response.retryable
    assert response.retry_after_s == 2.0
    assert f"HTTP {status}" in response.error and "busy" in response.error
    assert len(server.received) == 1


def test_temperature_outside_the_api_range_is_a_bad_request_not_retried():
    with anthropic_server() as server:
        response = call(server, temperature=1.5)
    assert response.error_kind == "bad_request" and not response.retryable
    assert "temperature: range: 0..1" in response.error


def test_error_event_inside_the_stream_is_a_retryable_error():
    with anthropic_server(stream_error_after=2) as server:
        response = call(server, stream=True)
    assert not response.ok and response.retryable and response.error_kind == "stream"
    assert response.error == "provider error in stream: overloaded_error: Overloaded"


def test_a_stream_cut_before_its_stop_reason_is_retryable():
    def cut(request):
        start = {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}
        return Reply(200, headers={"Content-Type": "text/event-stream"},
                     chunks=iter([f"event: message_start\ndata: {json.dumps(start)}\n\n".encode()]))

    with FakeServer({("POST", "/v1/messages"): cut}) as server:
        response = call(server, stream=True)
    assert not response.ok and response.retryable and response.error_kind == "malformed"


def test_a_response_that_drifts_from_the_format_fails_validation():
    bad = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
           "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": "five", "output_tokens": 1}}
    with FakeServer({("POST", "/v1/messages"): lambda r: Reply(200, bad)}) as server:
        response = call(server, stream=False)
    assert not response.ok and response.error_kind == "malformed"


def test_refused_connection_is_a_connection_error():
    with FakeServer({}) as server:
        url = server.url
    response = call(type("Gone", (), {"url": url})(), timeout_s=2)
    assert response.error_kind == "connection" and response.retryable


# The command line, end to end: `python -m runner model=claude` against the fake through ANTHROPIC_BASE_URL.

def test_cli_claude_rows_carry_the_servers_counts_and_cost(runner):
    with anthropic_server(chunk_delay_s=0.01) as server:
        run = runner("model=claude", "repeats=2", "cache=false",
                     env={"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    rows = run.rows()
    assert len(rows) == 2 and len(server.received) == 2
    for row in rows:
        assert row["status"] == "ok" and row["provider"] == "anthropic" and row["model_id"] == "claude-haiku-4-5"
        # the joke task's system (10 words) + user (10 words) + 3 for the one message, as the fake counts
        assert (row["input_tokens"], row["output_tokens"], row["tokens_source"]) == ("23", "12", "provider")
        assert row["finish_reason"] == "end_turn"
        assert 0 < float(row["ttft_s"]) < float(row["latency_s"])
        assert float(row["cost_usd"]) == pytest.approx((23 * 1 + 12 * 5) / 1e6)  # claude-haiku-4-5 list price


def test_cli_claude_without_a_key_skips_its_cells_and_sends_nothing(runner):
    with anthropic_server() as server:
        run = runner("model=claude", "cache=false", env={"ANTHROPIC_BASE_URL": server.url})
    assert run.code == 1, run.stderr
    rows = run.rows()
    assert rows and all(row["status"] == "skipped" for row in rows)
    assert all("ANTHROPIC_API_KEY" in row["error"] for row in rows)
    assert server.received == []


def test_cli_key_with_spaces_around_it_is_a_config_error_before_any_call(runner):
    with anthropic_server() as server:
        run = runner("model=claude", "cache=false",
                     env={"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": " test-key "})
    assert run.code == 2
    assert "ANTHROPIC_API_KEY has spaces" in run.stderr
    assert "test-key" not in run.stderr + run.stdout  # the key's value is never shown
    assert server.received == []


def test_cli_temperature_above_anthropics_range_is_a_config_error(runner):
    with anthropic_server() as server:
        run = runner("model=claude", "temperature=1.5",
                     env={"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "test-key"})
    assert run.code == 2
    assert "temperature=1.5 is out of range for model claude (anthropic accepts 0 to 1)" in run.stderr
    assert server.received == []
