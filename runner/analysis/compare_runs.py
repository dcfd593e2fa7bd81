"""`python -m runner.compare`: what changed between two runs, from the history database.

    python -m runner.compare              the latest run against the previous run of the same sweep
    python -m runner.compare RUN          that run against the previous run of its sweep
    python -m runner.compare OLD NEW      any two runs

A run is named by its run_id (its folder's name, e.g. 2026-11-24_10-00-00) or its folder; a folder not in
the history is read from its results.jsonl and scores.jsonl files. Prints markdown: cost, latency, answers
and errors, then the scores (a change is a regression only when its 95% interval excludes 0, else within
noise). Exit 0, or 2 when a run cannot be found or there is nothing to compare.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from runner.analysis import history, run_diff, scores
from runner.analysis.run_folder import read_calls
from runner.analysis.summary import frame
from runner.folders import job_folders


class NotFound(Exception):
    pass


@dataclass
class Side:
    """One of the two runs compared: its calls, its score rows, how it is named, and its sweep."""

    calls: pd.DataFrame
    scores: pd.DataFrame
    label: str
    sweep: str = ""


def _label(run: history.Run) -> str:
    return f"{run.label}, {run.folder}"


def _recorded(path: Path, run: history.Run) -> Side:
    return Side(history.calls(path, run), scores.recorded(path, run), _label(run), run.sweep)


def _load(path: Path, ref: str) -> Side:
    """A run: from the history, or from a folder the history does not know (its results.jsonl and
    scores.jsonl files)."""
    run = history.find(path, ref)
    if run is not None:
        return _recorded(path, run)
    if Path(ref).is_dir():
        if job_folders(Path(ref)):
            skipped: list[str] = []
            calls = read_calls(Path(ref))
            scored = scores.read(Path(ref), skipped)
            for line in calls.skipped + skipped:
                print(f"runner.compare: skipped {line}", file=sys.stderr)
            return Side(frame(calls.table()), scored, f"{Path(ref).name}, {Path(ref).resolve()}")
    raise NotFound(f"no run {ref!r} in {path} (give a run_id or a run/sweep folder)")


def pair(path: Path, refs: list[str]) -> tuple[Side, Side]:
    """The older run and the newer one (whose sweep is the one shown)."""
    if len(refs) == 2:
        return _load(path, refs[0]), _load(path, refs[1])
    if refs:
        run = history.find(path, refs[0])
        if run is None:
            raise NotFound(f"no run {refs[0]!r} in {path}")
    else:
        known = history.runs(path)
        if not known:
            raise NotFound(f"no runs recorded in {path} yet")
        run = known[-1]
    earlier = history.previous(path, run)
    if earlier is None:
        raise NotFound(f"run {run.run_id} is the first of its sweep in {path} ({run.sweep}): "
                       "nothing to compare with yet")
    return _recorded(path, earlier), _recorded(path, run)


def scores_part(old: Side, new: Side) -> str:
    """The "Scores" part: each cell's score change with its verdict."""
    return "## Scores\n\n" + scores.between(old.scores, new.scores)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run_id or folder (none: the latest run)")
    parser.add_argument("--history", type=Path, default=history.DEFAULT_PATH,
                        help=f"the history database (default: {history.DEFAULT_PATH})")
    args = parser.parse_args(argv)
    if len(args.runs) > 2:
        parser.error("give at most two runs")
    if args.history.is_dir():
        print(f"runner.compare: {args.history} is a folder, not a history file (--history takes the .sqlite file)",
              file=sys.stderr)
        return 2
    try:
        old, new = pair(args.history, args.runs)
    except NotFound as exc:
        print(f"runner.compare: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # not SQLite, damaged, or not ours
        print(f"runner.compare: {args.history} cannot be read as a history database: {exc}", file=sys.stderr)
        return 2
    if new.sweep:
        print(f"Sweep: {new.sweep}\n")
    print(run_diff.describe(old.calls, new.calls, f"the earlier run {old.label}", f"run {new.label}"))
    print("\n" + scores_part(old, new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
