"""The command line as users run it: real subprocesses into a temp folder, results read from disk."""
from __future__ import annotations

import csv

import pytest

from runner.records import CONTRACT_COLUMNS
from tests.fakes.openai_server import openai_server


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


def test_key_with_spaces_is_reported_before_any_call(runner):
    with openai_server() as server:
        run = runner("model=gpt", env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": " test-key\t"})
    assert run.code == 2 and "OPENAI_API_KEY" in run.stderr and "test-key" not in run.stderr
    assert server.received == []


def test_comparison_can_be_rebuilt_from_a_sweep_folder(runner, tmp_path):
    import subprocess
    import sys

    from tests.conftest import clean_env

    run = runner("-m", "repeats=1,2", "max_tokens=8")
    assert run.code == 0, run.stderr
    root = run.root()
    for name in ("results.csv", "summary.csv", "report.md"):
        (root / name).unlink()
    proc = subprocess.run([sys.executable, "-m", "runner.comparison", str(root)], capture_output=True, text=True,
                          env=clean_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(run.rows()) == 3 and (root / "report.md").is_file()
