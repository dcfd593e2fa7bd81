"""Shared test helpers: run the real command line in a temp folder, with provider fakes on 127.0.0.1; or, where
the process boundary adds nothing, compose a run's settings and run its job in this process."""
from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner.providers import PROVIDERS, provider_classes

REPO = Path(__file__).resolve().parent.parent
FAKE_CONF = REPO / "tests" / "fakes" / "conf"
# every registered provider's key and endpoint variables: the machine's own never leak into a test
KEY_VARS = tuple(sorted({name for cls in provider_classes() for name in (*cls.key_env, cls.endpoint_env) if name}))


# a test that asks for one of these starts `python -m runner` or a Chromium: the `slow` tier, whatever else it does
SLOW_FIXTURES = {"runner", "start_python", "browser", "page",
                 "described"}  # tests/test_images.py: a describe run as a process of its own
# modules whose tests are slow for another reason: they start processes or servers of their own
SLOW_MODULES = {
    "test_bad_input": "a finished run, made once, then one run per case",
    "test_chat": "the chat's Gradio server in a process of its own",
    "test_cache_rerun": "the default experiment run twice, as processes of their own",
    "test_chromium": "installs a Chromium, and runs pytest inside pytest",
    "test_cli": "runs and signals `python -m runner` processes",
    "test_cluster": "submitit's job processes",
    "test_comparison_input": "`python -m runner.comparison` per case",
    "test_comparison_process": "the comparison's own process, started the real way",
    "test_compose_once": "`python -m runner` run as Hydra alone would run it, and as the runner does",
    "test_install": "Python processes without the local extra",
    "test_local_model": "llama.cpp loads the model in a process of its own",
    "test_openai_compatible": "llama.cpp's server",
    "test_stopping": "a Python process per signal and moment",
    "test_usage_lines": "a run per usage line of conf/ and --help",
}


@pytest.hookimpl(tryfirst=True)  # marks set before any plugin reads them
def pytest_collection_modifyitems(items) -> None:
    """Mark `slow` every test that runs the command line or a browser (`-m "not slow"`: the quick tier); tests
    that are slow for another reason (a subprocess of their own, a server, llama.cpp) say so themselves.
    pytest-xdist runs each file on one worker, in order (`--dist loadfile` in pyproject.toml): a module-scoped
    fixture (a browser, a server, the docs' examples folder, whose examples build on each other) is set up
    once."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if SLOW_FIXTURES.intersection(names) or item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def clean_env(**extra: str) -> dict:
    """The environment a user's shell would give: no real keys or endpoints leak in from the machine."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["RUNNER_STRICT_SDK_VALIDATION"] = "1"
    env.pop("HYDRA_FULL_ERROR", None)
    env.update(extra)
    return env


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Popen(..., preexec_fn=CTRL_C_REACHES_IT): SIGINT reaches the child as a terminal's Ctrl-C would, however the
# tests were started. A shell that starts them in the background (`pytest &`, no job control) leaves SIGINT
# ignored, every child inherits that, and a server the test stops with SIGINT would never stop.
CTRL_C_REACHES_IT = _sigint_default if os.name == "posix" else None


@pytest.fixture(scope="session", autouse=True)
def tiktoken_cache(request, tmp_path_factory) -> dict:
    """TIKTOKEN_CACHE_DIR with tiktoken's real encodings, for in-process and subprocess tests alike."""
    from tests import tiktoken_files

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("tiktoken") if cache is not None else tmp_path_factory.mktemp("tiktoken")
    problem = tiktoken_files.fill(Path(folder))
    if problem is None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return {"dir": Path(folder), "problem": problem}


