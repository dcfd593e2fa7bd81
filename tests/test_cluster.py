"""Sweeps through Hydra's submitit launcher (`hydra/launcher=submitit_local`, the real hydra-submitit-launcher
and submitit packages): every job is a process of its own started by submitit, as on a SLURM cluster with
`submitit_slurm`. The jobs share the response cache, the budget ledger and the page snapshots; the
comparison is built once, at the end, from every job; a job killed for real is that job's failure in it.
"""
from __future__ import annotations

import csv
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import clean_env
from tests.fakes.openai_server import default_answer, openai_server
from tests.fakes.site import reads, site

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the `cluster` extra is not installed")
pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(sys.platform == "win32", reason="submitit runs jobs on POSIX systems only")]

KEY = {"OPENAI_API_KEY": "test-key"}
LAUNCHER = "hydra/launcher=submitit_local"


def env_for(ai) -> dict:
    return {**KEY, "OPENAI_BASE_URL": ai.url + "/v1"}


def completions(ai) -> int:
    return len(ai.requests_to("/v1/chat/completions"))


def rows(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def submitted_jobs(sweep: Path) -> dict[int, int]:
    """{Hydra job number: its process id}, from the jobs submitit submitted (the local executor's job id is
    the process id; each job's pickle holds the launcher's arguments: overrides, key, job number...)."""
    jobs = {}
    for path in sweep.glob(".submitit/*/*_submitted.pkl"):
        with open(path, "rb") as handle:
            args = pickle.load(handle).args
        jobs[args[2]] = int(path.parent.name)
    return jobs


def test_jobs_in_submitit_processes_share_snapshots_and_cache_and_make_one_comparison(runner, tmp_path):
    sweep = tmp_path / "sweep"
    with site() as web, openai_server() as ai:
        # the docs' command (docs/large-sweeps.md, "Parallel jobs and clusters"), with submitit_local for submitit_slurm
        command = ["-m", LAUNCHER, "model=gpt", "temperature=0,0.7", "task=summarize",
                   f"task.inputs=[{web.url}/news]", "max_tokens=16", f"hydra.sweep.dir={sweep}",
                   f"cache_dir={tmp_path / 'shared-cache'}", "hydra.launcher.timeout_min=10"]
        first = runner(*command, env=env_for(ai))
        assert first.code == 0, first.stderr
        assert completions(ai) == 2
        first_rows = rows(sweep)
        # the same sweep again, into the same folder: the page from its snapshot, the answers from the cache
        again = runner(*command, env=env_for(ai))
        assert again.code == 0, again.stderr
        assert completions(ai) == 2  # the re-run sent nothing
    assert sorted(p.parent.name for p in sweep.glob("*/results.jsonl")) == ["0", "1"]
    assert len(list(sweep.glob(".submitit/*/*_submitted.pkl"))) == 4  # every job went through submitit
    # the news page changes on every read: one edition in every prompt shows the jobs shared one snapshot
    editions = {m["content"].rsplit("Edition", 1)[1] for r in ai.requests_to("/v1/chat/completions")
                for m in r.json["messages"][1:]}
    assert len(editions) == 1 and reads(web, "/news") <= 2  # two jobs may race to the first read
    for found in (first_rows, rows(sweep)):
        assert sorted(r["temperature"] for r in found) == ["0.0", "0.7"]
    assert {r["cache_hit"] for r in first_rows} == {"false"}
    assert {r["cache_hit"] for r in rows(sweep)} == {"true"}
    assert (sweep / "summary.csv").is_file() and (sweep / "report.md").is_file()
    assert (tmp_path / "shared-cache" / "responses.sqlite").is_file()


def test_the_budget_covers_every_submitit_job(runner):
    limit = 0.0003
    with openai_server(latency_s=0.05) as ai:
        run = runner("-m", LAUNCHER, "model=gpt", "prompt=default,concise", "repeats=15", "cache=false",
                     f"budget_usd={limit}", "max_tokens=16", env=env_for(ai))
    assert run.code == 1, run.stderr
    rows = run.rows()
    assert len(rows) == 30 and {r["job"] for r in rows} == {"0", "1"}
    assert sum(float(r["spent_usd"] or 0) for r in rows) <= limit
    assert {r["error"] for r in rows if r["status"] == "skipped"} == {f"budget of ${limit:g} reached"}
    assert (run.root() / "budget.sqlite").is_file()


def test_a_job_killed_by_a_signal_is_that_jobs_failure_in_the_comparison(tmp_path):
    doomed_arrived, release = threading.Event(), threading.Event()

    def answer(messages):  # job 1's call never gets an answer, so its process is alive when it is killed
        if "doomed" in messages[0]["content"]:
            doomed_arrived.set()
            release.wait(240)
        return default_answer(messages)

    with openai_server(answer=answer) as ai:
        env = clean_env(RUNNER_CACHE_DIR=str(tmp_path / "cache"), **env_for(ai))
        sweep = tmp_path / "sweep"
        process = subprocess.Popen(
            [sys.executable, "-m", "runner", "-m", LAUNCHER, "model=gpt", "prompt.append=fine,doomed",
             "max_tokens=16", f"hydra.sweep.dir={sweep}", "model.timeout_s=60"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            if not doomed_arrived.wait(180):
                process.kill()
                pytest.fail(f"job 1 never called the model:\n{process.communicate()[1][-3000:]}")
            deadline = time.monotonic() + 30
            while 1 not in submitted_jobs(sweep) and time.monotonic() < deadline:
                time.sleep(0.1)
            os.kill(submitted_jobs(sweep)[1], signal.SIGKILL)  # as the kernel's out-of-memory killer would
            _, stderr = process.communicate(timeout=120)
        finally:
            release.set()
            if process.poll() is None:
                process.kill()
    assert process.returncode == 1, stderr[-3000:]
    assert "runner: 1 call (1 ok, 0 error, 0 skipped)" in stderr  # the comparison was built, from both jobs
    note = (sweep / "1" / "job_error.txt").read_text(encoding="utf-8")
    assert note.startswith("job 1 did not finish") and "submitit" in note
    report = (sweep / "report.md").read_text(encoding="utf-8")
    assert "job `1` crashed before it finished" in report
    assert (sweep / "results.csv").read_text(encoding="utf-8").count("\n") == 2  # the header and job 0's call
