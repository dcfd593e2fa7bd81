"""Hydra's hooks into a run: check every job before the first call, compare all jobs at the end.

Exceptions raised in a Hydra callback become warnings, so bad input ends here with one line on
stderr and `sys.exit(2)`, and the exit code of a finished run is set with `sys.exit` too.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from runner.settings import ConfigError

log = logging.getLogger("runner")


def config_error(exc: ConfigError) -> None:
    print(f"runner: config error: {exc}", file=sys.stderr)
    sys.exit(2)


def finish(folder: Path) -> None:
    from runner import estimate
    from runner.comparison import build

    if estimate.is_dry_run(folder):  # a dry run ends with the combined estimate, not a comparison
        sys.exit(estimate.finish(folder))

    comparison = build(folder)
    records = comparison.records
    counts = records.status.value_counts().to_dict() if not records.empty else {}
    print(f"runner: {len(records)} calls ({counts.get('ok', 0)} ok, {counts.get('error', 0)} error, "
          f"{counts.get('skipped', 0)} skipped) -> {folder / 'report.md'}", file=sys.stderr)
    sys.exit(comparison.exit_code)


class RunnerCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from runner.preflight import check_job

        try:
            check_job(config)
        except ConfigError as exc:
            config_error(exc)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from runner.preflight import check_sweep

        try:
            check_sweep(config)
        except ConfigError as exc:
            config_error(exc)

    def on_run_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        finish(Path(job_return.hydra_cfg.hydra.runtime.output_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        finish(Path(config.hydra.sweep.dir))