@pytest.fixture
def real_encodings(tiktoken_cache) -> Path:
    """Tests that count with tiktoken's real encodings need its files; say plainly why they are missing."""
    if tiktoken_cache["problem"]:
        pytest.fail(f"tiktoken's encodings could not be set up offline: {tiktoken_cache['problem']}")
    return tiktoken_cache["dir"]


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, cwd: Path):
        self.proc = proc
        self.cwd = cwd
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def root(self) -> Path:
        """The run's or sweep's folder: the newest under outputs/runs or outputs/sweeps."""
        folders = sorted((self.cwd / "outputs").glob("*/*"), key=lambda p: p.stat().st_mtime)
        assert folders, f"no output folder; stderr:\n{self.stderr}"
        return folders[-1]

    def rows(self, name: str = "results.csv") -> list[dict]:
        with open(self.root() / name, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def forker():
    """One helper per test process that has imported what a run imports and forks each run from there
    (tests/forked.py): a run's own process without paying for its imports again. RUNNER_TESTS_FORK=0 turns
    it off, and every run is a fresh `python -m runner`."""
    from tests import forked

    return forked.shared()


@pytest.fixture
def runner(tmp_path, forker):
    """runner(*overrides, env=...) runs `python -m runner` in a temp folder and returns a Run."""

    def run(*args: str, env: dict | None = None, timeout: float = 600) -> Run:
        # each test gets its own response cache, never the user's
        env = clean_env(**{"RUNNER_CACHE_DIR": str(tmp_path / "cache"), **(env or {})})
        proc = forker and forker.run(["-m", "runner", *args], cwd=tmp_path, env=env, timeout=timeout)
        if proc is None:
            proc = subprocess.run([sys.executable, "-m", "runner", *args], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=timeout)
        return Run(proc, tmp_path)

    return run


@pytest.fixture
def start_python(forker):
    """start_python(["-m", "runner", ...], cwd, env) starts it as subprocess.Popen(stdout=PIPE, stderr=PIPE,
    text=True) would, forked by the helper where it can be (one at a time): for tests that signal a run."""

    def start(args: list[str], cwd: Path, env: dict):
        started = forker and forker.start(list(args), cwd, env)
        return started or subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)

    return start


def hydra_value(value) -> str:
    """A Python value as a Hydra override's value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.fixture
def scripted(monkeypatch):
    """The in-process provider (tests/fakes/inprocess.py) registered as `provider: scripted`, with a fresh
    script; `model=scripted` selects it (tests/fakes/conf/model/scripted.yaml)."""
    from tests.fakes import inprocess

    monkeypatch.setitem(PROVIDERS, "scripted", inprocess.ENTRY)
    monkeypatch.setenv("SCRIPTED_API_KEY", "scripted-key")
    monkeypatch.setattr(inprocess, "script", inprocess.Script())
    return inprocess.script


@pytest.fixture
def run_settings(monkeypatch, tmp_path):
    """run_settings(*overrides, **knobs): a job's checked RunSettings, composed from conf/ (and
    tests/fakes/conf) with Hydra's compose API and put through every check a run makes before its first
    call, in this process. run_settings("model=scripted", "task.inputs=[{audience: owls}]", repeats=3)."""
    from hydra import compose, initialize_config_dir

    from runner.calling.preflight import check_job

    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNNER_STRICT_SDK_VALIDATION", "1")
    monkeypatch.setitem(PROVIDERS, "scripted", "tests.fakes.inprocess:ScriptedProvider")

    def make(*overrides: str, **knobs):
        searchpath = [f"file://{FAKE_CONF.as_posix()}"]  # a test's own hydra.searchpath=[...] adds to it
        for override in [o for o in overrides if o.startswith("hydra.searchpath=[")]:
            searchpath += override.partition("=")[2].strip("[]").split(",")
        arguments = [*(o for o in overrides if not o.startswith("hydra.searchpath=")),
                     *(f"{key}={hydra_value(value)}" for key, value in knobs.items()),
                     f"hydra.searchpath=[{','.join(searchpath)}]"]
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3", job_name="runner"):
            return check_job(compose("config", overrides=arguments, return_hydra_config=True))

    return make


@pytest.fixture
def run_here(tmp_path):
    """run_here(settings) runs the job in this process into tmp_path/run (or `folder`), as a run's job
    does after Hydra: the real engine, cache, budget and record writer. Returns (records, tally)."""
    from runner.calling.job import execute
    from runner.records import read_records

    def run(settings, folder: Path | None = None):
        folder = folder or tmp_path / "run"
        tally = asyncio.run(execute(settings, folder, run_id=folder.name))
        return list(read_records(folder / "results.jsonl")), tally

    return run
