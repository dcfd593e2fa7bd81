"""Bad config and bad input, as a careless user types them: one line on stderr that names the bad value
and where it is, exit code 2, not one request to the provider, and an earlier run's folder left as it was.

Each `case` runs the real command line against a loopback OpenAI fake, into a copy of a finished run's
folder (hydra.run.dir or hydra.sweep.dir), so that "nothing already written is lost" is checked too. Where
only the wording of the line is in question, `refused_here` puts the same config through the same checks
in this process (one case of each kind still runs the command line).
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from runner.errors import ConfigError, one_line
from tests import forked
from tests.conftest import clean_env
from tests.fakes.openai_server import openai_server

KEY = "test-key"


@pytest.fixture(scope="module")
def server():
    with openai_server() as fake:
        yield fake


@pytest.fixture(scope="module")
def earlier_run(server, tmp_path_factory) -> Path:
    """A finished run's folder, made once: each case gets a copy of it."""
    cwd = tmp_path_factory.mktemp("earlier")
    proc = forked.run([sys.executable, "-m", "runner", "model=gpt", f"model.base_url={server.url}/v1",
                           "hydra.run.dir=run"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=clean_env(OPENAI_API_KEY=KEY, RUNNER_CACHE_DIR=str(cwd / "cache")))
    assert proc.returncode == 0, proc.stderr
    assert (cwd / "run" / "report.md").is_file()
    return cwd / "run"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Case:
    def __init__(self, tmp_path: Path, server, earlier_run: Path):
        self.cwd = tmp_path
        self.server = server
        self.folder = tmp_path / "run"
        shutil.copytree(earlier_run, self.folder)
        self.before = snapshot(self.folder)
        self.cache = tmp_path / "cache"
        self.calls_before = len(server.received)

    def run(self, *args: str, env: dict | None = None, sweep: bool = False, gpt: bool = True,
            into_earlier: bool = True) -> subprocess.CompletedProcess:
        """`python -m runner ARGS` into the earlier run's folder; gpt=True points model=gpt at the fake."""
        folder = f"hydra.sweep.dir={self.folder}" if sweep else f"hydra.run.dir={self.folder}"
        model = ["model=gpt", f"model.base_url={self.server.url}/v1"] if gpt else []
        command = [sys.executable, "-m", "runner", *(["-m"] if sweep else []), *model, *args,
                   *([folder] if into_earlier else [])]
        env = {"OPENAI_API_KEY": KEY, "RUNNER_CACHE_DIR": str(self.cache), **(env or {})}
        self.calls_before = len(self.server.received)
        return subprocess.run(command, cwd=self.cwd, capture_output=True, text=True, timeout=300,
                              env=clean_env(**env))

    def refused(self, proc: subprocess.CompletedProcess, *named: str) -> str:
        """Exit 2, one line naming each of `named`, no request sent, nothing written or changed."""
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1, proc.stderr
        for text in named:
            assert text in lines[0], lines[0]
        assert lines[0].startswith("runner: config error: ")
        assert len(self.server.received) == self.calls_before, "a request reached the provider"
        assert snapshot(self.folder) == self.before, "the earlier run's files changed"
        assert not (self.cwd / "outputs").exists()
        return lines[0]


@pytest.fixture
def case(tmp_path, server, earlier_run) -> Case:
    return Case(tmp_path, server, earlier_run)


@pytest.fixture
def refused_here(run_settings, monkeypatch):
    """refused_here(*overrides, env=...): the line a run would end with, from the checks it makes before any
    call, run in this process; fails when they accept the config."""

    def refused(*overrides: str, env: dict | None = None, named: tuple = ()) -> str:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        try:
            run_settings(*overrides)
        except ConfigError as exc:
            line = f"runner: config error: {exc}"
        except (HydraException, OmegaConfBaseException) as exc:
            line = f"runner: config error: {one_line(exc)}"
        else:
            raise AssertionError(f"the checks accepted {overrides}")
        assert "\n" not in line
        for text in named:
            assert text in line, line
        return line

    return refused


@pytest.mark.parametrize("args,named", [
    (["temperature=nan"], ["temperature=nan", "finite"]),
    (["temperature=inf"], ["temperature=inf", "finite"]),
    (["max_tokens=1e20"], ["max_tokens=1e+20", "1000000"]),
    (["max_tokens=1e20", "dry_run=true"], ["max_tokens=1e+20"]),  # no estimate of $1.6e14 either
    (["+model.price_provider=nope"], ["model.price_provider='nope'", "genai-prices", "openai"]),
])
def test_values_no_api_accepts_are_refused(refused_here, args, named):
    refused_here("model=gpt", *args, named=named)


def test_a_value_no_api_accepts_is_refused_by_the_command_line(case):
    case.refused(case.run("temperature=nan"), "temperature=nan", "finite")


@pytest.mark.parametrize("model,url", [(model, "htp:/x") for model in
                                       ("gpt", "claude", "gemini", "llama", "local_server", "gemini_openai", "local")]
                         + [("gpt", "not-a-url"), ("llama", "localhost:11434")])
def test_a_base_url_that_is_not_an_http_url_is_refused_for_every_provider(refused_here, model, url):
    refused_here(f"model={model}", f"model.base_url={url}", named=(f"model.base_url='{url}'", "http"))


def test_a_base_url_that_is_not_an_http_url_is_refused_by_the_command_line(case):
    proc = case.run("model=claude", "model.base_url=htp:/x", gpt=False)
    case.refused(proc, "model.base_url='htp:/x'", "http")


@pytest.mark.parametrize("variable,model", [("OPENAI_BASE_URL", "gpt"), ("ANTHROPIC_BASE_URL", "claude"),
                                            ("GOOGLE_GEMINI_BASE_URL", "gemini")])
def test_an_sdk_endpoint_variable_that_is_not_a_url_is_refused(refused_here, variable, model):
    refused_here(f"model={model}", env={variable: "htp:/x"}, named=(f"{variable}='htp:/x'",))


def test_an_sdk_endpoint_variable_that_is_not_a_url_is_refused_by_the_command_line(case):
    proc = case.run("model=gemini", gpt=False, env={"GOOGLE_GEMINI_BASE_URL": "htp:/x"})
    case.refused(proc, "GOOGLE_GEMINI_BASE_URL='htp:/x'")


def test_a_corrupt_cache_file_is_named_with_the_fix(case):
    case.cache.mkdir()
    (case.cache / "responses.sqlite").write_bytes(b"not a database, really" * 100)
    line = case.refused(case.run("cache=true"), str(case.cache / "responses.sqlite"), "not a database")
    assert "delete it" in line and "cache_dir" in line and "cache=false" in line


@contextlib.contextmanager
def read_only(path: Path):
    """Make `path` refuse writes, as a read-only mount or a file without write permission does. chmod is
    enough for a user; root ignores it, so as root the immutable flag (Linux chattr) stands in for it."""
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    immutable = False
    try:
        if _writable(path) and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        if _writable(path):
            pytest.skip("cannot make a file read-only here (root without chattr)")
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


def _writable(path: Path) -> bool:
    try:
        if path.is_dir():
            probe = path / ".probe"
            probe.write_text("x")
            probe.unlink()
        else:
            with open(path, "ab"):
                pass
        return True
    except OSError:
        return False


def test_a_read_only_cache_file_is_named_with_the_fix(case):
    case.cache.mkdir()
    import sqlite3

    sqlite3.connect(case.cache / "responses.sqlite").execute("CREATE TABLE t (x)").connection.close()
    with read_only(case.cache / "responses.sqlite"):
        line = case.refused(case.run("cache=true"), str(case.cache / "responses.sqlite"), "readonly")
    assert "delete it" in line and "cache=false" in line


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name,data,named", [
    ("items.csv", b"audience\n", ["items.csv", "no items"]),
    ("items.jsonl", b"\n  \n\n", ["items.jsonl", "no items"]),
    ("items.csv", "audience\ncaf\u00e9\n".encode("latin-1"), ["items.csv", "not UTF-8", "line 2"]),
    ("items.jsonl", b'{"audience": "a"}\n{"audience": "b"}\n{"audience": c}\n', ["items.jsonl", "line 3"]),
])
def test_input_files_that_hold_no_items_or_cannot_be_read(refused_here, tmp_path, name, data, named):
    path = _write(tmp_path, name, data)
    refused_here("model=gpt", f"task.inputs={path}", named=("task.inputs", *named))


