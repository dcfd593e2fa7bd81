"""The comparison over all jobs of a run or sweep: results.csv, summary.csv, report.md and plots.

Built from the jobs' results.jsonl files, so it can be rebuilt at any time from a folder, e.g. after a
sweep stopped with Ctrl-C:

    python -m runner.comparison outputs/sweeps/2026-11-24_10-00-00
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from runner import plots, report
from runner.records import CSV_COLUMNS, read_records
from runner.summary import frame, summarize

log = logging.getLogger(__name__)

JOB_ERROR_FILE = "job_error.txt"
IDENTITY = ["run_id", "job", "model", "task", "prompt", "temperature", "item", "repeat", "step"]


@dataclass
class Comparison:
    folder: Path
    records: pd.DataFrame
    summary: pd.DataFrame
    failed_jobs: list[str]

    @property
    def exit_code(self) -> int:
        """0: every call ok (or answered from cache); 1: some failed or were skipped, or a job crashed."""
        if self.failed_jobs or self.records.empty:
            return 1
        return 0 if (self.records.status == "ok").all() else 1


def job_folders(folder: Path) -> list[Path]:
    """The folder itself for a single run; its numbered job folders for a sweep."""
    if (folder / "results.jsonl").exists() and not any(folder.glob("*/results.jsonl")):
        return [folder]
    jobs = [p.parent for p in folder.glob("*/results.jsonl")]
    jobs += [p.parent for p in folder.glob(f"*/{JOB_ERROR_FILE}") if p.parent not in jobs]
    return sorted(set(jobs), key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def load_records(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    records: list[dict] = []
    failed = []
    for job in job_folders(folder):
        if (job / JOB_ERROR_FILE).exists():
            failed.append(job.name)
        path = job / "results.jsonl"
        if path.exists():
            records.extend(read_records(path))
    df = frame(records)
    if not df.empty:
        # a job resumed in place writes a finished call again: keep the last record of each call
        df = df.drop_duplicates(subset=IDENTITY, keep="last").reset_index(drop=True)
    return df, failed


def command_line(folder: Path) -> str:
    """The command that produced this folder, from Hydra's saved overrides."""
    multirun = folder / "multirun.yaml"
    if multirun.exists():
        cfg = yaml.safe_load(multirun.read_text(encoding="utf-8")) or {}
        overrides = cfg.get("hydra", {}).get("overrides", {}).get("task", []) or []
        return " ".join(["python -m runner -m", *map(_quote, overrides)])
    saved = folder / ".hydra" / "overrides.yaml"
    if saved.exists():
        overrides = yaml.safe_load(saved.read_text(encoding="utf-8")) or []
        return " ".join(["python -m runner", *map(_quote, overrides)])
    return "python -m runner"


def _quote(override: str) -> str:
    return f"'{override}'" if any(c in override for c in " []{}()*?$!;&|<>\"") else override


def first_config(folder: Path) -> str:
    for job in job_folders(folder):
        path = job / ".hydra" / "config.yaml"
        if path.exists():
            return path.read_text(encoding="utf-8")
    return ""


def price_warnings(summary: pd.DataFrame) -> list[str]:
    warnings = []
    if summary.empty:
        return warnings
    for _, row in summary[~summary.price_known.astype(bool)].drop_duplicates("model").iterrows():
        warnings.append(f"no known price for {row.model} ({row.provider}/{row.model_id}): its cost is left "
                        f"empty; set model.price in its config to count it")
    return warnings


def build(folder: Path, extra_sections: list[tuple[str, str]] | None = None) -> Comparison:
    """Write results.csv, summary.csv, report.md and PNG plots at the folder's root."""
    folder = Path(folder)
    df, failed = load_records(folder)
    summary = summarize(df)
    df[CSV_COLUMNS].to_csv(folder / "results.csv", index=False)
    summary.to_csv(folder / "summary.csv", index=False)
    drawn = plots.draw(summary, folder)
    report.write(folder, df, summary, drawn, command_line(folder), first_config(folder), failed,
                 price_warnings(summary), extra_sections or [])
    return Comparison(folder, df, summary, failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runner.comparison",
        description="Rebuild results.csv, summary.csv, report.md and plots from a run or sweep folder.")
    parser.add_argument("folder", type=Path, help="a run folder or a sweep folder under outputs/")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"runner.comparison: {args.folder} is not a folder", file=sys.stderr)
        return 2
    if not job_folders(args.folder):
        print(f"runner.comparison: {args.folder} holds no results.jsonl (neither in it nor in its job folders)",
              file=sys.stderr)
        return 2
    comparison = build(args.folder)
    print(f"{len(comparison.records)} calls from {len(job_folders(args.folder))} job(s): "
          f"{args.folder / 'report.md'}")
    return comparison.exit_code


if __name__ == "__main__":
    sys.exit(main())
