"""Who answers in a chat: the command line's Hydra overrides composed into checked settings, one per model.

`python -m runner.chat model=claude prompt=concise` is one contestant; `-m model=gpt,claude` (or any sweep
of two combinations, `-m prompt=default,concise`) is two, for the arena. The config is the runner's own
(conf/), composed the way a run composes it, with `task=chat` unless the command line names a task: its
system prompt, shaped by the prompt group, is the chat's. Everything is checked before the app starts;
a bad value is a ConfigError (one line, exit 2).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from runner import variant
from runner.settings import ConfigError, RunSettings

CONF = Path(__file__).resolve().parents[2] / "conf"
ARENA_SIZE = 2


@dataclass
class Contestant:
    run: RunSettings
    overrides: list[str]  # the overrides that made this combination (as a job's overrides.yaml)
    variant: str  # its overrides beyond model, task, prompt and temperature (runner.variant)
    job: str  # its folder in the session's folder ("" for a lone chat)
    config_yaml: str  # the composed config, as a job's .hydra/config.yaml
    system: str  # the system prompt sent first in every turn

    @property
    def label(self) -> str:
        return f"{self.run.model.name} (prompt {self.run.prompt.name}, T={self.run.temperature:g})"

    def side(self) -> dict:
        """Who this is, as a vote stores it."""
        return {"model": self.run.model.name, "prompt": self.run.prompt.name,
                "temperature": self.run.temperature, "variant": self.variant}


def combinations(overrides: list[str], multirun: bool) -> list[list[str]]:
    """Each combination of the overrides' swept values (`model=gpt,claude`), as plain override lists."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    choices = []
    for override in parsed:
        if override.is_sweep_override():
            if not multirun:
                raise ConfigError(f"{override.input_line} sweeps: add -m for the arena (two models side by side)")
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return [list(combo) for combo in itertools.product(*choices)] if choices else [[]]


def compose(overrides: list[str]) -> tuple[RunSettings, str, str]:
    """Checked settings, the composed config as YAML, and the system prompt, for one combination."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from runner.calling.preflight import check_price_provider
    from runner.errors import one_line
    from runner.providers import provider_for
    from runner.settings import load
    from runner.tasks import task_for

    if not any(variant.key_of(o) == "task" for o in overrides):
        overrides = ["task=chat", *overrides]
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="chat"):
            cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(one_line(exc)) from None
    run = load(cfg)
    provider = provider_for(run.model)
    provider.api_key()  # MissingKey and a key of the wrong shape: before the app starts
    provider.check_endpoint()
    check_price_provider(run.model)
    task = task_for(run)
    config = {key: cfg[key] for key in cfg if key != "hydra"}
    return run, OmegaConf.to_yaml(OmegaConf.create(config), resolve=True), task.system_prompt()


def contestants(overrides: list[str], multirun: bool) -> list[Contestant]:
    combos = combinations(overrides, multirun)
    if multirun and len(combos) != ARENA_SIZE:
        raise ConfigError(f"the arena takes two contestants; {' '.join(overrides) or 'the command line'} makes "
                          f"{len(combos)} (e.g. -m model=gpt,claude)")
    found = []
    for number, combo in enumerate(combos):
        run, config_yaml, system = compose(combo)
        found.append(Contestant(run, combo, variant.of(combo), str(number) if multirun else "", config_yaml, system))
    return found
