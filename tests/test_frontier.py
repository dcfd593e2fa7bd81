"""The frontier as configs: each provider's flagship and fast reasoning model in conf/model/, priced by
genai-prices as themselves and known to their provider's family table with the efforts the APIs take, and
`+experiment=frontier` comparing them at two efforts, judged, priced cell by cell in a dry run."""
from __future__ import annotations

import copy
import csv
import dataclasses
import functools
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from runner.calling.asking import asking
from runner.calling.costs import call_cost, price_provider
from runner.calls import Usage
from runner.providers import provider_class
from runner.providers.capabilities import capabilities
from runner.settings import model_settings
from tests.conftest import KEY_VARS, REPO

CONF = REPO / "conf"
EXPERIMENT = yaml.safe_load((CONF / "experiment" / "frontier.yaml").read_text(encoding="utf-8"))
SWEEP = EXPERIMENT["hydra"]["sweeper"]["params"]
FRONTIER = SWEEP["model"].split(",")
EFFORTS = SWEEP["model.reasoning"].split(",")
KEYS = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test", "GEMINI_API_KEY": "AIza-test"}

# What each frontier model takes, as its provider documents it (checked 2026-12-07 by search): the values of
# model.reasoning and the effort it thinks at when told nothing.
#  - GPT-5.6 Sol and Luna: none, low, medium, high, xhigh (and `max`, which model.reasoning has no value for);
#    medium when told nothing (OpenAI's reasoning guide as quoted in inspect_ai#5162/#5242).
#  - Claude Opus 5.5: always thinks (low to xhigh, medium by default); Haiku 5.5: disabled or low to xhigh,
#    medium by default (runner.providers.claude_models, from Anthropic's model table).
#  - Gemini 3.1 Pro: low, medium, high, default high (Google's Gemini 3.5 Flash guide compares it); Gemini 3.8
#    Flash: low, medium, high, default medium, as 3.7 Flash (comet-ml/opik#8280, coder/xum#4060: minimal is a 400).
TAKES = {
    "gpt-5.6-sol": (("none", "low", "medium", "high", "xhigh"), "medium"),
    "gpt-5.6-luna": (("none", "low", "medium", "high", "xhigh"), "medium"),
    "claude-opus-5-5": (("low", "medium", "high", "xhigh"), "medium"),
    "claude-haiku-5-5": (("none", "low", "medium", "high", "xhigh"), "medium"),
    "gemini-3.1-pro-preview": (("low", "medium", "high"), "high"),
    "gemini-3.8-flash": (("low", "medium", "high"), "medium"),
}


@functools.cache
def _composed_model(name: str) -> dict:
    """conf/model/NAME.yaml as the run composes it (composed once per name: the files do not change here)."""
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="runner"):
        cfg = compose("config", overrides=[f"model={name}"])
    return OmegaConf.to_container(cfg.model, resolve=True)


def raw_model(name: str) -> dict:
    """conf/model/NAME.yaml as the run composes it: a copy of its own for the test."""
    return copy.deepcopy(_composed_model(name))


def test_the_experiment_compares_a_flagship_and_a_fast_model_of_each_provider():
    providers = [raw_model(name)["provider"] for name in FRONTIER]
    assert sorted(providers) == ["anthropic", "anthropic", "gemini", "gemini", "openai", "openai"]
    assert sorted(raw_model(name)["id"] for name in FRONTIER) == sorted(TAKES)
    assert len(EFFORTS) == 2


