"""The engine through the real command line against a loopback OpenAI fake: faults, retries, resume, a budget
shared by parallel jobs, and keys that never reach disk. The engine's behaviour alone (retries, cache,
budget, limits) is tested in this process in test_engine_behaviour.py."""
from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from runner.records import read_records
from tests import forked
from tests.conftest import clean_env
from tests.fakes.openai_server import default_answer, openai_server
from tests.fakes.server import Faults

KEY = "test-key"


def gpt(server, *args: str) -> list[str]:
    return ["model=gpt", f"model.base_url={server.url}/v1", *args]


def items_file(folder: Path, n: int) -> Path:
    path = folder / "audiences.jsonl"
    path.write_text("".join(json.dumps({"audience": f"audience number {i}"}) + "\n" for i in range(n)))
    return path


def records(root: Path) -> list[dict]:
    """Every record under root; a line still being written (read while the run writes) is left out."""
    rows = []
    for path in sorted(root.rglob("results.jsonl")):
        rows += list(read_records(path))
    return rows


def call(messages: list[dict]) -> str:
    """What identifies a call in this test: its messages (items and prompts differ, repeats=1)."""
    return json.dumps(messages, sort_keys=True)


def test_faults_are_retried_and_every_failure_is_explained(runner):
    faults = Faults(rate_limit=0.1, server_error=0.1, hang=0.05, garbage=0.05, seed=11)
    with openai_server(faults=faults) as server:
        run = runner(*gpt(server, "repeats=40", "model.timeout_s=2"), env={"OPENAI_API_KEY": KEY})
    rows = run.rows()
    assert len(rows) == 40, run.stderr
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= 38
    for row in rows:
        if row["status"] != "ok":
            assert row["status"] == "error" and "after 4 attempts" in row["error"], row
    retries = sum(int(r["retries"]) for r in rows)
    assert retries > 0
    # every request the server got is one attempt of one row; every fault it injected cost one retry or one row
    assert len(server.received) == retries + len(rows)
    assert len(server.fault_log) == len(server.received) - len(ok)
    assert {"rate_limit", "server_error", "hang", "garbage"} <= set(server.fault_log)
    assert run.code == (0 if len(ok) == 40 else 1)
    log = (run.root() / "runner.log").read_text()
    assert "HTTP Request" not in log  # httpx's per-request lines stay out of the log


@pytest.mark.slow  # runs and kills `python -m runner` processes
def test_kill_minus_9_then_the_same_command_finishes_without_asking_again(tmp_path, start_python):
    """A sweep killed half way; the re-run requests only the calls that had not finished. The fake answers
    6 calls, then holds every other one until the sweep is killed: the kill lands after exactly 6 whatever
    the machine's speed."""
    items = items_file(tmp_path, 12)
    answered = itertools.count()
    gate = threading.Event()

    def answer(messages):
        if next(answered) >= 6:
            gate.wait(60)
        return default_answer(messages)

    with openai_server(answer=answer) as server:
        command = [sys.executable, "-m", "runner", "-m", *gpt(server, "prompt=default,concise"),
                   f"task.inputs={items}", "model.concurrency=2"]
        env = clean_env(OPENAI_API_KEY=KEY, RUNNER_CACHE_DIR=str(tmp_path / "cache"))
        proc = start_python(command[1:], tmp_path, env)
        try:
            deadline = time.monotonic() + 120
            while (len([r for r in records(tmp_path / "outputs") if r["status"] == "ok"]) < 6
                   or len(server.received) < 8):
                assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            gate.set()  # the two calls held in flight answer a process that is gone
        finished = {call(r["messages"]) for r in records(tmp_path / "outputs") if r["status"] == "ok"}
        assert len(finished) == 6
        before = len(server.received)
        [first_root] = (tmp_path / "outputs" / "sweeps").iterdir()

        rerun = forked.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        asked_again = [call(request.json["messages"]) for request in server.received[before:]]

    assert not finished & set(asked_again)  # no call finished before the kill was requested again
    [new_root] = [p for p in (tmp_path / "outputs" / "sweeps").iterdir() if p != first_root]  # a folder of its own
    rows = records(new_root)
    assert len(rows) == 24 and {r["status"] for r in rows} == {"ok"}
    hits = [r for r in rows if r["cache_hit"]]
    assert finished == {call(r["messages"]) for r in hits} and all(r["spent_usd"] == 0 for r in hits)
    assert len(asked_again) == 18
    comparison = (new_root / "results.csv").read_text().splitlines()
    assert len(comparison) == 25  # no duplicate rows


