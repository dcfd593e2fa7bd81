"""Hydra's submitit launchers (`hydra/launcher=submitit_local`, `submitit_slurm`), made to wait for every job
and to report a job that died as that job's failure.

The plugin's own launcher collects results job by job and raises at the first job that died (killed by a
signal, out of memory, past its SLURM time limit): the jobs after it are not waited for, Hydra skips
`on_multirun_end`, and the sweep ends with a traceback and no comparison. Here every job is waited for;
one that died gets a `job_error.txt` in its folder with what submitit says about it (as a job that raised
does, runner.__main__), and the comparison is built once at the end, from every job, naming it.

The classes are in `hydra_plugins/runner_submitit/_launchers.py` (Hydra instantiates launchers from that package only).
`register()` puts them under the plugin's own names, so users type the plugin's commands. The plugin is an
optional extra (`pip install -e ".[cluster]"`): without it, `register()` does nothing.
"""
from __future__ import annotations

import importlib.util

PLUGIN = "hydra_plugins.hydra_submitit_launcher"
OURS = "hydra_plugins.runner_submitit._launchers"


def installed() -> bool:
    try:
        return importlib.util.find_spec(PLUGIN) is not None
    except (ImportError, ValueError):
        return False


def register() -> None:
    """Store the plugin's launcher configs (its fields and defaults) again, with ours as targets.
    Hydra's scan for plugins runs each plugin's modules again, storing the plugin's own configs: it is done
    first (once a process; Hydra would do it a moment later), so that these are stored last."""
    if not installed():
        return
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from hydra_plugins.hydra_submitit_launcher import config

    Plugins.instance()
    store = ConfigStore.instance()
    for name, schema, target in (("submitit_local", config.LocalQueueConf, "LocalLauncher"),
                                 ("submitit_slurm", config.SlurmQueueConf, "SlurmLauncher")):
        store.store(group="hydra/launcher", name=name, provider="runner", node=schema(_target_=f"{OURS}.{target}"))
