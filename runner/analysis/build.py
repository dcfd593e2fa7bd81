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

from runner import variant, yaml_files
from runner.analysis import history, pairwise, pareto, plots, report, report_html, run_diff, scores, tool_use, votes
from runner.analysis.run_folder import IDENTITY, Calls, command_line, declared_sweep, first_config, read_calls, sweep_of
from runner.analysis.summary import CELL_KEYS, PER_MODEL_COLUMNS, frame, per_model, summarize
from runner.errors import ConfigError
from runner.folders import job_folders
from runner.records import csv_value, write_csv
from runner.scorers import JUDGE_PREFIX
from runner.scorers.pair_rows import is_judging_folder
from runner.settings import StatsSettings, stats_settings
from runner.words import counted

log = logging.getLogger(__name__)

TREND_MIN_RUNS = 3  # a line needs a few points before it says anything
TREND_MAX_RUNS = 12


@dataclass
class Comparison:
    folder: Path
    records: pd.DataFrame
    summary: pd.DataFrame
    failed_jobs: list[str]
    gate_failures: list[str] = field(default_factory=list)  # cells below fail_under, one line each
    score_errors: int = 0  # score rows in error (a check that raised, a verdict that is not JSON)

    @property
    def answers(self) -> pd.DataFrame:
        """The calls that answered the task (not the judges')."""
        if self.records.empty:
            return self.records
        return self.records[~self.records.step.str.startswith(JUDGE_PREFIX)]

    @property
    def exit_code(self) -> int:
        """0: every answer ok (or from cache); 1: some answer failed or was skipped, a judging call or a score
        failed, or a job crashed; 3: the quality gate failed, whatever else (the files are written first).
        A judge skipped for want of its key leaves its scores n/a without failing the run: the default run
        needs no key."""
        if self.gate_failures:
            return GATE_FAILED
        answers = self.answers
        if self.failed_jobs or answers.empty or self.score_errors:
            return 1
        judging = self.records[self.records.step.str.startswith(JUDGE_PREFIX)]
        return 0 if (answers.status == "ok").all() and not (judging.status == "error").any() else 1


GATE_FAILED = 3  # the contract's exit code for a failed fail_under, distinct from 0, 1 and 2


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
    before = calls_in_csv(path, len(calls))
    warnings = []
    if before > len(calls):
        kept = _free_name(folder / "results.csv.bak")
        path.replace(kept)
        lost = f"{before - len(calls)} call(s)"
        warnings.append(f"results.csv held {counted(before, 'call')}; rebuilt from results.jsonl it holds "
                        f"{len(calls)}: {lost} could not be read back"
                        f"{' (see the skipped lines)' if calls.skipped else ''}. The earlier file is kept as "
                        f"{kept.name}")
    write_csv(path, calls.records())
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


