"""The command line as users run it: real subprocesses into a temp folder, results read from disk."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import forked
from tests.conftest import clean_env
from tests.fakes.openai_server import default_answer, openai_server

# results.csv's columns as the contract (shared/CONTRACT.md, "What every run writes") lists them, written
# out here rather than taken from the code, so that the code cannot drift from the promise unnoticed
CONTRACT_COLUMNS = [
    "run_id", "model", "provider", "model_id", "task", "prompt", "temperature", "item", "repeat", "status",
    "error", "input_tokens", "output_tokens", "cached_tokens", "tokens_source", "cost_usd", "spent_usd",
    "latency_s", "ttft_s", "finish_reason", "retries", "cache_hit", "response",
]


def test_default_run_uses_the_embedded_model_and_writes_the_comparison(runner):
    run = runner("max_tokens=24")
    assert run.code == 0, run.stderr
    root = run.root()
    assert root.parent.name == "runs"
    rows = run.rows()
    assert list(rows[0])[: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    assert rows and all(r["status"] == "ok" and r["response"].strip() for r in rows)
    assert {r["model"] for r in rows} == {"local"} and rows[0]["tokens_source"] == "provider"
    assert rows[0]["cost_usd"] == "0.0"
    for name in ("results.jsonl", "summary.csv", "report.md"):
        assert (root / name).is_file()
    pngs = list(root.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_multirun_compares_gpt_and_local_with_the_servers_token_counts(runner):
    with openai_server(chunk_delay_s=0.01) as server:
        run = runner("-m", "model=gpt,local", "max_tokens=16", "task=tutor",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    root = run.root()
    assert root.parent.name == "sweeps"
    rows = run.rows()
    assert {r["model"] for r in rows} == {"gpt", "local"}
    gpt = [r for r in rows if r["model"] == "gpt"]
    assert len(gpt) == len(server.received) >= 1
    reported = set()
    for request in server.received:
        sent = request.json
        usage = server.fake.usage(sent["messages"], server.fake.answer(sent["messages"]))
        reported.add((usage["prompt_tokens"], usage["completion_tokens"]))
    assert {(int(r["input_tokens"]), int(r["output_tokens"])) for r in gpt} == reported
    for row in gpt:
        assert row["tokens_source"] == "provider"
        assert 0 < float(row["ttft_s"]) < float(row["latency_s"])
    # each job keeps its own files; the root has one comparison over both
    assert sorted(p.name for p in root.glob("*/results.jsonl")) == ["results.jsonl"] * 2
    with open(root / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert sorted(r["model"] for r in summary) == ["gpt", "local"]
    assert "python -m runner -m model=gpt,local" in (root / "report.md").read_text()


def test_a_failing_model_becomes_error_rows_and_exit_1(runner):
    with openai_server(key="another-key") as server:  # rejects our key: 401
        run = runner("model=gpt", env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 1, run.stderr
    rows = run.rows()
    assert rows[0]["status"] == "error" and "401" in rows[0]["error"]
    assert "## Errors" in (run.root() / "report.md").read_text()


def test_missing_openai_key_skips_the_cells_without_sending_anything(runner):
    with openai_server() as server:
        run = runner("model=gpt", env={"OPENAI_BASE_URL": server.url + "/v1"})
    assert run.code == 1
    assert server.received == []
    row = run.rows()[0]
    assert row["status"] == "skipped" and "OPENAI_API_KEY" in row["error"]


@pytest.mark.parametrize("args,named", [
    (["model=nope"], "nope"),
    (["-m", "model=local,nope"], "nope"),
    (["temprature=1"], "temprature"),
    (["temperature=5"], "temperature=5"),
    (["-m", "temperature=0,9"], "temperature=9"),
    (["temperature=hot"], "hot"),
    (["repeats=0"], "repeats=0"),
    (["+model.temprature=1"], "temprature"),
    (["task.inputs=missing.csv"], "missing.csv"),
])
def test_bad_config_exits_2_with_one_line_and_writes_nothing(runner, args, named):
    run = runner(*args)
    assert run.code == 2, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], run.stderr
    assert not (run.cwd / "outputs").exists()


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "hydra", "--resolve"], ["--cfg", "job"], ["--info"]])
def test_options_that_run_nothing_create_no_folder(runner, args):
    run = runner(*args)
    assert run.code == 0, run.stderr
    assert not (run.cwd / "outputs").exists()
    if "--resolve" in args:  # the folder it would use is named, not made
        assert "outputs/runs/20" in run.stdout


def test_key_with_spaces_is_reported_before_any_call(runner):
    with openai_server() as server:
        run = runner("model=gpt", env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": " test-key\t"})
    assert run.code == 2 and "OPENAI_API_KEY" in run.stderr and "test-key" not in run.stderr
    assert server.received == []


def test_comparison_can_be_rebuilt_from_a_sweep_folder(runner, tmp_path):
    import sys

    from tests.conftest import clean_env

    run = runner("-m", "repeats=1,2", "max_tokens=8")
    assert run.code == 0, run.stderr
    root = run.root()
    for name in ("results.csv", "summary.csv", "report.md"):
        (root / name).unlink()
    proc = forked.run([sys.executable, "-m", "runner.comparison", str(root)], capture_output=True, text=True,
                          env=clean_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(run.rows()) == 3 and (root / "report.md").is_file()


def gpt(server, *args: str) -> list[str]:
    return ["model=gpt", f"model.base_url={server.url}/v1", *args]


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_plain_prompt_system_override_replaces_the_system_prompt(runner):
    with openai_server() as server:
        run = runner(*gpt(server, "prompt.system=You are a pirate", "prompt=concise"),
                     env={"OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    [request] = server.received
    assert request.json["messages"][0] == {
        "role": "system", "content": "You are a pirate\n\nKeep your answer short, at most three sentences."}


def test_two_sweeps_started_in_the_same_second_get_a_folder_each(tmp_path):
    """Both name their folder alike (the default names it to the second; here the name is fixed, so they
    always collide): each gets its own, with its own jobs' rows and its own multirun.yaml."""
    with openai_server(latency_s=0.2) as server:
        env = clean_env(OPENAI_API_KEY="test-key", RUNNER_CACHE_DIR=str(tmp_path / "cache"))
        sweeps = [subprocess.Popen([sys.executable, "-m", "runner", "-m",
                                    *gpt(server, f"task.inputs=[{{audience: {who}}}]"), "temperature=0,1",
                                    "cache=false", "hydra.sweep.dir=${new_folder:outputs/sweeps/same}"],
                                   cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for who in ("owls", "bats")]
        results = [proc.communicate(timeout=300) for proc in sweeps]
    assert [proc.returncode for proc in sweeps] == [0, 0], results
    folders = sorted(p.name for p in (tmp_path / "outputs" / "sweeps").iterdir())
    assert folders == ["same", "same_2"]
    audiences = set()
    for name in folders:
        root = tmp_path / "outputs" / "sweeps" / name
        for job in ("0", "1"):
            rows = csv_rows(root / job / "results.csv")
            assert len(rows) == 1 and (root / job / "results.jsonl").read_text().count("\n") == 1
        rows = csv_rows(root / "results.csv")
        assert len(rows) == 2 and len({r["item"] for r in rows}) == 1 and {r["run_id"] for r in rows} == {name}
        audiences |= {r["item"] for r in rows}
        assert (root / "multirun.yaml").is_file()
    assert audiences == {"owls", "bats"}
    assert len(server.received) == 4


def test_back_to_back_runs_never_share_a_folder(runner):
    first = runner("dry_run=true")
    second = runner("dry_run=true")
    assert first.code == second.code == 0, first.stderr + second.stderr
    estimates = sorted((first.cwd / "outputs" / "runs").glob("*/estimate.csv"))
    assert len(estimates) == 2


def test_a_run_into_a_used_folder_keeps_the_earlier_report_and_config_and_resumes(runner, tmp_path):
    env = {"OPENAI_API_KEY": "test-key"}
    with openai_server() as server:
        server.faults.server_error = 1.0
        first = runner(*gpt(server, "task.inputs=[{audience: owls}, {audience: bats}]", "model.max_attempts=1",
                            "hydra.run.dir=kept"), env=env)
        assert first.code == 1, first.stderr
        server.faults.server_error = 0.0
        folder = tmp_path / "kept"
        report, config = (folder / "report.md").read_text(), (folder / ".hydra" / "overrides.yaml").read_text()
        second = runner(*gpt(server, "task.inputs=[{audience: owls}, {audience: bats}]", "hydra.run.dir=kept"),
                        env=env)
    assert second.code == 0, second.stderr
    earlier = folder / "earlier" / "1"
    notes = [line for line in second.stderr.splitlines() if "already holds a run" in line]
    assert len(notes) == 1 and str(earlier) in notes[0]
    assert (earlier / "report.md").read_text() == report and "## Errors" in report
    assert (earlier / ".hydra" / "overrides.yaml").read_text() == config
    assert {r["status"] for r in csv_rows(earlier / "results.csv")} == {"error"}
    # resumed in place: the calls that failed were made again, and the comparison keeps their new record
    rows = csv_rows(folder / "results.csv")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    assert "## Errors" not in (folder / "report.md").read_text()
    assert (folder / "results.jsonl").read_text().count("\n") == 4


def test_a_sweep_into_a_used_folder_keeps_the_earlier_one(runner, tmp_path):
    with openai_server() as server:
        for _ in range(2):
            run = runner("-m", *gpt(server, "temperature=0,1", "hydra.sweep.dir=weekly"),
                         env={"OPENAI_API_KEY": "test-key"})
            assert run.code == 0, run.stderr
    folder = tmp_path / "weekly"
    earlier = folder / "earlier" / "1"
    for name in ("report.md", "summary.csv", "results.csv", "multirun.yaml", "0/.hydra/config.yaml",
                 "1/.hydra/config.yaml"):
        assert (earlier / name).is_file() and (folder / name).is_file(), name
    assert len(csv_rows(folder / "results.csv")) == 2  # each call once: the second sweep answered from the cache


def test_sigterm_stops_a_run_like_ctrl_c_with_exit_143(tmp_path, start_python):
    gate = threading.Event()

    def slow(messages):
        gate.wait(30)
        return default_answer(messages)

    with openai_server(answer=slow) as server:
        proc = start_python(["-m", "runner", *gpt(server, "repeats=3")], tmp_path,
                            clean_env(OPENAI_API_KEY="test-key", RUNNER_CACHE_DIR=str(tmp_path / "cache")))
        try:
            deadline = time.monotonic() + 120
            while not server.received:  # a call is in flight
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        finally:
            gate.set()
    assert proc.returncode == 143, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("runner: stopped by SIGTERM; run the same command again to finish"), stderr
    assert "Traceback" not in stderr


def test_a_job_that_crashes_makes_the_sweep_exit_1(tmp_path, start_python):
    """The items file turns unreadable after the checks and while job 0 calls the model: job 1 crashes when it
    loads it. The sweep still writes its comparison, says which job crashed, and does not exit 0."""
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"audience": "owls"}) + "\n")
    gate = threading.Event()

    def held(messages):
        gate.wait(30)
        return default_answer(messages)

    with openai_server(answer=held) as server:
        proc = start_python(["-m", "runner", "-m", *gpt(server, f"task.inputs={items}"), "temperature=0,1"],
                            tmp_path, clean_env(OPENAI_API_KEY="test-key", RUNNER_CACHE_DIR=str(tmp_path / "cache")))
        try:
            deadline = time.monotonic() + 120
            while not server.received:  # job 0 has read the items and called: every check is behind us
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.02)
            items.write_bytes("caf\u00e9".encode("latin-1"))
        finally:
            gate.set()
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    root = next((tmp_path / "outputs" / "sweeps").iterdir())
    assert "not UTF-8" in (root / "1" / "job_error.txt").read_text()
    assert "job `1` crashed" in (root / "report.md").read_text()
    assert [r["status"] for r in csv_rows(root / "results.csv")] == ["ok"]


