"""Gemini, unpatched, through both Google SDKs (google-genai, and google-generativeai with model.sdk=generativeai)
against a strict fake of the Gemini API on 127.0.0.1."""
from __future__ import annotations

import asyncio
import errno
import json
import ssl
import subprocess
import sys

import pytest

from runner.calls import Request
from runner.errors import ConfigError
from runner.providers import gemini, provider_for
from runner.settings import ModelSettings
from tests.conftest import clean_env
from tests.fakes.gemini_server import gemini_server, google_error
from tests.fakes.server import FakeServer

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell a joke about data"}]
SDKS = [None, "generativeai"]
MODEL_ID = "gemini-2.5-flash-lite"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    for name in ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def settings(url: str, sdk=None, stream=True, **model) -> ModelSettings:
    return ModelSettings(name="gemini", provider="gemini", id=MODEL_ID, base_url=url, sdk=sdk, stream=stream,
                         **model)


def call(server, sdk=None, stream=True, json_mode=False, messages=MESSAGES, max_tokens=64, **model):
    async def go():
        provider = provider_for(settings(server.url, sdk, stream, **model))
        try:
            return await provider.generate(Request(messages, 0.5, max_tokens, json_mode))
        finally:
            await provider.aclose()

    return asyncio.run(go())


def generate_calls(server) -> list:
    return [r for r in server.received if ":generateContent" in r.path or ":streamGenerateContent" in r.path]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("sdk", SDKS)
