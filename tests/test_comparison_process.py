"""The comparison's own process (runner.analysis.comparison_process) and what a run no longer imports up front."""
from __future__ import annotations

import subprocess
import sys

from runner.analysis.comparison_process import ComparisonProcess, Outcome
from tests.conftest import clean_env


def test_the_process_builds_the_comparison_of_the_folder_it_is_sent(runner, monkeypatch):
    run = runner("-m", "repeats=1,2", "max_tokens=8")
    assert run.code == 0, run.stderr
    root = run.root()
    for name in ("results.csv", "summary.csv", "report.md"):
        (root / name).unlink()
    monkeypatch.chdir(run.cwd)  # the history database is found from the working folder, as in a run
    process = ComparisonProcess.start()
    assert process is not None
    outcome = process.request(root)
    assert outcome == Outcome(calls=3, ok=3, error=0, skipped=0, exit_code=0)
    assert process.process.returncode == 0
    assert len(run.rows()) == 3 and (root / "report.md").is_file() and list(root.glob("*.png"))


def test_a_process_that_is_not_needed_exits_without_a_word():
    process = ComparisonProcess.start()
    process.stop()
    assert process.process.stdout.read() == ""
    assert process.process.wait(timeout=60) == 0


def test_a_build_that_crashes_answers_none_and_says_why_on_stderr(tmp_path):
    (tmp_path / "results.jsonl").mkdir()  # a folder where a file should be: reading it fails
    process = ComparisonProcess.start()
    assert process.request(tmp_path) is None
    assert process.process.returncode != 0


def test_a_crashed_comparison_ends_the_run_with_exit_1_and_the_command_to_rebuild_it(runner, tmp_path):
    (tmp_path / "out" / "report.md").mkdir(parents=True)  # the report cannot be written: the build crashes
    run = runner("max_tokens=8", "hydra.run.dir=out")
    assert run.code == 1
    assert "building the comparison failed" in run.stderr and "python -m runner.comparison" in run.stderr
    assert (tmp_path / "out" / "results.jsonl").is_file()  # the calls are kept


def test_provider_modules_and_the_checks_import_no_sdk():
    """A run answered from the cache, and every check before the first call, need no SDK (openai alone
    takes about 0.45 s to import): each provider imports its SDK at its first call."""
    code = (
        "import sys\n"
        "import runner.providers.openai, runner.providers.anthropic, runner.providers.gemini\n"
        "import runner.providers.ollama, runner.calling.preflight, runner.calling.engine, runner.calling.job\n"
        "from runner.providers.openai import OpenAIProvider\n"
        "print(sorted(m for m in ('openai', 'anthropic', 'google.genai', 'ollama', 'pandas', 'matplotlib')"
        " if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
