"""One Hydra job: settings -> task cells -> engine -> records in the job's folder."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from runner import settings as settings_module
from runner.budget import Budget
from runner.cache import ResponseCache, cache_folder
from runner.engine import JobSession, Tally, run_cells
from runner.providers import provider_for
from runner.records import RecordWriter
from runner.tasks import task_for

log = logging.getLogger(__name__)


def job_folder() -> tuple[Path, str, str]:
    """(the job's output folder, the run id, the job's name), from Hydra's runtime config."""
    hydra = HydraConfig.get()
    folder = Path(hydra.runtime.output_dir)
    if hydra.mode is not None and hydra.mode.name == "MULTIRUN":
        root = Path(hydra.sweep.dir)
        return folder, root.name, folder.name
    return folder, folder.name, ""


def run_root() -> Path:
    """The run's folder, or the sweep's root for a multirun: what the jobs of one command share."""
    hydra = HydraConfig.get()
    if hydra.mode is not None and hydra.mode.name == "MULTIRUN":
        return Path(hydra.sweep.dir)
    return Path(hydra.runtime.output_dir)


async def _run(run: settings_module.RunSettings, folder: Path, run_id: str, job: str) -> Tally:
    provider = provider_for(run.model)
    task = task_for(run)
    opponents = {name: provider_for(model) for name, model in task.opponent_models().items()} \
        if hasattr(task, "opponent_models") else {}
    cache = ResponseCache(cache_folder(run.cache_dir)) if run.cache != "off" else None
    budget = Budget(run.budget_usd, run_root()) if run.budget_usd is not None else None
    with RecordWriter(folder) as writer:
        session = JobSession(run=run, provider=provider, writer=writer, run_id=run_id, job=job,
                             opponents=opponents, cache=cache, budget=budget)
        try:
            return await run_cells(task, session)
        finally:
            for p in (provider, *opponents.values()):
                await p.aclose()
            for store in (cache, budget):
                if store is not None:
                    store.close()


def run_job(cfg: DictConfig) -> Tally:
    run = settings_module.load(cfg)
    folder, run_id, job = job_folder()
    tally = asyncio.run(_run(run, folder, run_id, job))
    log.info("%s: %d ok, %d error, %d skipped, $%.6f spent", run.model.name, tally.ok, tally.error,
             tally.skipped, tally.spent_usd)
    return tally
