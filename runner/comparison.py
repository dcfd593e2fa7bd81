"""The comparison over all jobs of a run or sweep: results.csv, summary.csv, report.md, report.html and plots.

Built from the jobs' results.jsonl files, so it can be rebuilt at any time from a folder, e.g. after a
sweep stopped with Ctrl-C:

    python -m runner.comparison outputs/sweeps/2026-11-24_10-00-00

Each build also records the run in the history database (replacing its rows on a rebuild) and, when an
earlier run of the same sweep is there, adds what changed since then to the report.
"""
from __future__ import annotations

import argparse
import csv
import logging
import sqlite3
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from runner import changes, history, plots, report, variant
from runner.analysis import report_html, votes
from runner.folders import JOB_ERROR_FILE, job_folders
from runner.records import csv_value, read_records, write_csv
from runner.summary import frame, per_model, summarize

log = logging.getLogger(__name__)

IDENTITY = ["run_id", "job", "model", "task", "prompt", "temperature", "variant", "item", "repeat", "step"]
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


@dataclass
class Calls:
    """What a folder's results.jsonl files hold: one record per call, and what could not be used."""

    records: list[dict] = field(default_factory=list)  # the last record of each call
    failed_jobs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # lines that are not a whole record: file and line


def _identity(record: dict) -> tuple:
    return tuple("" if record.get(k) is None else record.get(k) for k in IDENTITY)


def read_calls(folder: Path) -> Calls:
    calls = Calls()
    by_call: dict[tuple, dict] = {}
    for job in job_folders(folder):
        if (job / JOB_ERROR_FILE).exists():
            calls.failed_jobs.append(job.name)
        path = job / "results.jsonl"
        if path.exists():
            for record in read_records(path, calls.skipped):
                messages = record.pop("messages", None)  # what was sent stays in results.jsonl
                if str(record.get("step") or "").startswith("turn") and isinstance(messages, list):
                    record["asked"] = _last_user_line(messages)  # a conversation's bubbles show the user's line
                # a job resumed in place writes a finished call again: the last record of each call counts
                key = _identity(record)
                by_call.pop(key, None)
                by_call[key] = record
    calls.records = list(by_call.values())
    return calls


def _last_user_line(messages: list) -> str | None:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content", ""))
    return None


def load_records(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    calls = read_calls(folder)
    return frame(calls.records), calls.failed_jobs


def command_line(folder: Path) -> str:
    """The command that produced this folder, from Hydra's saved overrides (or as runner.chat wrote it)."""
    written = folder / "command.txt"
    if written.is_file():
        return written.read_text(encoding="utf-8").strip()
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
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text(encoding="utf-8")) if overrides_file.exists() else []
        try:
            cells.add((str(choices["model"]), str(choices["task"]), str(choices["prompt"]),
                       float(config["temperature"]), variant.of(overrides or [])))
        except (KeyError, TypeError, ValueError):
            continue
    if not cells and not records.empty:
        cells = {(m, t, p, float(temp), v) for m, t, p, temp, v in
                 records[["model", "task", "prompt", "temperature", "variant"]].drop_duplicates()
                 .itertuples(index=False)}
    return history.Sweep(tuple(sorted(cells)))


def calls_in_csv(path: Path, at_most: int) -> int:
    """How many calls an existing results.csv holds (0 when there is none), or a number no larger than
    `at_most` when it cannot hold more: its lines are counted first, so most files need not be parsed."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    if data.count(b"\n") - 1 <= at_most:
        return min(at_most, max(0, data.count(b"\n") - 1))
    try:
        rows = csv.DictReader(data.decode("utf-8", errors="replace").splitlines(keepends=True))
        return len({tuple(row.get(k) or "" for k in IDENTITY) for row in rows})
    except csv.Error:
        return 0


def write_results(folder: Path, calls: Calls) -> list[str]:
    """Write the root results.csv from the records; never replace one that holds more calls without
    keeping it and saying so. Returns what to warn about."""
    path = folder / "results.csv"
    before = calls_in_csv(path, len(calls.records))
    warnings = []
    if before > len(calls.records):
        kept = _free_name(folder / "results.csv.bak")
        path.replace(kept)
        lost = f"{before - len(calls.records)} call(s)"
        warnings.append(f"results.csv held {before} calls; rebuilt from results.jsonl it holds "
                        f"{len(calls.records)}: {lost} could not be read back"
                        f"{' (see the skipped lines)' if calls.skipped else ''}. The earlier file is kept as "
                        f"{kept.name}")
    write_csv(path, calls.records)
    return warnings


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}{n}")
    return candidate


def plain_numbers(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers as results.csv writes them (plain decimals, dollars to the last digit), not 1.11e-05."""
    table = table.copy()
    for column in table.columns[table.dtypes.map(pd.api.types.is_float_dtype)]:
        exact = column.endswith("_usd")
        table[column] = [csv_value(v, exact=exact) if pd.notna(v) else "" for v in table[column]]
    return table


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
    calls = read_calls(folder)
    df, failed = frame(calls.records), calls.failed_jobs
    damage = [f"skipped {line}" for line in calls.skipped] + write_results(folder, calls)
    for line in damage:  # one line per problem, as it is found; the report keeps them too
        print(f"runner.comparison: {line}", file=sys.stderr)
    summary = summarize(df)
    plain_numbers(summary).to_csv(folder / "summary.csv", index=False)
    drawn = plots.draw(summary, folder)
    command = command_line(folder)
    config_text = first_config(folder)
    sections = list(extra_sections or []) + votes.section(votes.read(folder))
    warnings = damage + price_warnings(summary)
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
    report_html.write(folder, df, summary, drawn, command, config_text, failed, warnings, sections, about)
    return Comparison(folder, df, summary, failed)


def _history(path: Path, folder: Path, df: pd.DataFrame, sweep: history.Sweep, command: str,
             sections: list[tuple[str, str]]) -> list[Path]:
    """Record the run; add "Since the previous run" to the sections; draw the trend. Returns new plots."""
    run = history.record(path, folder, df, sweep, command)
    history.record_votes(path, run, votes.read(folder))
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
    per_run = pd.concat(per_run, ignore_index=True)
    labels = variant.Labels(per_run.variant.unique())
    per_run["label"] = [labels(m, v) for m, v in zip(per_run.model, per_run.variant)]
    return [plots.trend(per_run, folder / "trend.png")]


def unwritable(folder: Path) -> str | None:
    """Why files cannot be written in the folder (read-only, no permission), or None. Tried, not guessed:
    permission bits do not tell on every system."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


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
    problem = unwritable(args.folder)
    if problem:
        print(f"runner.comparison: cannot write the comparison into {args.folder}: {problem}", file=sys.stderr)
        return 2
    try:
        comparison = build(args.folder, history_path=args.history)
    except OSError as exc:  # e.g. a file in it that cannot be replaced: one line, not a traceback
        print(f"runner.comparison: cannot write the comparison into {args.folder}: {exc}", file=sys.stderr)
        return 2
    print(f"{len(comparison.records)} calls from {len(job_folders(args.folder))} job(s): "
          f"{args.folder / 'report.md'}")
    return comparison.exit_code


if __name__ == "__main__":
    sys.exit(main())
