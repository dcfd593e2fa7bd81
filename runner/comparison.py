"""The comparison over all jobs of a run or sweep: results.csv, summary.csv, report.md and plots.

Built from the jobs' results.jsonl files, so it can be rebuilt at any time from a folder, e.g. after a
sweep stopped with Ctrl-C:

    python -m runner.comparison outputs/sweeps/2026-11-24_10-00-00

Each build also records the run in the history database (replacing its rows on a rebuild) and, when an
earlier run of the same sweep is there, adds what changed since then to the report.
"""
from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from runner import changes, history, plots, report
from runner.folders import JOB_ERROR_FILE, job_folders
from runner.records import CSV_COLUMNS, read_records
from runner.summary import frame, per_model, summarize

log = logging.getLogger(__name__)

IDENTITY = ["run_id", "job", "model", "task", "prompt", "temperature", "item", "repeat", "step"]
TREND_MIN_RUNS = 3  # a line needs a few points before it says anything
TREND_MAX_RUNS = 12


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


def load_records(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    records: list[dict] = []
    failed = []
    for job in job_folders(folder):
        if (job / JOB_ERROR_FILE).exists():
            failed.append(job.name)
        path = job / "results.jsonl"
        if path.exists():
            for record in read_records(path):
                record.pop("messages", None)  # what was sent stays in results.jsonl; no table shows it
                records.append(record)
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


def declared_sweep(folder: Path) -> str:
    """The part of a sweep declared in YAML (an experiment's hydra.sweeper.params) that the command line
    did not override: the command alone does not say what ran."""
    multirun = folder / "multirun.yaml"
    if not multirun.exists():
        return ""
    cfg = yaml.safe_load(multirun.read_text(encoding="utf-8")) or {}
    params = (cfg.get("hydra", {}).get("sweeper", {}) or {}).get("params") or {}
    overridden = {o.split("=", 1)[0].lstrip("+~") for o in cfg["hydra"].get("overrides", {}).get("task", []) or []}
    return " ".join(f"{key}={value}" for key, value in params.items() if key not in overridden)


def sweep_of(folder: Path, records: pd.DataFrame) -> history.Sweep:
    """The cells the run's jobs were configured with (so a crashed job still counts), else those recorded."""
    cells = set()
    for job in job_folders(folder):
        hydra_file, config_file = job / ".hydra" / "hydra.yaml", job / ".hydra" / "config.yaml"
        if not (hydra_file.exists() and config_file.exists()):
            continue
        choices = (yaml.safe_load(hydra_file.read_text(encoding="utf-8")) or {}).get("hydra", {}) \
            .get("runtime", {}).get("choices", {})
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        try:
            cells.add((str(choices["model"]), str(choices["task"]), str(choices["prompt"]),
                       float(config["temperature"])))
        except (KeyError, TypeError, ValueError):
            continue
    if not cells and not records.empty:
        cells = {(m, t, p, float(temp)) for m, t, p, temp in
                 records[["model", "task", "prompt", "temperature"]].drop_duplicates().itertuples(index=False)}
    return history.Sweep(tuple(sorted(cells)))


INTEGER_COLUMNS = ["repeat", "input_tokens", "output_tokens", "cached_tokens", "retries", "max_tokens"]


def csv_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The records as the jobs' results.csv writes them: true/false, whole numbers without '.0'."""
    rows = df[CSV_COLUMNS].copy()
    rows["cache_hit"] = rows.cache_hit.map({True: "true", False: "false"})
    for column in INTEGER_COLUMNS:
        rows[column] = pd.to_numeric(rows[column], errors="coerce").round().astype("Int64")
    return rows


def price_warnings(summary: pd.DataFrame) -> list[str]:
    warnings = []
    if summary.empty:
        return warnings
    for _, row in summary[~summary.price_known.astype(bool)].drop_duplicates("model").iterrows():
        warnings.append(f"no known price for {row.model} ({row.provider}/{row.model_id}): its cost is left "
                        f"empty; set model.price in its config to count it")
    return warnings


def build(folder: Path, extra_sections: list[tuple[str, str]] | None = None,
          history_path: Path | None = None) -> Comparison:
    """Write results.csv, summary.csv, report.md and PNG plots at the folder's root; record the run.

    history_path: the history database; by default the one the run's config names (`history`).
    """
    folder = Path(folder)
    df, failed = load_records(folder)
    summary = summarize(df)
    csv_rows(df).to_csv(folder / "results.csv", index=False)
    summary.to_csv(folder / "summary.csv", index=False)
    drawn = plots.draw(summary, folder)
    command = command_line(folder)
    config_text = first_config(folder)
    sections = list(extra_sections or [])
    warnings = price_warnings(summary)
    about = [f"run `{folder.name}`, {len(job_folders(folder))} job(s)"]
    if declared_sweep(folder):
        about.append(f"sweep declared in the config: `{declared_sweep(folder)}`")
    config = (yaml.safe_load(config_text) or {}) if config_text else {}
    if not df.empty and not config.get("dry_run"):  # a dry run's estimates are not a run to compare with
        path = history_path or history.path_for(config.get("history"))
        try:
            about.append(f"history: `{path}`")
            drawn += _history(path, folder, df, sweep_of(folder, df), command, sections)
        except Exception as exc:  # noqa: BLE001 - the run's own report matters more than its history
            log.warning("history %s not updated: %s", path, exc, exc_info=not isinstance(exc, (sqlite3.Error, OSError)))
            warnings.append(f"the history database {path} was not updated: {exc}")
    report.write(folder, df, summary, drawn, command, config_text, failed, warnings, sections, about)
    return Comparison(folder, df, summary, failed)


def _history(path: Path, folder: Path, df: pd.DataFrame, sweep: history.Sweep, command: str,
             sections: list[tuple[str, str]]) -> list[Path]:
    """Record the run; add "Since the previous run" to the sections; draw the trend. Returns new plots."""
    run = history.record(path, folder, df, sweep, command)
    previous = history.previous(path, run)
    if previous is not None:
        sections.append(("Since the previous run", changes.describe(
            history.calls(path, previous), df, f"the previous run {previous.label}", f"this run {run.label}")))
    same = [r for r in history.runs(path, run.fingerprint) if (r.started_at, r.id) <= (run.started_at, run.id)]
    if len(same) < TREND_MIN_RUNS:
        return []
    per_run = []
    for order, r in enumerate(same[-TREND_MAX_RUNS:]):
        rows = per_model(df if r.id == run.id else history.calls(path, r))
        rows.insert(0, "run", r.started_at[5:19].replace("T", " "))
        rows.insert(0, "order", order)
        per_run.append(rows)
    return [plots.trend(pd.concat(per_run, ignore_index=True), folder / "trend.png")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runner.comparison",
        description="Rebuild results.csv, summary.csv, report.md and plots from a run or sweep folder.")
    parser.add_argument("folder", type=Path, help="a run folder or a sweep folder under outputs/")
    parser.add_argument("--history", type=Path, default=None,
                        help="the history database (default: the run's `history` config, else outputs/history.sqlite)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"runner.comparison: {args.folder} is not a folder", file=sys.stderr)
        return 2
    if not job_folders(args.folder):
        print(f"runner.comparison: {args.folder} holds no results.jsonl (neither in it nor in its job folders)",
              file=sys.stderr)
        return 2
    comparison = build(args.folder, history_path=args.history)
    print(f"{len(comparison.records)} calls from {len(job_folders(args.folder))} job(s): "
          f"{args.folder / 'report.md'}")
    return comparison.exit_code


if __name__ == "__main__":
    sys.exit(main())
