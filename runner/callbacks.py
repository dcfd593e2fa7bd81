"""Hydra's hooks into a run: check every job (and the history it will be recorded in) before the first call,
give the run its folder (keeping what an earlier run into the same folder wrote), compare all jobs at the end.

The comparison is built by the process `python -m runner` started for it (runner.analysis.comparison_process),
or here when there is none (the Hydra app started some other way).

Exceptions raised in a Hydra callback become warnings, so bad input ends here with one line on
stderr and `sys.exit(2)`, and the exit code of a finished run is set with `sys.exit` too.
"""
from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from runner import folders, stopping, yaml_files
from runner.analysis import comparison_process, history_file
from runner.calling import estimate
from runner.calling.batch_files import pending_batches
from runner.calling.preflight import check_job, check_sweep, tell_skipped
from runner.errors import ConfigError

log = logging.getLogger("runner")

if not OmegaConf.has_resolver(folders.NEW_FOLDER):  # a parallel launcher's worker imports this module first
    folders.register()


def config_error(exc: ConfigError) -> None:
    print(f"runner: config error: {exc}", file=sys.stderr)
    sys.exit(2)


def checked(check, config: DictConfig) -> None:
    """Run a pre-flight check. Hydra turns a callback's exception into a warning and carries on, so a
    check that crashes must stop the run here, before any call, rather than be skipped."""
    try:
        check(config)
    except ConfigError as exc:
        config_error(exc)
    except Exception:  # noqa: BLE001 - a bug in the checks: stop loudly, nothing has been called yet
        traceback.print_exc()
        print("runner: the checks before the first call failed (a bug: please report it); nothing was called",
              file=sys.stderr)
        sys.exit(1)


def prepare_folder(config: DictConfig, key: str) -> None:
    """After the checks, before Hydra writes into it: the run's folder exists, can be written, and what an
    earlier run into it wrote (report, tables, config) is moved aside rather than replaced."""
    try:
        folder = folders.claim(config, key)
        kept = folders.keep_earlier(folder)
    except ConfigError as exc:
        config_error(exc)
    except OSError as exc:
        config_error(ConfigError(f"{key}: cannot move the earlier run's files aside in {exc.filename or ''}: "
                                 f"{exc.strerror or exc} (choose another folder with {key}=FOLDER)"))
    if kept is not None:
        print(f"runner: {folder} already holds a run: its report, tables and config are kept in {kept}; "
              f"its calls stay in results.jsonl and this run adds to them", file=sys.stderr)


class ComparisonFailed(Exception):
    """The comparison process ended without an answer; its traceback is on stderr already."""


def compare_or_total(folder: Path, least: int = 0) -> None:
    """The run's last words: its comparison (or a dry run's combined estimate), and its exit code."""
    process = comparison_process.take()  # started by `python -m runner` (runner.analysis.comparison_process)
    if estimate.is_dry_run(folder):  # a dry run ends with the combined estimate, not a comparison
        if process is not None:
            process.stop()
        sys.exit(estimate.combine(folder))
    if process is None:
        outcome = comparison_process.build_here(folder)
    else:
        outcome = process.request(folder)
        if outcome is None:
            raise ComparisonFailed()
    print(outcome.line(folder), file=sys.stderr)
    pending = pending_batches(folder)
    if pending and not outcome.error and not outcome.skipped:  # batch.wait=false: submitted is a success
        print(f"runner: {len(pending)} batch(es) still running at the provider; run the same command again to "
              f"collect their answers", file=sys.stderr)
        sys.exit(0)
    sys.exit(max(outcome.exit_code, least))  # judging that crashed is a failure, whatever the answers did


def check_history(config: DictConfig) -> None:
    """The history the comparison will record the run in can be opened and written (a dry run records none)."""
    if not config.get("dry_run"):
        history_file.check(history_file.path_for(config.get("history")))


class RunnerCallback(Callback):
    """Runs in the process that launches the jobs (and has the comparison built), never in a worker."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        checked(check_job, config)
        checked(check_history, config)
        tell_skipped()
        prepare_folder(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        checked(check_sweep, config)
        checked(check_history, config)
        tell_skipped()
        prepare_folder(config, "hydra.sweep.dir")

    def on_run_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        end_run(Path(job_return.hydra_cfg.hydra.runtime.output_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir)
        end_run(folder, judged=judge_pairs(config, folder))


def judge_pairs(config: DictConfig, folder: Path) -> bool:
    """A sweep with a pairwise scorer: its cells' answers judged two by two, before the comparison that
    reports them. Each job's settings are composed again from its saved overrides, as the sweep composed
    them. False when the judging crashed (the answers are recorded; the comparison is still built)."""

    from hydra.core.global_hydra import GlobalHydra

    from runner.calling.pairwise import judge_sweep

    if estimate.is_dry_run(folder):
        return True
    try:
        loader = GlobalHydra.instance().config_loader()
        jobs = []
        for job in folders.job_folders(folder):
            saved = job / ".hydra" / "overrides.yaml"
            if job == folder or not saved.exists():  # the pairwise judges' own folder, or a job that never began
                continue
            composed = job / ".hydra" / "config.yaml"
            if composed.exists() and "pairwise" not in composed.read_text(encoding="utf-8"):
                continue  # no pairwise scorer in its config: not composed again (a big sweep has many jobs)
            overrides = [str(o) for o in yaml_files.parse(saved.read_text(encoding="utf-8")) or []]
            jobs.append((job, check_job(loader.load_sweep_config(config, overrides))))
        tally = stopping.run(judge_sweep(folder, jobs)) if jobs else None
    except Exception:  # noqa: BLE001 - the answers are paid for and recorded: still build their comparison
        traceback.print_exc()
        print(f"runner: judging the sweep's pairs failed; the answers are recorded in {folder}", file=sys.stderr)
        return False
    if tally is not None:
        print(f"runner: pairwise judging: {tally.calls} call(s), {tally.spent(6)}", file=sys.stderr)
    return True


def end_run(folder: Path, judged: bool = True) -> None:
    """Build the comparison and exit with the run's code; a crash here must not end as exit 0."""
    try:
        compare_or_total(folder, least=0 if judged else 1)
    except Exception as exc:  # noqa: BLE001 - the calls are done and recorded; say how to get the tables anyway
        if not isinstance(exc, ComparisonFailed):
            traceback.print_exc()
        print(f"runner: building the comparison failed; the calls are recorded in {folder}: "
              f"python -m runner.comparison {folder}", file=sys.stderr)
        sys.exit(1)
