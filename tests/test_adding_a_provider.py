"""The docs' "Adding a provider" page (docs/contributing/adding-a-provider.md) is true: its three pieces are
the repository's own files, word for word, and the provider they make answers a call through the real openai
SDK against the strict loopback fake, priced and keyed as its class declares. Also: a provider registered the
same way from a module of its own (not shipped in runner/) is one module, one registry entry and one YAML
file, with no other code to touch."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from runner.calling.costs import call_cost
from runner.calls import Usage
from runner.providers import PROVIDERS
from tests.conftest import REPO
from tests.fakes.openai_server import MISTRAL_FIELDS, openai_server


def page(name: str) -> str:
    return (REPO / "docs" / "contributing" / name).read_text(encoding="utf-8")


def code_blocks(section: str) -> list[str]:
    return re.findall(r"```(?:python|yaml)\n(.*?)```", section, re.DOTALL)


def test_the_docs_example_is_the_code_that_runs():
    module, registry_line, config = code_blocks(page("adding-a-provider.md"))
    assert module == (REPO / "runner" / "providers" / "mistral.py").read_text(encoding="utf-8")
    assert registry_line.strip() in (REPO / "runner" / "providers" / "__init__.py").read_text(encoding="utf-8")
    assert config == (REPO / "conf" / "model" / "mistral.yaml").read_text(encoding="utf-8")


def test_the_docs_provider_answers_through_the_sdk_and_is_priced_as_it_says(run_settings, run_here,
                                                                             monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # OpenAI's variable: not Mistral's endpoint
    with openai_server(key="mistral-test-key", fields=MISTRAL_FIELDS) as server:
        run = run_settings("model=mistral", f"model.base_url={server.url}/v1", "task.inputs=[{audience: owls}]")
        records, tally = run_here(run)
        [request] = server.received
    [row] = records
    assert row["status"] == "ok" and row["provider"] == "mistral" and row["model_id"] == "mistral-small-latest"
    assert request.json["model"] == "mistral-small-latest" and request.json["max_tokens"] == run.max_tokens
    assert "max_completion_tokens" not in request.json  # OpenAI's own field; compatible APIs take max_tokens
    assert request.json["random_seed"] == row["seed"] and "seed" not in request.json  # Mistral's name for it
    assert row["base_url"] == f"{server.url}/v1"
    price = call_cost(run.model, Usage(row["input_tokens"], row["output_tokens"], 0))
    assert row["cost_usd"] == price and price > 0  # genai-prices' mistral price, from the class's price_provider


def test_a_mistral_key_missing_skips_its_cells_and_names_the_variable(run_settings, run_here):
    records, _ = run_here(run_settings("model=mistral", "task.inputs=[{audience: owls}]"))
    assert records[0]["status"] == "skipped"
    assert records[0]["error"] == "MISTRAL_API_KEY is not set in the environment or in ./.env"


def test_another_providers_key_is_refused_at_mistrals_own_api_only(run_settings, monkeypatch):
    """Mistral's keys have no prefix; an OpenAI-shaped key at api.mistral.ai is still not Mistral's."""
    from runner.errors import ConfigError

    monkeypatch.setenv("MISTRAL_API_KEY", "sk-proj-looks-like-openai")
    with pytest.raises(ConfigError, match="MISTRAL_API_KEY holds what looks like an openai key, not a mistral one"):
        run_settings("model=mistral")
    run_settings("model=mistral", "model.base_url=http://127.0.0.1:9/v1")  # a gateway's keys may look like any


def test_a_provider_of_ones_own_is_one_module_one_registry_line_and_one_yaml(tmp_path, monkeypatch, run_settings,
                                                                           run_here):
    """Registered the way the page says, from outside runner/: nothing but the three pieces."""
    package = tmp_path / "my_providers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "acme.py").write_text(
        '"""Acme\'s OpenAI-compatible API."""\n'
        "from runner.providers.openai import OpenAIProvider\n\n\n"
        "class AcmeProvider(OpenAIProvider):\n"
        '    key_env = ("ACME_API_KEY",)\n'
        '    key_prefix, key_owner, own_host = "acme-", "acme", "api.acme.example"\n'
        "    price_provider = None  # not in genai-prices: the YAML gives a price\n"
        "    endpoint_env = None\n"
        '    default_base_url = "https://api.acme.example/v1"\n'
        '    max_tokens_field = "max_tokens"\n', encoding="utf-8")
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "acme.yaml").write_text("provider: acme\nid: acme-1\nbase_url: null\nprice: {input: 2.0, output: 8.0}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(PROVIDERS, "acme", "my_providers.acme:AcmeProvider")
    monkeypatch.setenv("ACME_API_KEY", "acme-test-key")
    try:
        with openai_server(key="acme-test-key") as server:
            run = run_settings("model=acme", f"model.base_url={server.url}/v1", "task.inputs=[{audience: owls}]",
                               f"hydra.searchpath=[file://{(tmp_path / 'conf').as_posix()}]")
            records, _ = run_here(run)
        [row] = records
        assert row["status"] == "ok" and row["provider"] == "acme"
        assert row["cost_usd"] == pytest.approx((row["input_tokens"] * 2.0 + row["output_tokens"] * 8.0) / 1e6)
    finally:
        sys.modules.pop("my_providers.acme", None)
        sys.modules.pop("my_providers", None)


def test_the_example_module_names_no_table_elsewhere():
    """What the page promises: adding Mistral touched no table in another module."""
    for path in (REPO / "runner").rglob("*.py"):
        if path.name in ("mistral.py", "__init__.py") and path.parent.name == "providers":
            continue
        # the provider's name as a table key, an import or a name; not an alternative of a pattern of model
        # families (Ollama serves Mistral AI's open models, family "mistral": runner/providers/ollama.py)
        named = re.search(r"(?<![|a-z0-9-])mistral(?![|a-z0-9-])", path.read_text(encoding="utf-8").lower())
        assert not named, f"{path} names mistral"
    assert Path(REPO / "conf" / "model" / "mistral.yaml").is_file()