def test_text_usage_and_request_are_what_the_api_expects(sdk, stream):
    with gemini_server() as server:
        response = call(server, sdk, stream)
    assert response.ok, response.error
    assert response.text == "Answer to: Tell a joke about data"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3 + 5, 7)  # words, as the fake counts
    assert response.usage.source == "provider" and response.usage.cached_tokens == 0
    assert response.finish_reason == "stop"
    (sent,) = server.received
    path, _, query = sent.path.partition("?")
    assert path == f"/v1beta/models/{MODEL_ID}:{'streamGenerateContent' if stream else 'generateContent'}"
    if stream:  # google-genai streams server-sent events; google-generativeai one JSON array
        assert query == ("alt=sse" if sdk is None else "%24alt=json%3Benum-encoding%3Dint")
    assert sent.headers["x-goog-api-key"] == "test-key"
    body = sent.json
    assert body["systemInstruction"]["parts"] == [{"text": "You are terse."}]
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Tell a joke about data"}]}]
    assert body["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 64}
    if stream:
        assert 0 < response.ttft_s <= response.latency_s
    else:
        assert response.ttft_s is None and response.latency_s > 0


@pytest.mark.parametrize("sdk", SDKS)
def test_streamed_text_arrives_in_pieces_and_usage_comes_from_the_last_chunk(sdk):
    with gemini_server(chunk_delay_s=0.01) as server:
        response = call(server, sdk, stream=True)
    assert response.text == "Answer to: Tell a joke about data"
    assert response.usage.output_tokens == 7  # earlier chunks carry only promptTokenCount
    assert response.ttft_s < response.latency_s


@pytest.mark.parametrize("sdk", SDKS)
def test_assistant_turns_are_sent_as_model(sdk):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Another joke"}]
    with gemini_server() as server:
        response = call(server, sdk, messages=messages)
    assert response.ok, response.error
    assert [c["role"] for c in server.received[0].json["contents"]] == ["user", "model", "user"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("sdk", SDKS)
def test_an_answer_cut_by_max_tokens_finishes_with_length(sdk, stream):
    with gemini_server() as server:
        response = call(server, sdk, stream, max_tokens=3)
    assert response.ok, response.error
    assert response.finish_reason == "length"
    assert response.text == "Answer to: Tell" and response.usage.output_tokens == 3


@pytest.mark.parametrize("sdk", SDKS)
def test_a_safety_stop_is_reported_as_content_filter(sdk):
    with gemini_server(finish_reason="SAFETY") as server:
        response = call(server, sdk)
    assert response.finish_reason == "content_filter"


@pytest.mark.parametrize("stream", [False, True])
def test_cached_and_thinking_tokens_are_read(stream):
    # input_tokens counts all input, cached included; thinking is billed as output
    with gemini_server(cached_tokens=2, thoughts_tokens=4) as server:
        response = call(server, None, stream)
    assert (response.usage.input_tokens, response.usage.cached_tokens, response.usage.output_tokens) == (8, 2, 11)


@pytest.mark.parametrize("sdk", SDKS)
def test_json_mode_asks_for_application_json(sdk):
    with gemini_server(answer=lambda contents: '{"links": []}') as server:
        response = call(server, sdk, json_mode=True)
    assert response.ok, response.error
    assert json.loads(response.text) == {"links": []}
    assert server.received[0].json["generationConfig"]["responseMimeType"] == "application/json"


@pytest.mark.parametrize("status", [400, 401, 403])  # 400 API_KEY_INVALID is what Google sends for a wrong key
@pytest.mark.parametrize("sdk", SDKS)
def test_a_rejected_key_is_an_auth_error_sent_once(monkeypatch, sdk, status):
    monkeypatch.setenv("GEMINI_API_KEY", "wrong-key")
    with gemini_server(reject_key_with=status) as server:
        response = call(server, sdk)
    assert not response.ok and response.error_kind == "auth" and not response.retryable
    assert f"HTTP {status}: key rejected" in response.error
    assert len(server.received) == 1  # no retry by the SDK, google-auth or the provider


@pytest.mark.parametrize("status,kind", [(429, "rate_limit"), (500, "server"), (503, "server")])
@pytest.mark.parametrize("sdk", SDKS)
def test_transient_statuses_are_retryable_and_carry_retry_after(sdk, status, kind):
    reply = google_error(status, "Resource has been exhausted (e.g. check quota).", headers={"Retry-After": "2"})
    with FakeServer({("POST", "/v1beta/models/*"): lambda request: reply}) as server:
        response = call(server, sdk)
    assert response.error_kind == kind and response.retryable
    assert response.retry_after_s == 2.0
    assert len(server.received) == 1


@pytest.mark.parametrize("sdk", SDKS)
def test_an_error_inside_the_stream_is_recorded(sdk):
    with gemini_server(stream_error_after=2) as server:
        response = call(server, sdk, stream=True)
    assert not response.ok and response.retryable
    # google-generativeai drops the error object inside its JSON array: all that is left is a cut stream
    assert ("internal error" if sdk is None else "ended before a finish reason") in response.error


@pytest.mark.parametrize("sdk", SDKS)
def test_a_refused_connection_is_a_connection_error_that_names_the_host_and_why(sdk):
    with FakeServer({}) as server:
        url = server.url
    response = call(type("Gone", (), {"url": url})(), sdk, timeout_s=5)
    assert response.error_kind == "connection" and response.retryable
    assert response.error.startswith(f"connection failed: {url.removeprefix('http://')}: "), response.error
    assert "Connection refused" in response.error and " object at 0x" not in response.error


def test_aiohttps_connection_error_is_told_without_the_ssl_contexts_repr():
    """google-genai connects with aiohttp when aiohttp is installed (not here): its ClientConnectorError reads
    "Cannot connect to host H:443 ssl:<ssl.SSLContext object at 0x..> [...]". The mapping reads its host, port
    and OS error instead; the exception is built as aiohttp builds it."""
    class ClientConnectorError(OSError):
        def __init__(self, host, port, ssl_context, os_error):
            self.host, self.port, self.os_error, self._ssl = host, port, os_error, ssl_context
            super().__init__(os_error.errno, os_error.strerror)

        def __str__(self):
            return f"Cannot connect to host {self.host}:{self.port} ssl:{self._ssl} [{self.strerror}]"

    exc = ClientConnectorError("generativelanguage.googleapis.com", 443, ssl.create_default_context(),
                               ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"))
    assert "<ssl.SSLContext object at 0x" in str(exc)
    error = str(gemini._mapped(exc))
    assert error == "connection failed: generativelanguage.googleapis.com:443: Connection refused"


def test_generativeai_streaming_through_a_proxy_that_sends_events_is_told_to_set_stream_false():
    """google-generativeai streams one JSON array; a proxy answering server-sent events (as google-genai asks)
    is the right endpoint with the wrong stream format: model.stream=false, not model.base_url, is the fix."""
    with gemini_server(sse_always=True) as server:
        streamed = call(server, "generativeai", stream=True)
        plain = call(server, "generativeai", stream=False)
        genai = call(server, None, stream=True)
    assert streamed.error_kind == "not_the_api" and not streamed.retryable
    assert "server-sent events" in streamed.error and "set model.stream=false" in streamed.error
    assert "model.base_url" not in streamed.error
    assert plain.ok and genai.ok, (plain.error, genai.error)


@pytest.mark.parametrize("sdk", SDKS)
def test_a_slow_answer_times_out_as_a_retryable_timeout(sdk):
    with gemini_server(latency_s=3) as server:
        response = call(server, sdk, timeout_s=0.5)
    assert response.error_kind == "timeout" and response.retryable, response.error
    assert len(server.received) == 1


@pytest.mark.parametrize("sdk", SDKS)
def test_keys_are_checked_before_any_call(monkeypatch, sdk):
    provider = provider_for(settings(None, sdk))  # Google's own endpoint
    monkeypatch.delenv("GEMINI_API_KEY")
    assert provider.missing_key() == "GEMINI_API_KEY or GOOGLE_API_KEY is not set in the environment or in ./.env"
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-test ")
    with pytest.raises(ConfigError, match="spaces"):
        provider.missing_key()
    monkeypatch.setenv("GOOGLE_API_KEY", "sk-test")
    with pytest.raises(ConfigError, match="GOOGLE_API_KEY holds what looks like an openai key, not a gemini one"):
        provider.missing_key()
    # a proxy's keys have shapes of their own (LiteLLM's start with sk-): only Google's endpoint insists
    provider_for(settings("http://127.0.0.1:9", sdk)).missing_key()
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
    provider.missing_key()


# --- the command line -----------------------------------------------------------------------------

@pytest.mark.parametrize("sdk", SDKS)
def test_cli_gemini_gives_ok_rows_with_the_servers_counts(runner, sdk):
    overrides = ["model=gemini", "repeats=2", "cache=false"] + ([f"model.sdk={sdk}"] if sdk else [])
    with gemini_server() as server:
        run = runner(*overrides, env={"GEMINI_API_KEY": "test-key", "GOOGLE_GEMINI_BASE_URL": server.url})
    assert run.code == 0, run.stderr
    rows = run.rows()
    assert len(rows) == 2 and len(generate_calls(server)) == 2
    for row in rows:
        assert row["status"] == "ok" and row["provider"] == "gemini" and row["model_id"] == MODEL_ID
        assert row["tokens_source"] == "provider" and row["finish_reason"] == "stop"
        assert int(row["input_tokens"]) > 0 and int(row["output_tokens"]) > 0
        assert 0 < float(row["ttft_s"]) <= float(row["latency_s"])
        assert float(row["cost_usd"]) > 0  # genai-prices knows the model under "google"
    if sdk:  # the retired SDK's warnings are one line, not a wall
        output = run.stdout + run.stderr
        assert output.count("end of support") == 1 and "All support for the `google.generativeai`" not in output
        assert "[runner.providers.gemini_generativeai][WARNING] - google-generativeai has reached end of support" \
            in output  # the runner's own log line, not Hydra's


def test_cli_another_sdk_is_not_answered_from_the_cache_of_the_first(runner):
    """google-generativeai is another path to the same model: its run asks the server again."""
    with gemini_server() as server:
        env = {"GEMINI_API_KEY": "test-key", "GOOGLE_GEMINI_BASE_URL": server.url}
        genai = runner("model=gemini", env=env)
        generativeai = runner("model=gemini", "model.sdk=generativeai", env=env)
        asked = len(generate_calls(server))
    assert genai.code == generativeai.code == 0, genai.stderr + generativeai.stderr
    assert [r["cache_hit"] for r in generativeai.rows()] == ["false"] and asked == 2


def test_cli_gemini_without_a_key_skips_and_sends_nothing(runner):
    with gemini_server() as server:
        run = runner("model=gemini", "cache=false", env={"GOOGLE_GEMINI_BASE_URL": server.url})
    assert run.code == 1
    (row,) = run.rows()
    assert row["status"] == "skipped" and "GEMINI_API_KEY or GOOGLE_API_KEY" in row["error"]
    assert server.received == []


def test_cli_unknown_sdk_is_a_config_error(runner):
    run = runner("model=gemini", "model.sdk=vertex")
    assert run.code == 2
    assert "model.sdk='vertex' is not known for provider gemini (known: generativeai)" in run.stderr


@pytest.mark.slow  # a Python process of its own
def test_cli_generativeai_without_the_extra_says_how_to_install_it(tmp_path):
    # the interpreter as it is when the extra is not installed: importing google.generativeai fails
    script = ("import runpy, sys; sys.modules['google.generativeai'] = None; "
              "runpy.run_module('runner', run_name='__main__', alter_sys=True)")
    proc = subprocess.run([sys.executable, "-c", script, "model=gemini", "model.sdk=generativeai"], cwd=tmp_path,
                          env=clean_env(GEMINI_API_KEY="test-key"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'runner[generativeai]'" in proc.stderr
