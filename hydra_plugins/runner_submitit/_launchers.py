"""Hydra's submitit launchers (`hydra/launcher=submitit_local`, `submitit_slurm`), made to wait for every job
and to report a job that died as that job's failure (runner.launchers says why, and puts these classes
under the plugin's names). Imported by the package's __init__ only when the plugin is installed.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import config as plugin_config
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as plugin
from omegaconf import OmegaConf, open_dict

from runner.folders import JOB_ERROR_FILE
from runner.redact import redact

log = logging.getLogger(plugin.__name__)  # the lines the plugin's own launcher logs, under its name


class WaitsForEveryJob(plugin.BaseSubmititLauncher):
    """The plugin's launch (version 1.2), except for how results are collected (see the module's text)."""

    # how long submitit waits for a finished job's result file to appear before it calls the job dead; None:
    # its own 15 s, for a cluster's network file system; on this machine's disk a dead job's file never comes
    results_wait_s: float | None = None

    def launch(self, job_overrides, initial_job_idx: int):
        import submitit  # as the plugin does: only when a sweep is launched

        executor_keys = {"submitit_folder", "max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
            **({f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]}
               if "max_num_timeout" in self.params else {}))
        common = set(OmegaConf.structured(plugin_config.BaseQueueConf).keys())
        executor.update_parameters(**{key if key in common else f"{self._EXECUTOR}_{key}": value
                                      for key, value in self.params.items() if key not in executor_keys})
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {self.config.hydra.sweep.dir}")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        arguments = []
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
            arguments.append((list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}",
                              Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*arguments))
        if self.results_wait_s is not None:
            for job in jobs:
                job._results_timeout_s = self.results_wait_s  # submitit's own name for it (Job, core.py)
        returns = []
        for (overrides, _, number, _, _), job in zip(arguments, jobs):
            try:
                returns.append(job.results()[0])
            except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedJobError) as error:
                returns.append(self.failed(overrides, number, redact(str(error))))
        return returns

    def failed(self, overrides: list[str], number: int, reason: str) -> JobReturn:
        """Note the dead job in its folder; a finished JobReturn, so that Hydra goes on to the comparison
        (a failed one would make it raise after the last job, and skip the comparison)."""
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config.hydra.job):
            config.hydra.job.num = number
        folder = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / JOB_ERROR_FILE).write_text(
            f"job {number} did not finish: its process ended without a result (killed by a signal, out of "
            f"memory, or past its time limit). What the launcher (submitit) says:\n\n{reason}\n", encoding="utf-8")
        log.error(f"job #{number} did not finish: see {folder / JOB_ERROR_FILE}")
        return JobReturn(overrides=overrides, working_dir=str(folder), task_name=str(config.hydra.job.name),
                         status=JobStatus.COMPLETED, _return_value=None)


class LocalLauncher(WaitsForEveryJob, plugin.LocalLauncher):
    results_wait_s = 1.0


class SlurmLauncher(WaitsForEveryJob, plugin.SlurmLauncher):
    pass