def test_every_model_config_carries_every_common_key():
    """Every key of gpt.yaml (the full set) is in each frontier config; the keys of model.reasoning and of what a
    model takes are in every config, so `model.KEY=...` works on the command line for each."""
    full = set(raw_model("gpt"))
    reasoning_keys = {"reasoning", "reasoning_model", "reasoning_efforts", "takes_temperature", "structured_output",
                      "tool_call", "input_modalities", "max_output_tokens"}
    assert reasoning_keys <= full
    for path in sorted((CONF / "model").glob("*.yaml")):
        keys = set(raw_model(path.stem))
        assert reasoning_keys | {"provider", "id", "base_url", "stream", "concurrency", "timeout_s", "batch"} <= keys, \
            path.name
        if path.stem in FRONTIER:
            assert full <= keys, f"{path.name} lacks {sorted(full - keys)}"
            assert all(raw_model(path.stem)[key] is None for key in reasoning_keys), \
                f"{path.name}: what the model takes is looked up, not pinned"


@pytest.mark.parametrize("name", FRONTIER)
def test_each_frontier_model_is_priced_as_itself_and_takes_the_efforts_its_api_takes(name):
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    settings = model_settings(raw_model(name), name)
    efforts, default = TAKES[settings.id]
    # genai-prices matches ids loosely (gpt-5.6 is priced as gpt-5.6-sol): the price found is this model's own
    found = calc_price(PriceUsage(input_tokens=1000, output_tokens=1000), model_ref=settings.id,
                       provider_id=price_provider(settings))
    assert found.model.id == settings.id
    assert call_cost(settings, Usage(input_tokens=1000, output_tokens=1000)) > 0
    # the provider's family table knows it, whether or not the models.dev catalogue does
    family = provider_class(settings).family_capabilities(settings.id)
    assert family.reasoning and family.structured_output
    assert (family.efforts, family.default_effort) == (efforts, default)
    caps = capabilities(settings)
    assert caps.source in ("catalogue", "inferred") and (caps.efforts, caps.default_effort) == (efforts, default)
    assert set(EFFORTS) <= set(caps.efforts)  # the experiment's efforts: every one of them takes both
    for effort in EFFORTS:  # and each effort adds room for thinking to the cap sent
        ask = asking(dataclasses.replace(settings, reasoning=effort), 0.7, 2048)
        assert ask.thinking_tokens == provider_class(settings).thinking_room[effort]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_dry_run_of_the_frontier_experiment_prices_every_cell_offline(runner, tmp_path):
    run = runner("-m", "+experiment=frontier", "dry_run=true", "hydra.sweep.dir=outputs/sweeps/frontier",
                 env=dict(KEYS))
    assert run.code == 0, run.stderr[-3000:]
    folder = tmp_path / "outputs/sweeps/frontier"
    rows = read_csv(folder / "estimate.csv")
    assert rows and all(row["cost_usd"] and float(row["cost_usd"]) > 0 for row in rows), \
        [row for row in rows if not row["cost_usd"]]
    answers = [row for row in rows if not row["step"]]
    judging = [row for row in rows if row["step"].startswith("judge")]
    cells = {(row["job"], row["model"], row["output_tokens"]) for row in answers}
    # 6 models x 2 efforts, each cell with its own cap: the answer's max_tokens plus the room for that effort
    expected = set()
    for name in FRONTIER:
        settings = model_settings(raw_model(name), name)
        for effort in EFFORTS:
            cap = 2048 + provider_class(settings).thinking_room[effort]
            expected.add((name, str(cap)))
    assert len(cells) == len(FRONTIER) * len(EFFORTS) == 12
    assert {(model, cap) for _, model, cap in cells} == expected
    items = 2  # the tutor task's questions
    assert len(answers) == 12 * items
    assert len(judging) == len(answers) and {row["model"] for row in judging} == {"gemini_flash"}
    assert all(row["task"] == "tutor" for row in rows)
    assert f"total: {2 * 12 * items} call(s)" in run.stdout


PRICE_PROVIDER = {"gpt_sol": "openai", "gpt_luna": "openai", "opus": "anthropic", "haiku": "anthropic",
                  "gemini_pro": "google", "gemini_flash": "google"}


