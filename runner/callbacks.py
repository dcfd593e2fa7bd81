"""Hydra's hooks into a run: check every job before the first call, compare all jobs at the end.

Exceptions raised in a Hydra callback become warnings, so bad input ends here with one line on
stderr and `sys.exit(2)`, and the exit code of a finished run is set with `sys.exit` too.
"""
from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from runner.settings import ConfigError

log = logging.getLogger("runner")


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


class EarlyImports:
    """The comparison needs pandas and matplotlib (about 0.8 s of imports). They are imported in a thread
    while the calls wait on the network, and waited for before the comparison is built: a module must
    never be imported by two threads at once while it is half done."""

    def __init__(self) -> None:
        import runner.job  # noqa: F401 - what the jobs import is imported here first, outside the race

        self.thread = threading.Thread(target=self._imports, name="runner-imports", daemon=True)
        self.thread.start()

    @staticmethod
    def _imports() -> None:
        from matplotlib import figure  # noqa: F401
        from matplotlib.backends import backend_agg  # noqa: F401

        import runner.comparison  # noqa: F401 - pandas and the report

    def wait(self) -> None:
        self.thread.join()


def finish(folder: Path, imports: EarlyImports | None = None) -> None:
    if imports is not None:
        imports.wait()
    from runner import estimate
    from runner.comparison import build

    if estimate.is_dry_run(folder):  # a dry run ends with the combined estimate, not a comparison
        sys.exit(estimate.finish(folder))

    comparison = build(folder)
    records = comparison.records
    counts = records.status.value_counts().to_dict() if not records.empty else {}
    calls = f"{len(records)} call{'' if len(records) == 1 else 's'}"
    print(f"runner: {calls} ({counts.get('ok', 0)} ok, {counts.get('error', 0)} error, "
          f"{counts.get('skipped', 0)} skipped) -> {folder / 'report.md'}", file=sys.stderr)
    sys.exit(comparison.exit_code)


class RunnerCallback(Callback):
    """Runs in the process that launches the jobs (and builds the comparison), never in a worker."""

    imports: EarlyImports | None = None

    def __getstate__(self) -> dict:
        return {}  # joblib pickles the callbacks for its workers; the imports thread stays in this process

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from runner.preflight import check_job

        checked(check_job, config)
        self.imports = EarlyImports()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from runner.preflight import check_sweep

        checked(check_sweep, config)
        self.imports = EarlyImports()

    def on_run_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        finished(Path(job_return.hydra_cfg.hydra.runtime.output_dir), self.imports)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        finished(Path(config.hydra.sweep.dir), self.imports)


def finished(folder: Path, imports: EarlyImports | None = None) -> None:
    """Build the comparison and exit with the run's code; a crash here must not end as exit 0."""
    try:
        finish(folder, imports)
    except Exception:  # noqa: BLE001 - the calls are done and recorded; say how to get the tables anyway
        traceback.print_exc()
        print(f"runner: building the comparison failed; the calls are recorded in {folder}: "
              f"python -m runner.comparison {folder}", file=sys.stderr)
        sys.exit(1)
