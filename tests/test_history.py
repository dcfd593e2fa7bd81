"""Runs compared over time, as a user meets it: a re-run into the same folder, "Since the previous run"
from the third run on, answers compared beyond case and whitespace, and a history file written before
variants existed. Real runs against the strict OpenAI fake."""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess

import pytest

from tests.fakes.openai_server import openai_server
from tests.test_cells import env_for, read_csv

RUN = ["model=gpt", "cache=false", "model.max_attempts=1"]


def since_previous(report: str) -> str:
    return report[report.index("## Since the previous run"):report.index("## Answers side by side")]


def test_a_rerun_into_the_same_folder_shows_the_new_answer_not_the_old_error(runner, tmp_path):
    with openai_server() as server:
        failed = runner(*RUN, "hydra.run.dir=outputs/runs/same",
                        env={**env_for(server), "OPENAI_API_KEY": "a-revoked-key"})
        fixed = runner(*RUN, "hydra.run.dir=outputs/runs/same", env=env_for(server))
    assert failed.code == 1 and fixed.code == 0, fixed.stderr[-2000:]
    folder = tmp_path / "outputs/runs/same"
    [row] = read_csv(folder / "results.csv")  # the call once: its last record
    assert row["status"] == "ok" and row["response"].startswith("Answer to:") and row["error"] == ""
    [cell] = read_csv(folder / "summary.csv")
    assert (cell["calls"], cell["ok"], cell["error"]) == ("1", "1", "0")
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert report.count("1 call: 1 ok, 0 error") == 1 and "## Errors" not in report and "401" not in report


def test_each_run_is_compared_with_the_one_before_it_and_case_or_spacing_is_no_change(runner, tmp_path):
    answers = iter(["Take one: a joke about data", "  TAKE ONE:\n a JOKE   about data ", "Take two: a pun"])
    reports = []
    with openai_server() as server:
        for name in ("one", "two", "three"):
            said = next(answers)
            server.fake.answer = lambda messages, said=said: said
            run = runner(*RUN, f"hydra.run.dir=outputs/runs/{name}", env=env_for(server))
            assert run.code == 0, run.stderr[-2000:]
            reports.append((tmp_path / f"outputs/runs/{name}/report.md").read_text(encoding="utf-8"))
    second, third = since_previous(reports[1]), since_previous(reports[2])
    assert "with the previous run one (" in second
    assert "gpt 0 of 1 changed" in second  # only case and whitespace differ
    assert "with the previous run two (" in third and "run one (" not in third
    assert "gpt 1 of 1 changed" in third and "TAKE ONE:" in third and "Take two: a pun" in third


# The history schema as it was before the `variant` column (commit aa9625e): a file users already have.
OLD_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, folder TEXT NOT NULL UNIQUE, fingerprint TEXT NOT NULL,
    sweep TEXT NOT NULL, command TEXT NOT NULL, started_at TEXT NOT NULL, recorded_at TEXT NOT NULL,
    calls INTEGER, ok INTEGER, error INTEGER, skipped INTEGER, cost_usd REAL, spent_usd REAL
);
CREATE TABLE calls (
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    "run_id", "model", "provider", "model_id", "task", "prompt", "temperature", "item", "repeat", "status",
    "error", "input_tokens", "output_tokens", "cached_tokens", "tokens_source", "cost_usd", "spent_usd",
    "latency_s", "ttft_s", "finish_reason", "retries", "cache_hit", "response", "step", "job", "started_at",
    "max_tokens", "base_url", "note"
);
CREATE INDEX calls_by_run ON calls(run);
CREATE INDEX runs_by_sweep ON runs(fingerprint, started_at);
PRAGMA user_version = 1;
"""


def test_a_history_written_before_variants_keeps_its_runs_and_stays_the_same_sweep(runner, tmp_path):
    path = tmp_path / "outputs" / "history.sqlite"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    fingerprint = hashlib.sha256(b"gpt\tjoke\tdefault\t0.7").hexdigest()[:16]  # as it was hashed
    db.execute("INSERT INTO runs VALUES (1, 'old', ?, ?, 'model=gpt task=joke prompt=default temperature=0.7', "
               "'python -m runner model=gpt', '2026-11-01T10:00:00+00:00', '2026-11-01T10:00:05+00:00', "
               "1, 1, 0, 0, 0.00001, 0.00001)", (str(tmp_path / "outputs/runs/old"), fingerprint))
    db.execute("INSERT INTO calls VALUES (1, 'old', 'gpt', 'openai', 'gpt-4.1-mini', 'joke', 'default', 0.7, "
               "'Data Scientists', 0, 'ok', '', 20, 8, 0, 'provider', 0.00001, 0.00001, 0.5, 0.1, 'stop', 0, "
               "'false', 'An old joke', '', '', '2026-11-01T10:00:00+00:00', 256, '', '')")
    db.commit()
    db.close()

    with openai_server() as server:
        # no override beyond the four cell dimensions: the same cells as the old run
        run = runner("model=gpt", "cache=false", "hydra.run.dir=outputs/runs/new", env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    report = (tmp_path / "outputs/runs/new/report.md").read_text(encoding="utf-8")
    assert "history.sqlite was not updated" not in report
    since = since_previous(report)
    assert "with the previous run old (" in since and "gpt 1 of 1 changed" in since and "An old joke" in since

    db = sqlite3.connect(path)
    rows = db.execute("SELECT r.run_id, c.response, c.variant FROM calls c JOIN runs r ON r.id = c.run "
                      "ORDER BY r.started_at").fetchall()
    db.close()
    assert rows[0] == ("old", "An old joke", None) and [r[0] for r in rows] == ["old", "new"]


def read_only(path):
    """Make a file read-only for this user: permission bits, or for root (who ignores them) the immutable
    attribute (tests/test_comparison_input.py's way for folders). Returns how to undo it."""
    if os.name != "posix":
        pytest.skip("a read-only file is made with POSIX permissions here")
    if os.geteuid() != 0:
        path.chmod(0o444)
        return lambda: path.chmod(0o644)
    chattr = shutil.which("chattr")
    if not chattr or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without a way to make a file read-only")
    return lambda: subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_history_that_cannot_be_used_is_named_before_any_call(runner, tmp_path):
    """A history file that is no database, one that cannot be written, or one that cannot be made: exit 2 with
    one line before any call, rather than a warning after the calls were paid for."""
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(b"this is not a database\n" * 100)
    kept = tmp_path / "kept.sqlite"
    sqlite3.connect(kept).execute("CREATE TABLE runs (id INTEGER)").connection.commit()
    (tmp_path / "a-file").write_text("")
    undo = read_only(kept)
    try:
        with openai_server() as server:
            for history, said in ((damaged, "damaged.sqlite cannot be used (file is not a database)"),
                                  (kept, "kept.sqlite cannot be used"),
                                  (tmp_path / "a-file" / "history.sqlite", "a-file is a file, not a folder")):
                run = runner(*RUN, f"history={history}", env=env_for(server))
                lines = [line for line in run.stderr.splitlines() if line.strip()]
                assert run.code == 2 and len(lines) == 1, run.stderr
                assert lines[0].startswith("runner: config error: the history database ") and said in lines[0]
                assert not server.received and not (tmp_path / "outputs").exists()
    finally:
        undo()
    assert damaged.read_bytes() == b"this is not a database\n" * 100
