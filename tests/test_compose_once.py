"""A single run composes its config once (runner.compose_once), and what it composes is what Hydra's own two
compositions give: the same saved config, the same errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env

# `python -m runner ARGS`, with each composition of the config told on stderr; HYDRAS_WAY: without
# runner.compose_once, as Hydra alone runs the app (the reference the saved files are compared with)
SCRIPT = """
import runpy, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
load = ConfigLoaderImpl.load_configuration
def told(self, *args, **kwargs):
    print("composing the config", file=sys.stderr, flush=True)
    return load(self, *args, **kwargs)
ConfigLoaderImpl.load_configuration = told
if HYDRAS_WAY:
    import runner.compose_once
    runner.compose_once.install = lambda argv=None: None
sys.argv = ["runner", *ARGS]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


def run(cwd: Path, *args: str, hydras_way: bool = False) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    code = SCRIPT.replace("HYDRAS_WAY", str(hydras_way)).replace("ARGS", repr(list(args)))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=clean_env(RUNNER_CACHE_DIR=str(cwd / "cache")))


def saved(folder: Path, cwd: Path) -> dict[str, str]:
    """The config files Hydra saved for the run, with the folder it ran from left out."""
    return {name: (folder / ".hydra" / name).read_text(encoding="utf-8").replace(str(cwd), "CWD")
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml")}


ARGS = ("dry_run=true", "temperature=0.3", "hydra.run.dir=out", "hydra.job.chdir=false")


def test_a_single_run_composes_its_config_once_and_saves_what_hydra_would(tmp_path):
    ours = run(tmp_path / "ours", *ARGS)
    hydras = run(tmp_path / "hydra", *ARGS, hydras_way=True)
    assert ours.returncode == hydras.returncode == 0, ours.stderr + hydras.stderr
    assert ours.stderr.count("composing the config") == 1
    assert hydras.stderr.count("composing the config") == 2
    assert saved(tmp_path / "ours" / "out", tmp_path / "ours") == saved(tmp_path / "hydra" / "out", tmp_path / "hydra")


@pytest.mark.parametrize("args", [("temperature=0,0.7",), ("model=nosuch",), ("task.nosuch=1",)])
def test_bad_input_is_said_as_hydra_says_it(tmp_path, args):
    ours = run(tmp_path / "ours", *args, "dry_run=true")
    hydras = run(tmp_path / "hydra", *args, "dry_run=true", hydras_way=True)
    assert ours.returncode == hydras.returncode == 2
    said = [[line for line in p.stderr.splitlines() if line.startswith("runner:")] for p in (ours, hydras)]
    assert said[0] == said[1] and said[0]


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry run"])
def test_each_job_of_a_multirun_is_composed_once_and_saves_what_hydra_would(tmp_path, dry):
    """Hydra composes the sweep twice (its mode, then the sweep), and each job three times: for the checks before
    the first call, for its sweeper's validation, for its launch. Here the sweep and each job once, with the same
    result."""
    # short answers: what is compared is the composition, not what the embedded model writes
    args = ("-m", "temperature=0,0.7", "max_tokens=8", "hydra.sweep.dir=out", *(("dry_run=true",) if dry else ()))
    ours = run(tmp_path / "ours", *args)
    hydras = run(tmp_path / "hydra", *args, hydras_way=True)
    assert ours.returncode == hydras.returncode == 0, ours.stderr + hydras.stderr
    jobs = 2
    assert hydras.stderr.count("composing the config") == 2 + 3 * jobs
    assert ours.stderr.count("composing the config") == 1 + jobs
    assert (tmp_path / "ours/out/multirun.yaml").read_text(encoding="utf-8").replace(str(tmp_path / "ours"), "CWD") \
        == (tmp_path / "hydra/out/multirun.yaml").read_text(encoding="utf-8").replace(str(tmp_path / "hydra"), "CWD")
    for job in range(jobs):
        ours_saved = saved(tmp_path / "ours" / "out" / str(job), tmp_path / "ours")
        assert "temperature: " + ("0" if job == 0 else "0.7") in ours_saved["config.yaml"]
        assert ours_saved == saved(tmp_path / "hydra" / "out" / str(job), tmp_path / "hydra")
