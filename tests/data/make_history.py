"""Make a history file the way an earlier version of the runner wrote it, for tests/test_history_migrations.py.

    python tests/data/make_history.py COMMIT tests/data/history-COMMIT.sqlite

It checks out COMMIT in a temporary git worktree, writes two runs of one small sweep (results.jsonl files,
as jobs write them) and has that version's own `python -m runner.comparison FOLDER --history FILE` record
both. Needs the same virtual environment the tests use (pandas, matplotlib); nothing is called.
The files in tests/data were made from 3b97bf9 (the first history, before the variant column), 0be982c
(main before named migrations) and 1208829 (migrations m001-m003, before the scores table).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def record(run_id: str, job: str, model: str, temperature: float, item: str, answer: str, started: str) -> dict:
    """One call as results.jsonl holds it; fields an older version does not know are ignored by it."""
    return {
        "run_id": run_id, "model": model, "provider": "openai", "model_id": "gpt-4.1-mini", "task": "joke",
        "prompt": "default", "temperature": temperature, "item": item, "repeat": 0, "status": "ok", "error": "",
        "input_tokens": 21, "output_tokens": 9, "cached_tokens": 0, "tokens_source": "provider",
        "cost_usd": 0.0000228, "spent_usd": 0.0000228, "latency_s": 0.42, "ttft_s": 0.11, "finish_reason": "stop",
        "retries": 0, "cache_hit": False, "response": answer, "step": "", "job": job, "started_at": started,
        "max_tokens": 64, "base_url": "", "note": "", "variant": "", "messages": [], "details": {},
    }


def write_run(folder: Path, run_id: str, started: str, answers: dict[str, str]) -> None:
    """A sweep of two jobs (temperature 0 and 0.7) over two items."""
    for job, temperature in (("0", 0.0), ("1", 0.7)):
        (folder / job).mkdir(parents=True)
        with open(folder / job / "results.jsonl", "w", encoding="utf-8") as out:
            for item, answer in answers.items():
                out.write(json.dumps(record(run_id, job, "gpt", temperature, item, answer, started)) + "\n")


def main(commit: str, out: Path) -> None:
    out = out.resolve()
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as work:
        checkout = Path(work) / "runner"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(checkout), commit], check=True)
        try:
            runs = Path(work) / "outputs"
            write_run(runs / "2026-11-02_06-00-00", "2026-11-02_06-00-00", "2026-11-02T06:00:01+00:00",
                      {"owls": "Why do owls... they give a hoot.", "lawyers": "A lawyer walks into a bar."})
            write_run(runs / "2026-11-09_06-00-00", "2026-11-09_06-00-00", "2026-11-09T06:00:01+00:00",
                      {"owls": "Owls: they give a hoot.", "lawyers": "A lawyer walks into a bar."})
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            for folder in sorted(runs.iterdir()):
                subprocess.run([sys.executable, "-m", "runner.comparison", str(folder), "--history", str(out)],
                               cwd=work, env=env, check=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(checkout)], check=True)
    print(f"{out}: {out.stat().st_size} bytes, written by {commit}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
