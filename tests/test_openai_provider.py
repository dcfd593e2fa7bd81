"""The OpenAI provider, unpatched, through the real openai SDK against a strict Chat Completions fake."""
from __future__ import annotations

import asyncio
import json

import pytest

from runner.calls import Request
from runner.providers.openai import OpenAIProvider
from runner.settings import ModelSettings
from tests.fakes.openai_server import openai_server
from tests.fakes.server import FakeServer, Reply

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell a joke about data"}]


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("RUNNER_STRICT_SDK_VALIDATION", "1")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def call(server, stream=True, json_mode=False, messages=MESSAGES, **model):
    settings = ModelSettings(name="gpt", provider="openai", id="gpt-4.1-mini", base_url=server.url + "/v1",
                             stream=stream, **model)

    async def go():
        provider = OpenAIProvider(settings)
        try:
            return await provider.generate(Request(messages, 0.5, 64, json_mode))
        finally:
            await provider.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("stream", [False, True])
def test_usage_and_text_are_what_the_server_sent(stream):
    with openai_server(chunk_delay_s=0.01) as server:
        response = call(server, stream=stream)
    assert response.ok, response.error
    assert response.text == "Answer to: Tell a joke about data"
    assert response.usage.input_tokens == 3 + 5 + 2 * 3  # words + 3 per message, as the fake counts
    assert response.usage.output_tokens == 7
    assert response.usage.source == "provider"
    assert response.finish_reason == "stop"
    body = server.received[0].json
    assert body["messages"] == MESSAGES and body["temperature"] == 0.5
    assert body["max_completion_tokens"] == 64
    if stream:
        assert body["stream_options"] == {"include_usage": True}
        assert 0 < response.ttft_s < response.latency_s  # the rest of the answer came after the first text
    else:
        assert response.ttft_s is None and response.latency_s > 0


def test_cached_tokens_are_read():
    with openai_server(cached_tokens=5) as server:
        response = call(server, stream=True)
    assert response.usage.cached_tokens == 5


@pytest.mark.parametrize("stream", [True, False])
def test_usage_without_token_details_has_no_cached_tokens(stream):
    with openai_server(token_details=False) as server:
        response = call(server, stream=stream)
    assert response.usage.cached_tokens == 0 and response.usage.input_tokens > 0


def test_stream_without_usage_is_counted_with_tiktoken(real_encodings):
    with openai_server(usage_in_stream=False) as server:
        response = call(server, stream=True)
    assert response.ok
    assert response.usage.source == "tiktoken"  # gpt-4.1-mini: o200k_base
    # the messages' tokens plus OpenAI's framing (3 a message, 3 for the reply); the answer's own tokens
    assert response.usage.input_tokens == 4 + 5 + 2 * 3 + 3 and response.usage.output_tokens == 8


def test_json_mode_sends_response_format():
    messages = [{"role": "user", "content": "Reply in JSON with a key links"}]
    with openai_server(answer=lambda m: '{"links": []}') as server:
        response = call(server, json_mode=True, messages=messages)
    assert response.ok, response.error
    assert json.loads(response.text) == {"links": []}
    assert server.received[0].json["response_format"] == {"type": "json_object"}


def test_rejected_key_is_an_auth_error_not_retryable(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key")
    with openai_server() as server:
        response = call(server)
    assert not response.ok and response.error_kind == "auth" and not response.retryable
    assert "401" in response.error
    assert len(server.received) == 1  # the SDK's own retries are off


@pytest.mark.parametrize("status,kind", [(429, "rate_limit"), (500, "server"), (503, "server")])
def test_transient_statuses_are_retryable_and_carry_retry_after(status, kind):
    routes = {("POST", "/v1/chat/completions"): lambda r: Reply(status, {"error": {"message": "busy"}},
                                                                headers={"Retry-After": "2"})}
    with FakeServer(routes) as server:
        response = call(server)
    assert response.error_kind == kind and response.retryable
    assert response.retry_after_s == 2.0
    assert len(server.received) == 1


def test_error_inside_the_stream_is_recorded():
    with openai_server(stream_error_after=2) as server:
        response = call(server, stream=True)
    assert not response.ok and response.retryable
    assert "server had an error" in response.error


def test_a_response_that_drifts_from_the_format_fails_validation():
    bad = {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": "zero", "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    with FakeServer({("POST", "/v1/chat/completions"): lambda r: Reply(200, bad)}) as server:
        response = call(server, stream=False)
    assert not response.ok and response.error_kind == "malformed"


def test_refused_connection_is_a_connection_error():
    with FakeServer({}) as server:
        url = server.url
    settings_server = type("S", (), {"url": url})()
    response = call(settings_server, timeout_s=2)
    assert response.error_kind == "connection" and response.retryable
