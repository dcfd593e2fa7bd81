"""YAML the runner reads back: the configs Hydra saved for each job, and the files a run wrote.

PyYAML's pure-Python loader takes about 10 times as long as its libyaml one (the wheels for Linux, macOS and
Windows ship it). A comparison reads each job's config.yaml, hydra.yaml and overrides.yaml: with the Python
loader that was a quarter of a small sweep's comparison. Both loaders give the same Python values for these
files; where libyaml is missing, the Python one reads them.
"""
from __future__ import annotations

from typing import Any

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str) -> Any:
    """yaml.safe_load(text), with libyaml where it is there."""
    return yaml.load(text, Loader=LOADER)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