def handles_sigterm(pid: int) -> bool:
    """Whether the process has its own SIGTERM handler yet (Linux: bit 15 of SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc to know when the run handles SIGTERM")
@pytest.mark.timeout(900)  # 20 runs, and two whole ones: a minute on a quiet machine, more on a busy one
def test_sigterm_at_any_moment_ends_the_run_with_143(tmp_path, start_python):
    """SIGTERM sent at random moments of a run (composing the config, calling, recording, building the
    comparison), 20 times: every run it reaches ends with 143, whatever code the signal interrupted. The runs
    are forked from a Python that has imported what a run imports (tests/forked.py): the signal is sent once
    the run handles it, after its imports, so only its imports' time is saved."""
    import random

    def start(folder: Path):
        folder.mkdir()
        env = clean_env(OPENAI_API_KEY="test-key", RUNNER_CACHE_DIR=str(folder / "cache"))  # each run calls
        return start_python(["-m", "runner", *gpt(server, "repeats=4", "model.concurrency=2")], folder, env)

    randomly = random.Random(20)
    with openai_server(latency_s=0.05) as server:
        durations = []
        for name in ("whole", "again"):  # how long a run lasts, start to exit (the first also compiles)
            began = time.monotonic()
            whole = start(tmp_path / name)
            _, stderr = whole.communicate(timeout=300)
            assert whole.returncode == 0, stderr
            durations.append(time.monotonic() - began)
        delivered = finished = 0
        for attempt in range(60):
            proc = start(tmp_path / str(attempt))
            deadline = time.monotonic() + 60
            while not handles_sigterm(proc.pid):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.001)
            time.sleep(randomly.uniform(0, 0.9 * min(durations)))
            proc.send_signal(signal.SIGTERM)  # nothing is sent to a process that has ended
            _, stderr = proc.communicate(timeout=120)
            if proc.returncode == 0 and "stopped by SIGTERM" not in stderr and " -> " in stderr.splitlines()[-1]:
                finished += 1  # the run had written its report and was exiting when the signal came: not a try
                continue
            assert proc.returncode == 143, f"try {attempt}: exit {proc.returncode}\n{stderr}"
            assert stderr.splitlines()[-1].startswith("runner: stopped by SIGTERM"), stderr
            delivered += 1
            if delivered == 20:
                break
    assert delivered == 20 and finished < 10


