"""The docs' examples, found and checked: every shell example of README.md and docs/ (tests/test_docs.py), every
usage line of a config file under conf/ and of `python -m runner --help` (tests/test_usage_lines.py). Two modules,
so that pytest-xdist runs the two halves side by side; each has its own shared folder.

How each command is checked (docs/contributing/docs.md says the same to whoever writes an example):
- an unmarked runner command (`python -m runner...`): run as written, in a folder shared by the examples, with
  no key at all; it must exit 0, or what `<!-- exits: N -->` says.
- a block marked `<!-- needs: VAR ... -->` (keys a reader must have, a `server`, the `network`): each
  `python -m runner` command is a dry run (`dry_run=true`) with only those keys set; it must exit 0 (1 allowed
  with `network`, where pages cannot be read offline). Other runner commands (runner.score, runner.compare)
  run for real with only those keys, every provider's SDK pointed at its strict loopback fake (tests/fakes/)
  by its own endpoint variable.
- a block marked `<!-- server -->`: each `python -m runner.view` or `runner.chat` is started on a free port
  (with the keys the block needs, at the fakes) and must serve its first page.
- a block marked `<!-- not run: REASON -->`: scripts (`python benchmarks/...`) must take their flags (`--help`
  after them exits 0); other commands there are only listed.
- anything else (pip, a virtual environment) must be one of NOT_RUNNER, word for word.
- the usage lines of conf/'s comments and of --help carry no mark: they run for real against the fakes with
  every key (a dry run when they name a page on the web).
Placeholders of earlier runs (`outputs/sweeps/2026-11-24_10-00-00`, `OLD NEW`, `PATH`, `FOLDER`) name the two
sweeps the shared folder is given first. The folder also holds what an example run from the repository's root
reads: the test pictures (tests/data/images, the describe task's items), and a picture of the reader's own
(PICTURE)."""
from __future__ import annotations

import contextlib
import functools
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import forked
from tests.conftest import CTRL_C_REACHES_IT, REPO, clean_env

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
MARK = re.compile(r"^\s*<!--\s*(needs|server|not run|exits)\b:?\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```bash\s*$")
# commands that are not the runner's: installing it, or a step around it; checked by hand and by .ci/run
NOT_RUNNER = {
    "python3 -m venv .venv",
    "source .venv/bin/activate",
    'pip install -e ".[local]"',
    "pip install llama-cpp-python --extra-index-url https://abetlen.github.io/llama-cpp-python/whl/cpu",
    'pip install "llama-cpp-python[server]"',
    'pip install -e ".[ui]"',
    'pip install -e ".[cluster]"',
    'pip install "cosmic-ray>=8.7,<9"',
    'pip install -e ".[test,docs]"',
    "mkdocs serve",
    "python -m pytest -m \"not slow\"",
    "python -m pytest -n 0 -x -q tests/test_docs.py -k strictly",
}
# README's Quickstart, word for word: the install with the embedded model (the default run needs it: the light
# install would stop it at once) and the test suite itself (.ci/run runs the second)
QUICKSTART = {
    'python3 -m venv .venv && .venv/bin/pip install -e ".[local]" && .venv/bin/python -m runner',
    'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest',
}
# the two earlier sweeps the shared folder holds: the docs' placeholders name them
EARLIER, LATEST = "2026-11-24_09-00-00", "2026-11-24_10-00-00"
PLACEHOLDERS = {
    "outputs/sweeps/FOLDER": f"outputs/sweeps/{LATEST}",
    "OLD": EARLIER,
    "NEW": LATEST,
    "PATH": "outputs/history.sqlite",
}
FAKE_KEYS = {"OPENAI_API_KEY": "sk-docs-example-key", "ANTHROPIC_API_KEY": "sk-ant-docs-example-key",
             "GEMINI_API_KEY": "docs-example-key", "GOOGLE_API_KEY": "docs-example-key",
             "MISTRAL_API_KEY": "docs-example-key"}
SERVER_READY_S = 120  # Gradio's import on a busy 2-core machine; a limit for the wait, not an assertion


@dataclass
class Example:
    where: str  # file:line
    command: str  # as written, continuation lines joined, comment dropped
    needs: list[str] = field(default_factory=list)
    server: bool = False
    not_run: str | None = None
    exits: set[int] = field(default_factory=lambda: {0})
    every_key: bool = False  # a usage line in a comment: run against the fakes with every provider's key

    @property
    def words(self) -> list[str]:
        return shlex.split(self.command)


