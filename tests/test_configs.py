"""Every config in conf/ composes with Hydra's compose API and passes the checks a run makes before its first
call, in this process: each option of each group (with the defaults for the others), and every experiment
with each job its sweep declares. A file that stops composing, or that the checks refuse, fails here."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from runner.calling.preflight import check_job, check_sweep
from runner.settings import ModelSettings, Price, load
from tests.conftest import KEY_VARS, REPO

CONF = REPO / "conf"
GROUPS = ("model", "task", "prompt")
# keys shaped as each provider's own (a key that looks like another provider's is refused)
KEYS = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test", "GEMINI_API_KEY": "AIza-test"}


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


@pytest.fixture
def conf(monkeypatch, tmp_path):
    """Hydra initialised on conf/, with the user's keys and endpoints out of the way."""
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="runner"):
        yield


def test_every_config_file_is_composed_here():
    groups = {path.name for path in CONF.iterdir() if path.is_dir()}
    assert groups == {*GROUPS, "experiment", "scorer"}, "a new config group needs its compose test here"
    assert all(options(group) for group in groups)


@pytest.mark.parametrize("group,option", [(group, option) for group in GROUPS for option in options(group)])
def test_every_option_of_every_group_composes_and_passes_the_checks(conf, group, option):
    cfg = compose("config", overrides=[f"{group}={option}"], return_hydra_config=True)
    run = check_job(cfg)
    assert getattr(run, group).name == option


@pytest.mark.parametrize("option", options("scorer"))
def test_every_scorer_composes_and_passes_the_checks_on_every_task(conf, option, monkeypatch):
    """Each scorer of conf/scorer/ on each task of conf/task/ (with the task's own scorers), and all at once."""
    from runner.scorers import scorers_for

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # a judge without its key is bad input
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")

    needs_expected = option in ("equals", "contains_expected")  # the items' expected or reference field
    for task in ["tutor"] if needs_expected else options("task"):
        run = check_job(compose("config", overrides=[f"scorer={option}", f"task={task}", "judges=[gpt,claude]"],
                                return_hydra_config=True))
        names = {s.name for s in scorers_for(run)}
        assert run.task.scorers and set(run.task.scorers) <= names and (option == "none" or option in names)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_and_every_job_of_its_sweep_passes_the_checks(conf, experiment, monkeypatch):
    for name, key in KEYS.items():  # an experiment's judges need their keys, as a user running it has them
        monkeypatch.setenv(name, key)
    cfg = compose("config", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
    declared = cfg.hydra.sweeper.params
    expected = 1
    for values in declared.values():
        expected *= len(str(values).split(","))
    assert check_sweep(cfg) == expected


def test_a_config_the_checks_refuse_fails_here(conf, tmp_path: Path):
    """The checks this file relies on do refuse a bad value."""
    from runner.errors import ConfigError

    cfg = compose("config", overrides=["model=claude", "temperature=1.5"], return_hydra_config=True)
    with pytest.raises(ConfigError, match="out of range for model claude"):
        check_job(cfg)


# What only some providers have: the others leave these out of their configs
PROVIDER_SPECIFIC = {"sdk", "path", "n_ctx", "repack"}
# each key every model config carries: a value to set it to, as a command line gives it, and what it becomes
COMMON = {"base_url": ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"), "api_key_env": ("MY_KEY", "MY_KEY"),
          "stream": ("false", False), "concurrency": ("2", 2), "rpm": ("60", 60), "tpm": ("100000", 100000),
          "timeout_s": ("30", 30.0), "max_attempts": ("1", 1), "temperature_max": ("1", 1.0),
          "price": ("{input: 1, output: 2}", Price(1.0, 2.0)), "price_provider": ("openai", "openai"),
          "batch": ("true", True), "reasoning": ("low", "low"), "reasoning_model": ("true", True),
          "reasoning_efforts": ("[low,high]", ("low", "high")), "takes_temperature": ("false", False),
          "structured_output": ("true", True), "tool_call": ("true", True), "input_modalities": ("[text]", ("text",)),
          "max_output_tokens": ("1000", 1000)}


def test_the_common_keys_are_every_model_setting_but_the_provider_specific_ones():
    names = {f.name for f in dataclasses.fields(ModelSettings)} - {"name", "provider", "id"} - PROVIDER_SPECIFIC
    assert names == set(COMMON), "a new model setting: add it to COMMON here and to every conf/model/*.yaml"


@pytest.mark.parametrize("option", options("model"))
def test_every_model_config_takes_each_common_key_without_a_plus(conf, option):
    """`-m model=gpt,local model.max_attempts=1` composes for every pair: each model config has every common key,
    so an override needs no `+` (Hydra names the key a config lacks), and each value reaches the settings. One
    compose per model, with every key overridden at once."""
    overrides = [f"model.{key}={given}" for key, (given, _) in sorted(COMMON.items())]
    cfg = compose("config", overrides=[f"model={option}", *overrides], return_hydra_config=True)
    model = load(cfg).model
    for key, (_, expected) in COMMON.items():
        assert getattr(model, key) == expected, key
