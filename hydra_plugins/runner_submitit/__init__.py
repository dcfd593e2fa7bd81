"""The runner's part of the `hydra_plugins` package, where Hydra instantiates launchers from: the submitit
launchers that wait for every job (._launchers), when the `cluster` extra (the submitit plugin) is installed.

Hydra's scan for plugins runs every module here in every Hydra app: without the plugin this defines nothing,
rather than fail an import the scan would warn about on each run. (The scan skips `_launchers` by its
name; the classes it finds here are known by their own module's name.)
"""
from __future__ import annotations

import importlib.util

try:
    _installed = importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None
except (ImportError, ValueError):
    _installed = False

if _installed:
    from hydra_plugins.runner_submitit._launchers import LocalLauncher, SlurmLauncher

    __all__ = ["LocalLauncher", "SlurmLauncher"]
