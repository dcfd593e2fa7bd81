"""Which key goes where: a proxy's key of any shape at the proxy's URL, `model.api_key_env` for every provider,
and the key-shape check where it belongs (the provider's own endpoint). Through the command line."""
from __future__ import annotations

import re
import sys

import pytest

from runner.errors import ConfigError
from runner.providers import provider_classes
from runner.providers.keys import key_from_env
from tests import forked
from tests.conftest import clean_env
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.gemini_server import gemini_server
from tests.fakes.ollama_server import ollama_server
from tests.fakes.openai_server import openai_server

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


# a key pasted with a line break inside (a wrapped terminal, a copied block): .env's "\n" is a newline
BROKEN_KEY_FIRST, BROKEN_KEY_SECOND = "sk-Zq9x-FIRSTLINE-7788", "SECONDLINE-Zq9x-7788"


# NUL is left out: no environment can hold one
@pytest.mark.parametrize("byte", ["\n", "\r", "\t", "\x01", "\x1b", "\x7f", "\x85", "\x9f"])
def test_a_key_with_a_control_character_inside_is_bad_input_naming_the_variable_only(monkeypatch, byte):
    monkeypatch.setenv("TEAM_PROXY_KEY", f"sk-Zq9x-abc{byte}def-7788")
    with pytest.raises(ConfigError) as caught:
        key_from_env(("TEAM_PROXY_KEY",))
    message = str(caught.value)
    assert message.startswith("TEAM_PROXY_KEY has a control character") and "\n" not in message
    assert "Zq9x" not in message and "7788" not in message


def files_holding(folder, needle: str) -> list:
    return [p for p in folder.rglob("*") if p.is_file() and p.name != ".env" and needle.encode() in p.read_bytes()]


@pytest.mark.parametrize("model,fake,variable,extra", [
    ("gpt", openai_server, "OPENAI_API_KEY", []),  # the provider's own variable, from .env
    ("claude", anthropic_server, "TEAM_PROXY_KEY", ["model.api_key_env=TEAM_PROXY_KEY"]),
    ("llama", ollama_server, "TEAM_PROXY_KEY", ["model.api_key_env=TEAM_PROXY_KEY"]),
])
def test_a_key_with_a_newline_in_dotenv_exits_2_before_any_call_and_is_written_nowhere(runner, tmp_path, model, fake,
                                                                                         variable, extra):
    (tmp_path / ".env").write_text(f'{variable}="{BROKEN_KEY_FIRST}\\n{BROKEN_KEY_SECOND}"\n', encoding="utf-8")
    with fake() as server:
        run = runner(f"model={model}", f"model.base_url={server.url}{'/v1' if model == 'gpt' else ''}", *extra)
    assert run.code == 2, run.stderr[-3000:]
    assert run.stderr.strip().splitlines() == [
        f"runner: config error: {variable} has a control character (a newline, tab, NUL or another invisible byte) "
        f"inside it: a key is one line of visible characters; fix it in .env or the environment"]
    assert server.received == []
    for part in (BROKEN_KEY_FIRST, BROKEN_KEY_SECOND):
        assert part not in run.stdout + run.stderr
        assert files_holding(tmp_path, part) == []
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow  # `python -m runner.chat` as a process of its own
def test_the_chat_refuses_a_key_with_a_newline_before_the_app_starts(tmp_path):
    env = clean_env(OPENAI_API_KEY=f"{BROKEN_KEY_FIRST}\n{BROKEN_KEY_SECOND}")
    done = forked.run([sys.executable, "-m", "runner.chat", "model=gpt"], cwd=tmp_path, env=env,
                      capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("runner.chat: config error: OPENAI_API_KEY has a control character")
    assert BROKEN_KEY_FIRST not in done.stderr + done.stdout and BROKEN_KEY_SECOND not in done.stderr + done.stdout
    assert not (tmp_path / "outputs").exists()


def test_a_missing_key_is_one_line_per_model_naming_the_variable_and_where_it_was_looked_for(runner):
    run = runner("-m", "model=claude,gpt,gemini", "temperature=0,1")  # six jobs, no key at all
    assert run.code == 1, run.stderr[-3000:]
    said = [line for line in run.stderr.splitlines() if "is not set" in line]
    expected = [("claude", "anthropic", "ANTHROPIC_API_KEY"), ("gpt", "openai", "OPENAI_API_KEY"),
                ("gemini", "gemini", "GEMINI_API_KEY or GOOGLE_API_KEY")]
    assert len(said) == len(expected), said
    for line, (model, provider, variables) in zip(said, expected):
        assert re.fullmatch(rf"runner: {model} \({provider}/[\w.-]+\): {variables} is not set in the environment "
                            rf"or in \./\.env; its calls are skipped", line), line
    assert {row["status"] for row in run.rows()} == {"skipped"}


def test_help_names_every_providers_key_variable_and_how_to_add_an_experiment(tmp_path):
    done = forked.run([sys.executable, "-m", "runner", "--help"], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    keys = next(line for line in done.stdout.splitlines() if line.startswith("Keys:"))
    keys += done.stdout.partition(keys)[2].split("\n\n")[0]  # the paragraph it starts
    for variable in sorted({name for cls in provider_classes() for name in cls.key_env}):
        assert variable in keys, f"--help's Keys line does not name {variable}: {keys!r}"
    groups = next(line for line in done.stdout.splitlines() if line.startswith("== Config groups"))
    assert "+experiment=" in groups and "\nexperiment: " in done.stdout  # listed, and said how it is added