def test_an_answer_cached_as_sigterm_came_is_recorded_too(tmp_path, start_python):
    """The answer arrives; the run is writing it to the response cache (held up here by a lock on the cache
    file) when SIGTERM comes. The stopped run still records it: a paid answer is never in the cache alone."""
    import sqlite3

    gate = threading.Event()

    def held(messages):
        gate.wait(30)
        return default_answer(messages)

    cache = tmp_path / "cache"
    with openai_server(answer=held) as server:
        proc = start_python(["-m", "runner", *gpt(server, "task.inputs=[{audience: owls}]")], tmp_path,
                            clean_env(OPENAI_API_KEY="test-key", RUNNER_CACHE_DIR=str(cache)))
        lock = None
        try:
            deadline = time.monotonic() + 120
            while not server.received:  # the call is in flight: the cache file exists (checked before any call)
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.02)
            lock = sqlite3.connect(cache / "responses.sqlite", isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")  # the run's write of the answer waits for this lock
            gate.set()
            time.sleep(1.5)  # the answer is in; the run waits to write it to the cache
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
        finally:
            gate.set()
            if lock is not None:
                lock.execute("ROLLBACK")
                lock.close()
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    cached = sqlite3.connect(cache / "responses.sqlite").execute("SELECT count(*) FROM responses").fetchone()[0]
    [folder] = (tmp_path / "outputs" / "runs").iterdir()
    recorded = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert cached == 1 and [r["status"] for r in recorded] == ["ok"], stderr
