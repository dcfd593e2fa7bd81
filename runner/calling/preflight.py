"""Checks every job's config before the first call, so bad input costs nothing and writes nothing.

A multirun is expanded the way Hydra's basic sweeper expands it (the YAML `hydra.sweeper.params` plus
the command line), each job's config is composed, and each is checked: settings, the provider's key
format and endpoint, the price library's provider name, model.reasoning against the efforts each model takes
(runner.calling.asking; a model the catalogue does not know is named once), the task's own needs (an opponent
model that exists, input files that parse), its scorers and their judges' model configs (`judge.temperature`
within what each judge accepts), and the response cache file (opened, so a corrupt or read-only one is named
here rather than failing every call).
"""
from __future__ import annotations

import sys

from omegaconf import DictConfig

from runner.calling.asking import asking
from runner.calling.cache import cache_folder, check_cache_file
from runner.calling.costs import known_price
from runner.calling.vision import takes_none
from runner.errors import ConfigError, one_line
from runner.providers import provider_for
from runner.providers.capabilities import inferred_line
from runner.scorers import check_items, judge_models, scorers_for
from runner.settings import ModelSettings, RunSettings, load
from runner.tasks import task_for


def check_job(cfg: DictConfig) -> RunSettings:
    """Raise ConfigError when this job's config cannot run."""
    run = load(cfg)
    task = task_for(run)
    task.check()
    scorers = scorers_for(run)  # an unknown type, a broken regex or schema, a function that does not import
    check_items(scorers, run)
    judges = judge_models(scorers)
    models = [run.model, *task.opponent_models().values(), *judges.values()]
    for name, judge in judges.items():  # asked for scores, a run without its judge would pay for no verdicts
        reason = provider_for(judge).missing_key()
        if reason and not run.dry_run:  # a dry run estimates, then ends with this line (runner.calling.estimate)
            raise ConfigError(f"judge {name} ({judge.provider}/{judge.id}): {reason}; or leave it out of the "
                              f"scorer's judges (judges=[...] for the tasks' own)")
        if run.judge.temperature > judge.temperature_max:
            raise ConfigError(f"judge.temperature={run.judge.temperature:g} is out of range for judge {name} "
                              f"({judge.provider} accepts 0 to {judge.temperature_max:g})")
    for model in models:  # a debate's opponent and the judges too: a key with spaces is an error before any call
        provider = provider_for(model)  # an unknown provider or SDK is named here
        missing = provider.missing_key()  # a missing key is no config error: the model's calls are skipped
        if missing and not run.dry_run:  # a dry run says it in its estimate's rows
            note_skipped(model, missing)
        provider.check_endpoint()
        check_price_provider(model)
        check_asking(model, run)
    if run.task.images:
        tell_no_images(run.model, run)
    check_batch(run.model, provider_for(run.model))
    if run.model.batch and task.not_batched and task.not_batched not in _told_batch:
        _told_batch.add(task.not_batched)  # once per run, however many models of the sweep batch
        print(f"runner: model.batch=true: {task.not_batched}", file=sys.stderr)
    if run.budget_usd is not None:
        check_prices(models)
    if run.cache != "off" and not run.dry_run:
        check_cache_file(cache_folder(run.cache_dir))
    return run


_told: set[tuple] = set()  # models whose inferred capabilities (or lack of images) the run has named, once each
_told_batch: set[str] = set()  # why a task's calls are not batched, said once per run
_skipping: dict[str, bool] = {}  # the lines naming models without their key, and whether the run has said each


def note_skipped(model: ModelSettings, missing: str) -> None:
    """Which variable is missing and where it was looked for, to be said once per model in a run (a sweep checks
    it in every job) by tell_skipped. The calls end as `skipped` rows, and the run exits 1."""
    _skipping.setdefault(f"runner: {model.name} ({model.provider}/{model.id}): {missing}; its calls are skipped", False)


def tell_skipped() -> None:
    """One line on stderr per model without its key, before any call, once the whole run has passed its checks:
    a run refused as bad input (exit 2) says only why, in one line."""
    for line, told in _skipping.items():
        if not told:
            _skipping[line] = True
            print(line, file=sys.stderr)


def check_asking(model: ModelSettings, run: RunSettings) -> None:
    """model.reasoning is a value the model takes (else ConfigError naming those it takes); a model the
    catalogue does not know is named once per run, with what was inferred for it."""
    ask = asking(model, run.temperature, run.max_tokens)
    if ask.capabilities.inferred and (model.provider, model.id) not in _told:
        _told.add((model.provider, model.id))
        print(f"runner: {inferred_line(model, ask.capabilities)}", file=sys.stderr)


def tell_no_images(model: ModelSettings, run: RunSettings) -> None:
    """A model that takes no images, in a task that sends them: its cells will be skipped, which the run says
    once, before any call (no config error: a sweep over models compares those that take them)."""
    reason = takes_none(model, asking(model, run.temperature, run.max_tokens).capabilities)
    if reason and ("images", model.provider, model.id) not in _told:
        _told.add(("images", model.provider, model.id))
        print(f"runner: {reason}; its cells of task {run.task.name} will be skipped (task.images)", file=sys.stderr)


def check_batch(model: ModelSettings, provider) -> None:
    """model.batch=true needs a provider with a batch API."""
    if model.batch and provider.batch_limits is None:
        sdk = f" through {model.sdk}" if model.sdk else ""
        raise ConfigError(f"model.batch=true: model {model.name} ({model.provider}{sdk}) has no batch API; batch runs "
                          f"work with the openai (and OpenAI-compatible), anthropic and gemini (google-genai) "
                          f"providers: set model.batch=false")


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