def test_the_frontier_experiment_runs_through_the_sdks_thinks_more_at_high_and_is_judged(runner, tmp_path):
    """+experiment=frontier as a user runs it, each provider's SDK against its strict fake: every call answered
    the first time (no parameter a model refuses), thinking that rises from low to high in every model's pair of
    cells, each answer priced by genai-prices on the tokens billed, and the fast Gemini judging every answer."""
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    from tests.fakes.anthropic_server import anthropic_server
    from tests.fakes.gemini_server import as_messages, gemini_server
    from tests.fakes.openai_server import openai_server
    from tests.fakes.verdicts import is_judging

    with openai_server() as openai, anthropic_server() as anthropic, gemini_server() as gemini:
        env = {"OPENAI_BASE_URL": openai.url + "/v1", "OPENAI_API_KEY": "test-key",
               "ANTHROPIC_BASE_URL": anthropic.url, "ANTHROPIC_API_KEY": "test-key",
               "GOOGLE_GEMINI_BASE_URL": gemini.url, "GEMINI_API_KEY": "test-key",
               "RUNNER_STRICT_SDK_VALIDATION": "1"}
        run = runner("-m", "+experiment=frontier", "hydra.sweep.dir=outputs/sweeps/frontier", env=env,
                     timeout=1200)
    assert run.code == 0, run.stderr[-3000:]
    root = tmp_path / "outputs/sweeps/frontier"
    rows = read_csv(root / "results.csv")
    answers = [r for r in rows if not r["step"]]
    verdicts = [r for r in rows if r["step"].startswith("judge")]
    items = 2  # the tutor task's questions
    assert len(answers) == len(FRONTIER) * len(EFFORTS) * items and len(verdicts) == len(answers)
    # one request per answer and per verdict not in the cache (the fakes answer alike, so the judge is asked the
    # same question more than once): nothing refused, nothing sent again
    paid = [r for r in rows if r["cache_hit"] == "false"]
    assert len(openai.received) + len(anthropic.received) + len(gemini.received) == len(paid)
    assert sum(is_judging(as_messages(r.json)) for r in gemini.received) == sum(r in paid for r in verdicts) > 0
    assert all(r in paid for r in answers)
    for row in rows:
        assert row["status"] == "ok" and row["response"].strip(), row
        usage = PriceUsage(input_tokens=int(row["input_tokens"]), output_tokens=int(row["output_tokens"]))
        price = calc_price(usage, model_ref=row["model_id"], provider_id=PRICE_PROVIDER[row["model"]]).total_price
        assert Decimal(row["cost_usd"]) == price, row["model"]
    assert {r["model"] for r in verdicts} == {"gemini_flash"}
    thought = {}
    for row in answers:
        assert row["reasoning_effort"] in EFFORTS and int(row["reasoning_tokens"]) > 0, row
        assert int(row["output_tokens"]) > int(row["reasoning_tokens"]), row  # thinking is billed as output
        thought[(row["model"], row["reasoning_effort"])] = int(row["reasoning_tokens"])
    for name in FRONTIER:
        assert thought[(name, "low")] < thought[(name, "high")], name
    scores = [r for job in sorted(root.glob("*/scores.csv")) for r in read_csv(job) if r["scorer"] == "correct"]
    assert len(scores) == len(answers)
    assert {(r["judge"], r["status"], r["score"]) for r in scores} == {("gemini_flash", "ok", "1.0")}


def test_the_frontier_experiment_needs_its_judges_key(runner, tmp_path):
    """Without the judge's key the answers would be paid for with no verdict: the run stops before any call."""
    keys = {name: value for name, value in KEYS.items() if name != "GEMINI_API_KEY"}
    run = runner("-m", "+experiment=frontier", "model=gpt_luna", env=keys)
    assert run.code == 2
    assert "judge gemini_flash" in run.stderr and "GEMINI_API_KEY" in run.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("results.csv"))


@pytest.fixture(autouse=True)
def no_machine_keys(monkeypatch):
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
