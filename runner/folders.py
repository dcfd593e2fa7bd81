"""Run folders: each run gets one of its own, a re-used one keeps what the earlier run wrote, and what a
folder holds (one job for a single run, numbered job folders for a sweep).

Kept apart from the analysis (runner/analysis) so that code which only finds the jobs (a dry run's end, a crashed
job's note) does not import pandas.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from runner.errors import ConfigError

JOB_ERROR_FILE = "job_error.txt"  # a job that crashed leaves its traceback here instead of results
EARLIER = "earlier"  # a re-used folder keeps each earlier run's report, tables and config in earlier/<n>/
NEW_FOLDER = "new_folder"  # the resolver conf/config.yaml names run and sweep folders with
# What a run writes that a later run into the same folder would replace. results.jsonl stays: rows are
# appended and the comparison keeps the last record of each call (resuming in place). pages/ stays too.
REPLACED = ("report.md", "report.html", "summary.csv", "results.csv", "estimate.csv", "multirun.yaml", "budget.sqlite",
            "budget.sqlite-wal", "budget.sqlite-shm", JOB_ERROR_FILE, ".hydra")
JOB_REPLACED = (".hydra", JOB_ERROR_FILE, "estimate.csv")  # in a sweep's job folders; their results.csv is appended


def job_order(path: Path) -> tuple:
    """The order jobs are listed in: numbered job folders by number (2 before 10), then the others by name."""
    return (not path.name.isdigit(), int(path.name) if path.name.isdigit() else 0, path.name)


def job_folders(folder: Path) -> list[Path]:
    """The folder itself for a single run; its numbered job folders for a sweep."""
    if (folder / "results.jsonl").exists() and not any(folder.glob("*/results.jsonl")):
        return [folder]
    jobs = [p.parent for p in folder.glob("*/results.jsonl")]
    jobs += [p.parent for p in folder.glob(f"*/{JOB_ERROR_FILE}") if p.parent not in jobs]
    return sorted(set(jobs), key=job_order)


def new_folder(path: str) -> str:
    """`path`, or `path_2`, `path_3`...: the first that does not exist yet, created here. mkdir fails when
    the folder exists, so two runs started in the same second (or in parallel) never share one."""
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        candidate = base if number == 1 else base.with_name(f"{base.name}_{number}")
        try:
            candidate.mkdir()
            return str(candidate)
        except FileExistsError:
            number += 1


def register(create: bool = True) -> None:
    """`${new_folder:PATH}` in the config. Hydra resolves a run's folder once (the resolver's value is cached
    in the config, and a sweep's jobs get a copy of that cache), after the checks of `runner.callbacks`: a run
    stopped by bad input creates no folder. `create=False` only names it (`--cfg hydra --resolve`).
    runner.callbacks registers it when imported, so a parallel launcher's workers have it too."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver(NEW_FOLDER, new_folder if create else str, use_cache=True, replace=True)


def _unwrapped(exc: BaseException) -> BaseException:
    """The OSError or ConfigError behind OmegaConf's "... raised while resolving interpolation"."""
    seen = exc
    while seen is not None:
        if isinstance(seen, (OSError, ConfigError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def claim(config, key: str) -> Path:
    """The run's folder (`key` is hydra.run.dir or hydra.sweep.dir), created and known to be writable, or a
    ConfigError that names it. Called before Hydra writes anything into it."""
    from omegaconf import OmegaConf

    try:
        folder = Path(str(OmegaConf.select(config, key))).absolute()
    except Exception as exc:  # noqa: BLE001 - the resolver could not create it (read-only outputs/, a file in the way)
        cause = _unwrapped(exc)
        where = getattr(cause, "filename", None)
        raise ConfigError(f"{key}: cannot create the run's folder{f' {where}' if where else ''}: {_reason(cause)} "
                          f"(choose another with {key}=FOLDER)") from None
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{key}={folder} is a file, not a folder (choose another with {key}=FOLDER)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # the folder may exist but refuse writes (read-only, ACLs)
            pass
    except OSError as exc:
        raise ConfigError(f"{key}: cannot write to {exc.filename or folder}: {_reason(exc)} "
                          f"(choose another folder with {key}=FOLDER)") from None
    return folder


def _written(path: Path) -> bool:
    """Whether a run wrote this: Hydra's .hydra folder, or a file (a folder named report.md is not a report)."""
    return path.is_dir() if path.name == ".hydra" else path.is_file()


def keep_earlier(folder: Path) -> Path | None:
    """Move what an earlier run into `folder` wrote and this run would replace into folder/earlier/<n>/;
    returns that folder, or None when there was no earlier run."""
    moves = [(folder / name, Path(name)) for name in REPLACED if _written(folder / name)]
    moves += [(p, Path(p.name)) for p in folder.glob("*.png") if p.is_file()]
    for job in folder.iterdir():
        if job.is_dir() and job.name.isdigit():
            moves += [(job / name, Path(job.name) / name) for name in JOB_REPLACED if _written(job / name)]
    if not moves:
        return None
    (folder / EARLIER).mkdir(exist_ok=True)
    number = 1
    while True:  # mkdir fails if it exists: two runs re-using the folder at once keep both
        kept = folder / EARLIER / str(number)
        try:
            kept.mkdir()
            break
        except FileExistsError:
            number += 1
    for source, name in moves:
        (kept / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(kept / name))
    return kept
