"""One Hydra job: settings -> task cells -> engine -> records in the job's folder."""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from runner import settings as settings_module
from runner import stopping
from runner import variant as variant_module
from runner.calling.asking import asking
from runner.calling.batch import Batches
from runner.calling.batch_files import JobFile, Ledger
from runner.calling.budget import Budget
from runner.calling.cache import SHARED_FILE, ResponseCache, cache_folder
from runner.calling.engine import JobSession, Tally, run_cells
from runner.calling.estimate import estimate_job
from runner.calling.scoring import score_job
from runner.providers import provider_for
from runner.records import RecordWriter
from runner.redact import protect_logging, redact_file
from runner.scorers import judge_models, scorers_for
from runner.settings import RunSettings
from runner.tasks import Task, task_for
from runner.words import counted

log = logging.getLogger(__name__)


def run_root() -> Path:
    """The single run's folder, or the sweep's root folder: what every job of the run shares."""
    hydra = HydraConfig.get()
    if hydra.mode is not None and hydra.mode.name == "MULTIRUN":
        return Path(hydra.sweep.dir).absolute()
    return Path(hydra.runtime.output_dir)


def job_folder() -> tuple[Path, str, str]:
    """(the job's output folder, the run id, the job's name), from Hydra's runtime config."""
    folder = Path(HydraConfig.get().runtime.output_dir)
    root = run_root()
    return folder, root.name, ("" if root == folder else folder.name)


def quiet(providers) -> None:
    """Hydra sets the root logger to INFO: the providers' SDKs and HTTP clients would log every request."""
    for provider in providers:
        for name in provider.loggers:
            logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.asynccontextmanager
async def job_session(run: RunSettings, task: Task, folder: Path, *, run_id: str, job: str, root: Path,
                      variant: str, scorers: list):
    """The session a job's calls go through (its model, the task's opponents and the scorers' judges share
    one cache, budget and record writer); every client is closed at the end."""
    provider = provider_for(run.model)
    opponents = {name: provider_for(model) for name, model in task.opponent_models().items()}
    for name, model in judge_models(scorers).items():
        if name not in opponents:
            # a judge is its own config, whatever the job overrode (`model.id=...` in a `gpt` cell leaves the
            # judge `gpt` as conf/model/gpt.yaml says): the job's client only when it is that very model, and
            # not answering in batches (judges are called directly)
            same = model == run.model and not run.model.batch
            opponents[name] = provider if same else provider_for(model)
    quiet([provider, *opponents.values()])
    cache = ResponseCache(cache_folder(run.cache_dir)) if run.cache != "off" else None
    budget = Budget(run.budget_usd, root) if run.budget_usd is not None else None
    # a model sent no temperature: a temperature sweep asks it the same in every job; unless the cache answers
    # them, the run's own store does (answers.sqlite at the run's root)
    untempered = any(asking(p.model, run.temperature, run.max_tokens).temperature is None
                     for p in (provider, *opponents.values()))
    shared = ResponseCache(root, SHARED_FILE) if run.cache != "on" and untempered else None
    with RecordWriter(folder) as writer:
        session = JobSession(run=run, provider=provider, writer=writer, run_id=run_id, job=job,
                             opponents=opponents, root=root, cache=cache, budget=budget, variant=variant,
                             shared=shared)
        if run.model.batch and not task.not_batched:  # a task whose turns cannot wait for a batch calls directly
            session.batches = Batches(provider, run.batch, Ledger(cache_folder(run.cache_dir)), JobFile(folder),
                                      direct=lambda request: session._with_retries(provider, request))
        try:
            yield session
        finally:
            for p in {id(p): p for p in (provider, *opponents.values())}.values():
                await p.aclose()
            for store in (cache, budget, shared):
                if store is not None:
                    store.close()


async def execute(run: RunSettings, folder: Path, *, run_id: str, job: str = "", root: Path | None = None,
                  variant: str = "") -> Tally:
    """Run one job's cells and write their records into `folder`, then score its answers: the job without
    Hydra around it. `root` is the run's or sweep's folder that jobs share (page snapshots, the budget's
    ledger)."""
    task = task_for(run)
    scorers = scorers_for(run)
    async with job_session(run, task, folder, run_id=run_id, job=job, root=root or folder, variant=variant,
                           scorers=scorers) as session:
        tally = await run_cells(task, session)
        if session.batches is not None:
            for entry in session.batches.left_pending:
                requests = counted(len(entry["custom_ids"]), "request")
                print(f"runner: {run.model.name}: batch {entry['batch_id']} ({requests}) is still running at the "
                      f"provider; run the same command again to collect its answers", file=sys.stderr)
        await score_job(scorers, task, session, folder)
        if (root is None or root == folder) and any(s.is_pairwise for s in scorers):
            print("runner: a pairwise scorer compares a sweep's cells and this run is one cell, so it judges "
                  "nothing; sweep something (-m model=a,b or prompt=a,b)", file=sys.stderr)
        return tally


async def rescore(run: RunSettings, folder: Path, *, run_id: str, job: str = "", root: Path | None = None,
                  variant: str = "") -> Tally:
    """Score a finished job's answers again with the run's scorers; no answer is asked for again."""
    task = task_for(run)
    scorers = scorers_for(run)
    async with job_session(run, task, folder, run_id=run_id, job=job, root=root or folder, variant=variant,
                           scorers=scorers) as session:
        await score_job(scorers, task, session, folder)
        return session.tally


def redact_hydra_files() -> None:
    """Hydra saved the config and the command line (a base_url with its password) before this job began."""
    hydra = HydraConfig.get()
    saved = Path(hydra.runtime.output_dir) / hydra.output_subdir if hydra.output_subdir else None
    for path in ([saved / name for name in ("config.yaml", "overrides.yaml", "hydra.yaml")] if saved else []):
        redact_file(path)
    if hydra.mode is not None and hydra.mode.name == "MULTIRUN":
        redact_file(run_root() / "multirun.yaml")


def run_job(cfg: DictConfig) -> Tally:
    protect_logging()  # before anything is logged: `python -m runner` did it already, other launchers may not
    redact_hydra_files()
    run = settings_module.load(cfg)
    folder, run_id, job = job_folder()
    if run.dry_run:  # estimate tokens and dollars; no SDK client is built, no model called
        estimate_job(run, folder, run_id, job, run_root())
        return Tally()
    tally = stopping.run(execute(run, folder, run_id=run_id, job=job, root=run_root(),
                                variant=variant_module.of(HydraConfig.get().overrides.task)))
    log.info("%s: %d ok, %d error, %d skipped, %s", run.model.name, tally.ok, tally.error, tally.skipped,
             tally.spent(6))
    return tally