def build_comparison(folder: Path, extra_sections: list[tuple[str, str]] | None = None,
          history_path: Path | None = None, fail_under=None, stats: StatsSettings | None = None) -> Comparison:
    """Write results.csv, summary.csv, report.md and PNG plots at the folder's root; record the run.

    history_path: the history database; by default the one the run's config names (`history`).
    fail_under: the quality gate; by default the one the run's config names.
    stats: how differences are tested (`stats.*`); by default as the run's config says.
    """
    folder = Path(folder)
    calls = read_calls(folder)
    failed = calls.failed_jobs
    scored = scores.read(folder, calls.skipped)  # a damaged scores.jsonl line is said like a results one
    pairs = pairwise.read(folder, calls.skipped)  # a sweep's pairwise verdicts (pairwise.jsonl), if judged
    damage = [f"skipped {line}" for line in calls.skipped] + write_results(folder, calls)
    every = frame(calls.table())
    del calls  # the table holds the calls from here on
    judged = every.step.str.startswith(JUDGE_PREFIX)  # judging calls: apart from the answers everywhere
    df, judging = every[~judged], every[judged]
    for line in damage:  # one line per problem, as it is found; the report keeps them too
        print(f"runner.comparison: {line}", file=sys.stderr)
    command = command_line(folder)
    config_text = first_config(folder)
    config = (yaml_files.parse(config_text) or {}) if config_text else {}
    stats = stats or _stats_of(config)
    score_cells = scores.per_cell(scored)
    tested = scores.tested(scored, score_cells, stats)
    summary = scores.add_to_summary(summarize(df), score_cells, tested)
    plain_numbers(summary).to_csv(folder / "summary.csv", index=False)
    drawn = plots.draw(summary, folder)
    quality = plots.quality_vs_cost(summary, folder / "quality_vs_cost.png") if not summary.empty else None
    drawn = ([quality] if quality else []) + drawn
    sections = list(extra_sections or []) + votes.section(votes.read(folder)) + report.batch_section(df)
    warnings = damage + price_warnings(summary)
    jobs = [job for job in job_folders(folder) if not is_judging_folder(job, folder)]
    about = [f"run `{folder.name}`, {len(jobs)} job(s)"]
    batched = len(report.batch_calls(df))
    if batched:
        about.append(f"batch run: {batched} of its calls went through the providers' batch APIs (see *Batch runs*)")
    if declared_sweep(folder):
        about.append(f"sweep declared in the config: `{declared_sweep(folder)}`")
    names = scores.cell_names([tuple(k) for k in summary[CELL_KEYS].itertuples(index=False, name=None)]) \
        if not summary.empty else {}
    about += [pareto.cheapest_line(found, lambda r: names[tuple(r[k] for k in CELL_KEYS)])
              for found in pareto.cheapest_tied(summary)]
    gate = fail_under if fail_under is not None else config.get("fail_under")
    failures = scores.gate(score_cells, gate)
    sections += tool_use.section(df, score_cells, folder)
    sections += scores.sections(scored, score_cells, summary, judging, df, failures, gate, tested)
    sections += pairwise.sections(pairs, votes.read(folder))
    if not df.empty and not config.get("dry_run"):  # a dry run's estimates are not a run to compare with
        path = history_path or history.path_for(config.get("history"))
        try:
            about.append(f"history: `{path}`")
            drawn += _history(path, folder, df, sweep_of(folder, df), command, sections, scored)
        except Exception as exc:  # noqa: BLE001 - the run's own report matters more than its history
            log.warning("history %s not updated: %s", path, exc, exc_info=not isinstance(exc, (sqlite3.Error, OSError)))
            warnings.append(f"the history database {path} was not updated: {exc}")
    report.write(folder, df, summary, drawn, command, config_text, failed, warnings, sections, about,
                 answer_notes=scores.answer_notes(scored) if not scored.empty else None)
    report_html.write(folder, df, summary, drawn, command, config_text, failed, warnings, sections, about)
    for line in failures:  # after every file is written: the gate's verdict, then its exit code
        print(f"runner: quality gate failed: {line}", file=sys.stderr)
    errors = int((scored.status == "error").sum()) if not scored.empty else 0
    if errors:
        print(f"runner: {errors} score row(s) in error (see scores.csv and the report)", file=sys.stderr)
    pair_errors = pairwise.errors(pairs)
    if pair_errors:
        print(f"runner: {pair_errors} pairwise verdict(s) in error (see pairwise.csv)", file=sys.stderr)
    errors += pair_errors
    return Comparison(folder, every, summary, failed, failures, errors)


def _stats_of(config: dict) -> StatsSettings:
    """The run's `stats` settings; the defaults for a run made before they existed (or with one unreadable:
    the job checked it before any call, so that is a folder edited by hand)."""
    try:
        return stats_settings(config.get("stats"))
    except ConfigError as exc:
        print(f"runner.comparison: {exc}; the defaults are used", file=sys.stderr)
        return StatsSettings()


def _history(path: Path, folder: Path, df: pd.DataFrame, sweep: history.Sweep, command: str,
             sections: list[tuple[str, str]], scored: pd.DataFrame) -> list[Path]:
    """Record the run and its scores; add "Since the previous run" to the sections; draw the trend. Returns
    new plots."""
    run = history.record(path, folder, df, sweep, command, scored)
    history.record_votes(path, run, votes.read(folder))
    previous = history.previous(path, run)
    if previous is not None:
        sections.append(("Since the previous run", run_diff.describe(
            history.calls(path, previous), df, f"the previous run {previous.label}", f"this run {run.label}")))
        changed = scores.since(scores.recorded(path, previous), scored, f"the previous run {previous.label}")
        if changed:
            sections.append(("Scores since the previous run", changed))
    same = [r for r in history.runs(path, run.fingerprint) if (r.started_at, r.id) <= (run.started_at, run.id)]
    if len(same) < TREND_MIN_RUNS:
        return []
    recent = same[-TREND_MAX_RUNS:]
    scored_trend = scores.trend([(r.started_at[5:16].replace("T", " "),
                                  scored if r.id == run.id else scores.recorded(path, r)) for r in recent])
    if scored_trend:
        sections.append(("Score trend", scored_trend))
    per_run = []
    for order, r in enumerate(recent):
        rows = per_model(df if r.id == run.id else history.calls(path, r, PER_MODEL_COLUMNS))
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
        comparison = build_comparison(args.folder, history_path=args.history)
    except OSError as exc:  # e.g. a file in it that cannot be replaced: one line, not a traceback
        print(f"runner.comparison: cannot write the comparison into {args.folder}: {exc}", file=sys.stderr)
        return 2
    print(f"{counted(len(comparison.records), 'call')} from {counted(len(job_folders(args.folder)), 'job')}: "
          f"{args.folder / 'report.md'}")
    return comparison.exit_code


if __name__ == "__main__":
    sys.exit(main())
