"""Checks every job's config before the first call, so bad input costs nothing and writes nothing.

A multirun is expanded the way Hydra's basic sweeper expands it (the YAML `hydra.sweeper.params` plus
the command line), each job's config is composed, and each is checked: settings, the provider's key
format and endpoint, the price library's provider name, the task's own needs (an opponent model that
exists, input files that parse), and the response cache file (opened, so a corrupt or read-only one
is named here rather than failing every call).
"""
from __future__ import annotations

import os

from omegaconf import DictConfig

from runner.providers import provider_for
from runner.providers.base import MissingKey
from runner.settings import ConfigError, ModelSettings, RunSettings, check_url, load


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
        check_endpoint(model)
        check_price_provider(model)
    if run.budget_usd is not None:
        check_prices(models)
    if run.cache != "off" and not run.dry_run:
        from runner.calling.cache import cache_folder, check_cache_file

        check_cache_file(cache_folder(run.cache_dir))
    return run


def check_endpoint(model: ModelSettings) -> None:
    """model.base_url is checked with the settings; the SDK's variable the model falls back on, here
    (OLLAMA_HOST is left to Ollama's client: it also takes a bare host or host:port)."""
    from runner.endpoints import ENDPOINT_ENV

    name = ENDPOINT_ENV.get(model.provider) if model.provider != "ollama" else None
    if not model.base_url and name and os.environ.get(name):
        check_url(os.environ[name], name)


def check_price_provider(model: ModelSettings) -> None:
    """A price_provider genai-prices does not know would leave every cost empty: say so before any call."""
    if not model.price_provider:
        return
    from genai_prices.data_snapshot import find_provider_by_id, get_snapshot

    if model.price_provider.lower() == "litellm":  # genai-prices reads the provider from the model id
        return
    snapshot = get_snapshot()
    if find_provider_by_id(snapshot.providers, model.price_provider) is None:
        known = ", ".join(sorted(p.id for p in snapshot.providers))
        raise ConfigError(f"model.price_provider={model.price_provider!r} (model {model.name}) is not a provider "
                          f"genai-prices knows (known: {known})")


def check_prices(models) -> None:
    """A budget can only be kept when every call's worst-case cost is known."""
    from runner.calling.costs import known_price

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


# what a knob must hold, for overrides Hydra cannot merge into it ("Error merging override ...")
EXPECTED = {"task.inputs": "must be a list of items or a path to a CSV/JSONL/YAML file, "
                           "e.g. 'task.inputs=[{audience: owls}]' or task.inputs=items.csv"}


def _yaml_line(exc) -> str:
    """A YAML syntax error as one line: the file, the line and column, and what is wrong there."""
    mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    text = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    if getattr(exc, "context", None):
        text += f" ({exc.context}" + (f" that starts at line {context.line + 1})" if context is not None else ")")
    if mark is None:
        return f"not valid YAML: {text}"
    return f"{mark.name}: not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {text}"


def _merge_line(head: str, exc: BaseException) -> str:
    override = head[len("Error merging override "):].strip()
    key = override.partition("=")[0].lstrip("+~")
    if key in EXPECTED:
        return f"{override}: {key} {EXPECTED[key]}"
    cause = exc.__cause__ or exc.__context__
    reason = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
    return f"{override}: {reason}" if reason else head


def one_line(exc: BaseException) -> str:
    """Hydra's, OmegaConf's and YAML's multi-line messages, as one line that keeps what names the bad value."""
    import yaml

    if isinstance(exc, yaml.YAMLError):
        return _yaml_line(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, yaml.YAMLError):  # Hydra wraps the parser's error when it loads a config file
        return _yaml_line(cause)
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    head = lines[0]
    if head.startswith("Error merging override "):
        return _merge_line(head, exc)
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