def test_an_input_file_that_cannot_be_read_is_refused_by_the_command_line(case):
    path = _write(case.cwd, "items.csv", "audience\ncaf\u00e9\n".encode("latin-1"))
    case.refused(case.run(f"task.inputs={path}"), "task.inputs", "not UTF-8", "line 2")


@pytest.mark.parametrize("value,named", [
    ("[]", ["task.inputs", "empty"]),
    ("{a: 1}", ["task.inputs={a: 1}", "must be a list of items or a path"]),
    ("null", ["task.inputs", "not set"]),
])
def test_inline_inputs_that_are_not_a_list_of_items(refused_here, value, named):
    refused_here("model=gpt", f"task.inputs={value}", named=named)


def test_empty_inputs_into_an_earlier_sweep_folder_change_nothing(case):
    case.refused(case.run("task.inputs=[]", "temperature=0,1", sweep=True), "task.inputs", "empty")


def test_an_upper_case_suffix_is_read_as_what_it_is(case):
    path = _write(case.cwd, "items.CSV", b"audience\nowls\nbats\n")
    proc = case.run(f"task.inputs={path}")
    assert proc.returncode == 0, proc.stderr
    sent = [r.json["messages"][-1]["content"] for r in case.server.received[case.calls_before:]]
    assert sorted(sent) == ["Tell a light-hearted joke for an audience of bats",
                            "Tell a light-hearted joke for an audience of owls"]


def test_a_malformed_yaml_file_in_the_config_dir_is_named_with_its_line(case):
    mine = case.cwd / "mine" / "model"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("provider: openai\nid: [gpt-4.1-mini\nbase_url: null\n")
    proc = case.run("--config-dir", str(case.cwd / "mine"), "model=mine", gpt=False)
    case.refused(proc, str(mine / "mine.yaml"), "line 3")
    proc = case.run("--config-dir", str(case.cwd / "mine"), "model=gpt,mine", gpt=False, sweep=True)
    case.refused(proc, str(mine / "mine.yaml"), "line 3")


def test_a_run_folder_that_is_a_file_is_refused(case):
    target = _write(case.cwd, "taken", b"a file, not a folder")
    proc = case.run(f"hydra.run.dir={target}", into_earlier=False)
    case.refused(proc, "hydra.run.dir", str(target), "a file")
    assert target.read_bytes() == b"a file, not a folder"


@pytest.mark.parametrize("multirun", [False, True])
def test_a_read_only_outputs_folder_is_refused(case, multirun):
    outputs = case.cwd / "outputs"
    outputs.mkdir()
    with read_only(outputs):  # the history kept elsewhere: the default one in outputs/ would be named first
        proc = case.run(f"history={case.cwd / 'history.sqlite'}", sweep=multirun, into_earlier=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert ("hydra.sweep.dir" if multirun else "hydra.run.dir") in lines[0] and "outputs" in lines[0], lines[0]
    assert len(case.server.received) == case.calls_before
    assert list(outputs.iterdir()) == []
