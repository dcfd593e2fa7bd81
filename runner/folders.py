"""What a run's folder holds: one job (a single run) or numbered job folders (a sweep).

Kept apart from `runner.comparison` so that code which only finds the jobs (a dry run's end, a crashed
job's note) does not import pandas.
"""
from __future__ import annotations

from pathlib import Path

JOB_ERROR_FILE = "job_error.txt"  # a job that crashed leaves its traceback here instead of results


def job_folders(folder: Path) -> list[Path]:
    """The folder itself for a single run; its numbered job folders for a sweep."""
    if (folder / "results.jsonl").exists() and not any(folder.glob("*/results.jsonl")):
        return [folder]
    jobs = [p.parent for p in folder.glob("*/results.jsonl")]
    jobs += [p.parent for p in folder.glob(f"*/{JOB_ERROR_FILE}") if p.parent not in jobs]
    return sorted(set(jobs), key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