def test_budget_is_shared_by_the_jobs_of_a_parallel_sweep(runner):
    limit = 0.0003
    with openai_server(latency_s=0.05) as server:
        run = runner("-m", *gpt(server, "repeats=15", "prompt=default,concise", "cache=false",
                                f"budget_usd={limit}", "max_tokens=16", "hydra/launcher=joblib"),
                     env={"OPENAI_API_KEY": KEY})
    assert run.code == 1, run.stderr
    rows = records(run.root())
    assert len(rows) == 30
    assert sum(r["spent_usd"] or 0 for r in rows) <= limit
    assert {r["error"] for r in rows if r["status"] == "skipped"} == {f"budget of ${limit:g} reached"}


def test_a_budget_needs_a_known_price(runner):
    run = runner("model=gpt", "model.id=some-private-model", "budget_usd=1", env={"OPENAI_API_KEY": KEY})
    assert run.code == 2
    assert "no known price" in run.stderr and "model.price" in run.stderr


def test_parallel_jobs_make_one_comparison(runner):
    with openai_server() as server:
        run = runner("-m", "model=gpt,local", "hydra/launcher=joblib", "max_tokens=16",
                     env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{server.url}/v1"})
        assert len(server.received) == 1
    assert run.code == 0, run.stderr
    rows = run.rows()
    assert sorted(r["model"] for r in rows) == ["gpt", "local"]
    assert (run.root() / "summary.csv").exists() and (run.root() / "report.md").exists()


def test_keys_never_reach_disk(runner, tmp_path):
    # obviously fake, yet shaped like each provider's keys (so the key checks accept them) and distinctive
    keys = {"OPENAI_API_KEY": "sk-proj-FAKE-Zq9x-oa-7731", "ANTHROPIC_API_KEY": "sk-ant-FAKE-Zq9x-7731",
            "GEMINI_API_KEY": "AIzaFAKE-Zq9x-gm-7731"}
    with openai_server(key=keys["OPENAI_API_KEY"], faults=Faults(rate_limit=0.2, seed=3)) as server:
        run = runner("-m", *gpt(server, "repeats=3", "temperature=0,0.5", "budget_usd=1"), env=keys)
    assert run.code == 0, run.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "responses.sqlite" for p in written) and any(p.name == "budget.sqlite" for p in written)
    assert any(p.name == "config.yaml" for p in written) and any(p.suffix == ".log" for p in written)
    for path in written:
        data = path.read_bytes()
        for value in keys.values():
            assert value.encode() not in data, f"{value} found in {path}"
            assert value[8:].encode() not in data, f"part of a key found in {path}"


def test_a_stream_that_trickles_past_model_timeout_s_is_cut_off(runner):
    """Every chunk comes within the SDK's read timeout, but the whole answer would not: the engine's own
    deadline (model.timeout_s for the whole call) ends it as an error row."""
    with openai_server(chunk_delay_s=0.4) as server:
        run = runner(*gpt(server, "model.timeout_s=1", "model.max_attempts=1"), env={"OPENAI_API_KEY": KEY})
    assert run.code == 1, run.stderr
    [row] = run.rows()
    assert row["status"] == "error" and row["error"] == "timed out after 1 s (model.timeout_s)"
    assert len(server.received) == 1