def commands_of(block: list[str]) -> list[str]:
    """A block's commands: continuation lines joined, comments and blank lines dropped."""
    joined, pending = [], ""
    for line in block:
        line = line.strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        words = shlex.split(line, comments=True)
        if words:
            joined.append(shlex.join(words) if "#" in line else line)
    return joined


def markdown_examples(path: Path) -> list[Example]:
    examples, marks = [], []
    lines = path.read_text(encoding="utf-8").splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        if mark := MARK.match(line):
            marks.append(mark.groups())
        elif FENCE.match(line):
            end = next(i for i in range(number + 1, len(lines)) if lines[i].strip() == "```")
            where = f"{path.relative_to(REPO).as_posix()}:{number + 1}"
            for command in commands_of(lines[number + 1:end]):
                example = Example(where, command)
                for kind, value in marks:
                    if kind == "needs":
                        example.needs += value.split()
                    elif kind == "server":
                        example.server = True
                    elif kind == "not run":
                        example.not_run = value or "(no reason given)"
                    else:
                        example.exits = {int(code) for code in value.split()}
                examples.append(example)
            marks, number = [], end
        elif line.strip():
            marks = []  # a mark belongs to the block right below it
        number += 1
    return examples


def config_examples() -> list[Example]:
    """The usage lines in conf/'s comments: `#   python -m runner ...`."""
    found = []
    for path in sorted((REPO / "conf").rglob("*.yaml")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if match := re.match(r"#\s+(python -m runner\b.*)$", line):
                found.append(with_url_needs(Example(f"{path.relative_to(REPO).as_posix()}:{number}", match[1])))
    return found


@functools.cache
def help_text() -> str:
    proc = subprocess.run([sys.executable, "-m", "runner", "--help"], cwd=REPO, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def help_examples() -> list[Example]:
    """The usage lines of `python -m runner --help`: a command, then two spaces or more, then what it does."""
    return [with_url_needs(Example("python -m runner --help", re.split(r"\s{2,}", line.strip())[0]))
            for line in help_text().splitlines() if line.strip().startswith("python -m runner")]


def with_url_needs(example: Example) -> Example:
    """A usage line in a comment has no mark: it runs against the fakes with every key, and one that names a page
    on the web needs the network."""
    example.every_key = True
    if re.search(r"https?://(?!127\.0\.0\.1)", example.command):
        example.needs.append("network")
    return example


def all_examples() -> list[Example]:
    found = [example for path in DOCS for example in markdown_examples(path)]
    return found + config_examples()


def is_runner(words: list[str]) -> bool:
    return words[:2] == ["python", "-m"] and (words[2] == "runner" or words[2].startswith("runner."))


def is_script(words: list[str]) -> bool:
    return words[0] == "python" and len(words) > 1 and words[1].startswith("benchmarks/")


def distinct(examples: list[Example]) -> list[Example]:
    """One check per command and way of checking it (README and a docs page may show the same one)."""
    seen, kept = set(), []
    for example in examples:
        key = (example.command, tuple(example.needs), example.server, example.not_run, tuple(example.exits))
        if key not in seen:
            seen.add(key)
            kept.append(example)
    return kept


EXAMPLES = distinct(all_examples())
# the pages' examples (tests/test_docs.py) and conf/'s usage lines (tests/test_usage_lines.py)
PAGE_EXAMPLES = [e for e in EXAMPLES if not e.where.startswith("conf/")]
CONFIG_EXAMPLES = [e for e in EXAMPLES if e.where.startswith("conf/")]


# a picture of the reader's own, as the docs name it: the shared folder holds one there
PICTURE = "photos/cat.jpg"
IMAGES = "tests/data/images"  # the describe task's items name them relative to the repository's root


# ---- the shared folder: fakes for every provider with a server, two earlier sweeps for the placeholders, and
# the pictures the examples read ----

@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from tests.fakes.anthropic_server import anthropic_server
    from tests.fakes.gemini_server import gemini_server
    from tests.fakes.ollama_server import ollama_server
    from tests.fakes.openai_server import openai_server

    folder = tmp_path_factory.mktemp("docs-examples")
    shutil.copytree(REPO / IMAGES, folder / IMAGES)
    (folder / PICTURE).parent.mkdir(parents=True)
    shutil.copyfile(REPO / IMAGES / "green-circle.jpg", folder / PICTURE)
    with openai_server() as ai, anthropic_server() as claude, gemini_server() as gemini, ollama_server() as llama:
        env = {"RUNNER_CACHE_DIR": str(folder / "cache"), "OPENAI_BASE_URL": ai.url + "/v1",
               "ANTHROPIC_BASE_URL": claude.url, "GOOGLE_GEMINI_BASE_URL": gemini.url, "OLLAMA_HOST": llama.url,
               **{name: "test-key" for name in FAKE_KEYS}}
        for name in (EARLIER, LATEST):
            proc = run(["python", "-m", "runner", "-m", "model=gpt", "prompt=default,concise",
                        f"hydra.sweep.dir=outputs/sweeps/{name}"], folder, env)
            assert proc.returncode == 0, proc.stderr
        yield folder, env


def run(words: list[str], cwd: Path, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    """The command as a user's shell runs it; `python -m ...` forked from the tests' warm process (tests/forked.py:
    the same process, exit code and output, without paying for its imports again)."""
    if words[0] == "python":
        return forked.run([sys.executable, *words[1:]], cwd=cwd, env=clean_env(**env), timeout=timeout)
    return subprocess.run(words, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout)


def filled(words: list[str]) -> list[str]:
    return [PLACEHOLDERS.get(word, word) for word in words]


def dry_run(words: list[str]) -> list[str]:
    return words if "dry_run=true" in words else [*words, "dry_run=true"]


def on_free_port(words: list[str]) -> list[str]:
    if "--port" in words:
        at = words.index("--port")
        return [*words[:at], "--port", "0", *words[at + 2:]]
    return [*words, "--port", "0"]


def serves(words: list[str], cwd: Path, env: dict) -> str:
    """Start a browser app; the URL it printed, once its first page answers 200. Stopped on the way out."""
    log = cwd / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, *words[1:]], cwd=cwd, env=clean_env(**env), stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=CTRL_C_REACHES_IT)
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + SERVER_READY_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            if found := re.search(r"http://127\.0\.0\.1:\d+/?", log.read_text()):
                with contextlib.suppress(OSError), no_proxy.open(found[0], timeout=5) as page:
                    assert page.status == 200
                    return found[0]
            time.sleep(0.5)
        pytest.fail(f"no page within {SERVER_READY_S} s:\n{log.read_text()[-3000:]}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def keyed(env: dict, names: list[str]) -> dict:
    """The shared folder's environment with only these keys (the fakes' own value): the endpoints stay."""
    return {name: value for name, value in env.items() if name not in FAKE_KEYS or name in names}


def check(example: Example, workspace) -> None:
    """Run or check one example as the module docstring says, in the shared folder."""
    folder, env = workspace
    words = example.words
    if not (is_runner(words) or is_script(words)):
        assert example.command in NOT_RUNNER | QUICKSTART, (
            f"{example.where}: `{example.command}` is neither a runner command nor listed in NOT_RUNNER")
        return
    if example.not_run is not None:
        assert example.not_run != "(no reason given)", f"{example.where}: say why it is not run"
        if is_script(words):
            proc = run([*words, "--help"], REPO, {})
            assert proc.returncode == 0, f"{example.where}: {proc.stderr[-2000:]}"
        return
    if words[:3] == ["python", "-m", "runner.llama_server"]:
        return  # started word for word by tests/test_openai_compatible.py, which reads it from docs/providers.md
    if example.server and words[2] in ("runner.view", "runner.chat"):
        serves(filled(on_free_port(words)), folder, keyed(env, example.needs))
        return
    if words[2] == "runner" and example.needs:  # a real key, a server or the network: priced, never called
        keys = {name: FAKE_KEYS[name] for name in example.needs if name in FAKE_KEYS}
        proc = run(dry_run(words), folder, {"RUNNER_CACHE_DIR": env["RUNNER_CACHE_DIR"], **keys})
        allowed = {0, 1} if "network" in example.needs else example.exits
    else:  # as written, with only the keys it is marked with: against the fakes
        proc = run(filled(words), folder, keyed(env, list(FAKE_KEYS) if example.every_key else example.needs))
        allowed = example.exits
    assert proc.returncode in allowed, (f"{example.where}: `{example.command}` exited {proc.returncode}\n"
                                        f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def check_help_line(line: Example, workspace) -> None:
    """A usage line of --help: as written against the fakes with every key, or a dry run where it needs the web."""
    folder, env = workspace
    words = filled(line.words)
    if "network" in line.needs:
        proc = run(dry_run(words), folder, {"RUNNER_CACHE_DIR": env["RUNNER_CACHE_DIR"]})
        assert proc.returncode in (0, 1), proc.stderr[-3000:]
        return
    proc = run(words, folder, env)
    assert proc.returncode == 0, f"`{line.command}` exited {proc.returncode}\n{proc.stderr[-3000:]}"
