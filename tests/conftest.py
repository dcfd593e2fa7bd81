"""Shared test helpers: run the real command line in a temp folder, with provider fakes on 127.0.0.1."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_BASE_URL",
            "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "OLLAMA_HOST")


def clean_env(**extra: str) -> dict:
    """The environment a user's shell would give: no real keys or endpoints leak in from the machine."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["RUNNER_STRICT_SDK_VALIDATION"] = "1"
    env.pop("HYDRA_FULL_ERROR", None)
    env.update(extra)
    return env


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


@pytest.fixture
def runner(tmp_path):
    """runner(*overrides, env=...) runs `python -m runner` in a temp folder and returns a Run."""

    def run(*args: str, env: dict | None = None, timeout: float = 600) -> Run:
        # each test gets its own response cache, never the user's
        env = {"RUNNER_CACHE_DIR": str(tmp_path / "cache"), **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "runner", *args], cwd=tmp_path, env=clean_env(**env),
                              capture_output=True, text=True, timeout=timeout)
        return Run(proc, tmp_path)

    return run
