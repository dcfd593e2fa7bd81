"""Checks every job's config before the first call, so bad input costs nothing and writes nothing.

A multirun is expanded the way Hydra's basic sweeper expands it (the YAML `hydra.sweeper.params` plus
the command line), each job's config is composed, and each is checked: settings, the provider's key
format, and the task's own needs (an opponent model that exists, input files that parse).
"""
from __future__ import annotations

from omegaconf import DictConfig

from runner.providers import provider_for
from runner.providers.base import MissingKey
from runner.settings import ConfigError, RunSettings, load


def check_job(cfg: DictConfig) -> RunSettings:
    """Raise ConfigError when this job's config cannot run."""
    from runner.tasks import task_for

    run = load(cfg)
    task = task_for(run)
    task.check()
    models = [run.model, *task.opponent_models().values()]
    for model in models:  # a debate's opponent too: a key with spaces is an error before any call
        try:
            provider_for(model).check_key()
        except MissingKey:
            pass  # not a config error: the model's calls are skipped and the others run
    if run.budget_usd is not None:
        check_prices(models)
    return run


def check_prices(models) -> None:
    """A budget can only be kept when every call's worst-case cost is known."""
    from runner.costs import known_price

    for model in models:
        if not known_price(model):
            raise ConfigError(f"budget_usd is set but model {model.name} ({model.provider}/{model.id}) has no known "
                              f"price: set model.price (USD per million tokens; zeros for a free self-hosted model)")


def sweep_job_overrides(cfg: DictConfig) -> list[list[str]] | None:
    """Every job's overrides in a basic-sweeper multirun, or None for another sweeper."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    if not str(cfg.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = cfg.hydra.sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += list(OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False))
    loader = GlobalHydra.instance().config_loader()
    overrides = OverridesParser.create(config_loader=loader).parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def check_sweep(cfg: DictConfig) -> int:
    """Compose and check every job of a multirun; returns the number of jobs."""
    from hydra.core.global_hydra import GlobalHydra

    jobs = sweep_job_overrides(cfg)
    if jobs is None:
        return 0
    loader = GlobalHydra.instance().config_loader()
    for overrides in jobs:
        try:
            job_cfg = loader.load_sweep_config(cfg, list(overrides))
        except ConfigError:
            raise
        except Exception as exc:  # Hydra's composition errors: unknown option, bad override
            raise ConfigError(f"{' '.join(overrides)}: {one_line(exc)}") from None
        try:
            check_job(job_cfg)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in job: {' '.join(overrides)})") from None
    return len(jobs)


def one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages, as one line that keeps what names the bad value."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    head = lines[0]
    if "Available options in" in text:
        options = []
        grab = False
        for line in lines[1:]:
            if line.startswith("Available options in"):
                grab = True
                continue
            if grab:
                if line.startswith("Config search path") or ":" in line:
                    break
                options.append(line)
        if options:
            head = f"{head} (available: {', '.join(options)})"
    elif len(lines) > 1 and not lines[1].startswith(("full_key", "object_type", "Set the environment")):
        head = f"{head} {lines[1]}"
    return head
