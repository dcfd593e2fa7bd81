"""runner.view's run list: the best score of a run, read from its summary.csv once per version of the file."""
from __future__ import annotations

import os

from runner.analysis.catalog import best_score

HEADER = "model,variant,task,prompt,temperature,score,score_low,score_high\n"


def test_best_score_names_the_best_cell_with_its_interval(tmp_path):
    path = tmp_path / "summary.csv"
    path.write_text(HEADER + "gpt,,joke,default,0.7,0.5,0.4,0.6\nclaude,,joke,default,0.7,0.9,0.8,1.0\n",
                    encoding="utf-8")
    assert best_score(path) == "claude 0.90 [0.80, 1.00] (best of 2 cells)"
    assert best_score(tmp_path / "missing.csv") == ""


def test_a_rescored_run_shows_its_new_score(tmp_path):
    """The viewer keeps what it read per file version: a summary.csv rewritten by runner.score is read again."""
    path = tmp_path / "summary.csv"
    path.write_text(HEADER + "gpt,,joke,default,0.7,0.5,0.4,0.6\n", encoding="utf-8")
    assert best_score(path).startswith("gpt 0.50")
    stat = path.stat()
    path.write_text(HEADER + "gpt,,joke,default,0.7,0.25,0.1,0.4\n", encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a coarse clock still moves on
    assert best_score(path).startswith("gpt 0.25")
