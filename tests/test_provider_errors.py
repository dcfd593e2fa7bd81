"""What an error row says when the server is not the provider's API: a proxy's 401 body, a web page, a refused
connection. Every provider, through its real SDK, against a loopback server that answers like a proxy or a
misconfigured endpoint would."""
from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest

from runner.calls import Request
from runner.providers import provider_for
from runner.settings import ModelSettings
from tests.fakes.server import FakeServer, Reply

MESSAGES = [{"role": "user", "content": "Tell a joke about data"}]
# (provider, sdk, what the SDK wants after the server's URL)
PROVIDERS = [("openai", None, "/v1"), ("anthropic", None, ""), ("gemini", None, ""), ("gemini", "generativeai", ""),
             ("ollama", None, "")]
NGINX = "<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, "test-key")
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "OLLAMA_HOST", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def call(url: str, provider: str, sdk: str | None, stream: bool):
    settings = ModelSettings(name="m", provider=provider, sdk=sdk, id="some-model", base_url=url, stream=stream,
                             timeout_s=5)

    async def go():
        model = provider_for(settings)
        await model.prepare()
        try:
            return await model.generate(Request(MESSAGES, 0.5, 16))
        finally:
            await model.aclose()

    return asyncio.run(go())


def answering(reply: Reply) -> FakeServer:
    return FakeServer({("POST", "/*"): lambda request: reply})


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider,sdk,path", PROVIDERS)
def test_a_401_keeps_the_reason_a_proxy_gave(provider, sdk, path, stream):
    with answering(Reply(401, {"detail": "Invalid API key"})) as server:
        response = call(server.url + path, provider, sdk, stream)
    assert response.error == "HTTP 401: key rejected (Invalid API key)"
    assert response.error_kind == "auth" and not response.retryable


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider,sdk,path", PROVIDERS)
def test_a_web_page_instead_of_the_api_says_so(provider, sdk, path, stream):
    with answering(Reply(200, NGINX, headers={"Content-Type": "text/html"})) as server:
        response = call(server.url + path, provider, sdk, stream)
    assert response.error.startswith("the endpoint answered with HTML")
    assert response.error.endswith("not the provider's JSON: check model.base_url")
    assert not response.retryable  # the same page would come back


@pytest.mark.parametrize("provider,sdk,path", PROVIDERS)
def test_a_gateway_error_page_is_named_by_its_title(provider, sdk, path):
    page = ("<html><head><title>502 Bad Gateway</title></head>"
            "<body><center><h1>502 Bad Gateway</h1></center></body></html>")
    with answering(Reply(502, page, headers={"Content-Type": "text/html"})) as server:
        response = call(server.url + path, provider, sdk, False)
    assert response.error == "HTTP 502: server error (HTML page: 502 Bad Gateway)" and response.retryable


def test_generativeai_connection_errors_are_one_short_line():
    with FakeServer({}) as server:
        url = server.url  # closed again: nothing listens there
    response = call(url, "gemini", "generativeai", False)
    host = url.removeprefix("http://")
    assert response.error_kind == "connection" and response.retryable
    assert response.error.startswith(f"connection failed: {host}: ") and len(response.error) < 120, response.error
    assert "object at 0x" not in response.error and "Max retries" not in response.error


# a key a careless server quotes back, in the forms its body may carry it: URL-encoded, JSON-escaped
ECHOED_KEY = 'sk-Zq9x/echo+key="7788"'
LONG_REASON = (f"Invalid key {quote(ECHOED_KEY, safe='')}: you sent {json.dumps(ECHOED_KEY)} "
               + "and then a very long story " * 4000)


def assert_one_short_redacted_line(error: str) -> None:
    assert error and "\n" not in error and len(error) <= 500, (len(error), error[:200])
    assert "[redacted]" in error
    for form in (ECHOED_KEY, quote(ECHOED_KEY, safe=""), json.dumps(ECHOED_KEY)[1:-1], "echo+key", "echo%2Bkey"):
        assert form not in error, error


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider,sdk,path", PROVIDERS)
def test_an_error_body_is_kept_as_one_short_line_redacted_in_every_form(monkeypatch, provider, sdk, path, stream):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, ECHOED_KEY)
    with answering(Reply(500, {"error": {"message": LONG_REASON, "type": "server_error"}})) as server:
        response = call(server.url + path, provider, sdk, stream)
    assert response.error.startswith("HTTP 500: server error (Invalid key [redacted]: you sent ")
    assert_one_short_redacted_line(response.error)


STREAM_ERRORS = {  # an error sent inside a stream that had begun, in each wire format
    "openai": ("text/event-stream", f"data: {json.dumps({'error': {'message': LONG_REASON}})}\n\n"),
    "anthropic": ("text/event-stream", "event: error\ndata: " + json.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": LONG_REASON}}) + "\n\n"),
    "ollama": ("application/x-ndjson", json.dumps({"error": LONG_REASON}) + "\n"),
}


@pytest.mark.parametrize("provider", list(STREAM_ERRORS))
def test_an_error_inside_a_stream_is_kept_as_one_short_line_redacted(monkeypatch, provider):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(name, ECHOED_KEY)
    kind, body = STREAM_ERRORS[provider]
    with answering(Reply(200, headers={"Content-Type": kind}, chunks=iter([body.encode()]))) as server:
        response = call(server.url + ("/v1" if provider == "openai" else ""), provider, None, True)
    assert response.error.startswith("provider error in stream: "), response.error[:300]
    assert_one_short_redacted_line(response.error)
