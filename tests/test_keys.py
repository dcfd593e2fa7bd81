"""Which key goes where: a proxy's key of any shape at the proxy's URL, `model.api_key_env` for every provider,
and the key-shape check where it belongs (the provider's own endpoint). Through the command line."""
from __future__ import annotations

import pytest

from runner.errors import ConfigError
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.gemini_server import gemini_server
from tests.fakes.ollama_server import ollama_server

LITELLM_KEY = "sk-litellm-Zq9x-proxy"  # LiteLLM's keys start with sk- whatever wire format the proxy speaks


@pytest.mark.parametrize("model,fake,variable", [("claude", anthropic_server, "ANTHROPIC_API_KEY"),
                                                 ("gemini", gemini_server, "GEMINI_API_KEY")])
def test_a_proxys_sk_key_runs_against_the_proxy(runner, model, fake, variable):
    with fake(key=LITELLM_KEY) as proxy:
        run = runner(f"model={model}", f"model.base_url={proxy.url}", "cache=false", env={variable: LITELLM_KEY})
    assert run.code == 0, run.stderr
    (row,) = run.rows()
    assert row["status"] == "ok" and row["base_url"] == proxy.url
    assert len(proxy.received) == 1


@pytest.mark.parametrize("model,fake,header", [("claude", anthropic_server, "authorization"),
                                               ("gemini", gemini_server, "x-goog-api-key")])
def test_model_api_key_env_names_the_variable_for_every_provider(runner, model, fake, header):
    with fake(key=LITELLM_KEY) as proxy:
        run = runner(f"model={model}", "model.api_key_env=TEAM_PROXY_KEY", "cache=false",
                     env={"TEAM_PROXY_KEY": LITELLM_KEY, "ANTHROPIC_BASE_URL": proxy.url,
                          "GOOGLE_GEMINI_BASE_URL": proxy.url})
    assert run.code == 0, run.stderr
    assert run.rows()[0]["status"] == "ok"
    (sent,) = proxy.received
    assert LITELLM_KEY in sent.headers[header]


def test_ollama_behind_a_proxy_sends_the_key_api_key_env_names(runner):
    with ollama_server() as proxy:
        run = runner("model=llama", f"model.base_url={proxy.url}", "model.api_key_env=TEAM_PROXY_KEY", "cache=false",
                     env={"TEAM_PROXY_KEY": LITELLM_KEY})
    assert run.code == 0, run.stderr
    assert proxy.received[0].headers["authorization"] == f"Bearer {LITELLM_KEY}"


def test_model_api_key_env_that_is_not_set_skips_the_calls_and_says_which(runner):
    with anthropic_server() as server:
        run = runner("model=claude", "model.api_key_env=TEAM_PROXY_KEY", f"model.base_url={server.url}",
                     env={"ANTHROPIC_API_KEY": "test-key"})
    assert run.code == 1
    assert run.rows()[0]["status"] == "skipped" and "TEAM_PROXY_KEY is not set" in run.rows()[0]["error"]
    assert server.received == []


def test_at_the_providers_own_endpoint_another_providers_key_is_refused_before_any_call(runner):
    run = runner("model=claude", env={"ANTHROPIC_API_KEY": "sk-proj-Zq9x-not-anthropic"})
    assert run.code == 2
    assert "ANTHROPIC_API_KEY holds what looks like an openai key, not an anthropic one" in run.stderr
    assert "sk-proj-Zq9x" not in run.stderr


@pytest.mark.parametrize("model,variable,key,own_api", [
    ("gpt", "OPENAI_API_KEY", "sk-ant-Zq9x-anthropics", "https://api.openai.com/v1"),
    ("claude", "ANTHROPIC_API_KEY", "sk-proj-Zq9x-openais", "https://api.anthropic.com"),
    ("gemini", "GEMINI_API_KEY", "sk-proj-Zq9x-openais", "https://generativelanguage.googleapis.com"),
    ("gemini_openai", "GEMINI_API_KEY", "sk-proj-Zq9x-openais", "https://generativelanguage.googleapis.com/v1beta/openai/"),
])
def test_a_base_url_at_the_providers_own_api_still_takes_only_its_keys(run_settings, monkeypatch, model, variable,
                                                                         key, own_api):
    """The check that runs before any call, in this process: the provider's own host (its class's own_host)
    is its own API whether or not model.base_url names it."""
    monkeypatch.setenv(variable, key)
    with pytest.raises(ConfigError, match=f"{variable} holds what looks like an? \\w+ key"):
        run_settings(f"model={model}", f"model.base_url={own_api}")
    run_settings(f"model={model}", "model.base_url=http://127.0.0.1:9/v1")  # a proxy: its keys look like any
