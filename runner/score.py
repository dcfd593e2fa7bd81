"""`python -m runner.score FOLDER [scorer=...] [fail_under=...]`: score a finished run's or sweep's answers
again, without asking for them again, and rewrite its comparison.

Each job's config is composed again from its saved overrides (`.hydra/overrides.yaml`) plus the scoring
overrides given here, checked as a run checks it (bad input: one line, exit 2, before any call), then its
answers are read back from its results.jsonl and scored: judge calls go through the engine (cached, priced,
recorded in results.jsonl as judging rows). Over a sweep, a pairwise scorer then judges its cells' answers two by
two (runner.calling.pairwise). Add a judge next week without paying for the answers twice:

    python -m runner.score outputs/sweeps/2026-11-24_10-00-00 scorer=judge 'scorer.judge.judges=[gpt]'
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

import yaml

from runner import yaml_files
from runner.errors import ConfigError, one_line
from runner.folders import job_folders
from runner.scorers import scorers_for
from runner.scorers.pair_rows import is_judging_folder
from runner.words import counted

CONF = Path(__file__).resolve().parent.parent / "conf"
# what re-scoring may change: how answers are scored, and how the judges' calls are made
SCORING_KEYS = ("scorer", "fail_under", "task.scorers", "judges", "judge", "cache", "cache_dir", "budget_usd",
                "stats")
GATE_FAILED = 3


def _key(override: str) -> str:
    from runner.variant import key_of

    return key_of(override)


def _scoring(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in SCORING_KEYS)


def _search_path(job: Path, config_dir: Path | None) -> list[str]:
    """Config folders the job was composed from besides conf/ (its --config-dir), and one given here."""
    paths = [f"file://{config_dir.absolute().as_posix()}"] if config_dir else []
    hydra_file = job / ".hydra" / "hydra.yaml"
    if hydra_file.exists():
        sources = ((yaml_files.parse(hydra_file.read_text(encoding="utf-8")) or {}).get("hydra", {})
                   .get("runtime", {}).get("config_sources", [])) or []
        for source in sources:
            if source.get("provider") == "command-line" and str(source.get("path", "")).startswith("file://"):
                paths.append(source["path"])
    return paths


@contextlib.contextmanager
def hydra_context(search: list[str]):
    """Hydra's config search path as the run had it: conf/, then the run's --config-dir (and one given
    here), for the job's config and for every model config a judge or an opponent names by name. Kept open
    while the job is scored."""
    from hydra import version
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra

    version.setbase("1.3")
    path = create_config_search_path(str(CONF))
    for extra in search:  # before the schema source, which Hydra needs last (as its own --config-dir does)
        path.prepend("command-line", extra, anchor=SearchPathQuery(provider="schema"))
    GlobalHydra.instance().clear()
    Hydra.create_main_hydra2(task_name="runner", config_search_path=path)
    try:
        yield
    finally:
        GlobalHydra.instance().clear()


def compose_job(job: Path, overrides: list[str]):
    """The job's RunSettings, composed from its saved overrides and these, checked before any call; and
    the job's own overrides (its cell's variant). Called inside `hydra_context`."""
    from hydra import compose

    from runner.calling.preflight import check_job

    saved = job / ".hydra" / "overrides.yaml"
    if not saved.exists():
        raise ConfigError(f"{job}: no .hydra/overrides.yaml, so its config cannot be composed again")
    own = [str(o) for o in (yaml_files.parse(saved.read_text(encoding="utf-8")) or [])]
    given = {_key(o) for o in overrides}
    kept = [o for o in own if _key(o) not in given]
    try:
        cfg = compose("config", overrides=kept + overrides, return_hydra_config=True)
        return check_job(cfg), own
    except ConfigError:
        raise
    except Exception as exc:  # Hydra's composition errors: an unknown scorer, a bad override
        import hydra.errors
        import omegaconf.errors

        if isinstance(exc, (hydra.errors.HydraException, omegaconf.errors.OmegaConfBaseException, yaml.YAMLError)):
            raise ConfigError(one_line(exc)) from None
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runner.score",
        description="Score a finished run's or sweep's answers again (no answer is asked for again), then "
                    "rewrite its comparison.",
        epilog="Exit codes: 0 every call ok; 1 some calls or scores failed or were skipped; 2 bad input, "
               "nothing called; 3 the quality gate (fail_under) failed, after every file is written.")
    parser.add_argument("folder", type=Path, help="a run folder or a sweep folder under outputs/")
    parser.add_argument("overrides", nargs="*",
                        help="scorer=NAME or scorer=[A,B], scorer.NAME.KEY=..., task.scorers..., judges=[...], "
                             "judge.temperature=..., judge.max_tokens=..., fail_under=X, cache=..., budget_usd=..., "
                             "stats.adjust=bh")
    parser.add_argument("--config-dir", type=Path, default=None, help="your own config folder, on top of conf/")
    parser.add_argument("--history", type=Path, default=None, help="the history database")
    args = parser.parse_args(argv)
    if not args.folder.is_dir() or not job_folders(args.folder):
        print(f"runner.score: {args.folder} is not a run or sweep folder (no results.jsonl in it or its jobs)",
              file=sys.stderr)
        return 2
    for override in args.overrides:
        if "=" not in override or not _scoring(_key(override)):
            print(f"runner.score: {override!r}: only scoring settings can be given here "
                  f"({', '.join(SCORING_KEYS)}); the answers stay as they were", file=sys.stderr)
            return 2
    from runner import variant
    from runner.redact import protect_logging

    protect_logging()
    root = args.folder.absolute()
    from runner.calling.job import rescore

    jobs = []
    try:  # every job is checked before the first judge is called
        for job in job_folders(root):
            if is_judging_folder(job, root):  # the pairwise judges' calls: no job of its own
                continue
            with hydra_context(_search_path(job, args.config_dir)):
                run, own = compose_job(job, list(args.overrides))
            jobs.append((job, run, variant.of(own)))
    except ConfigError as exc:
        print(f"runner.score: config error: {exc}", file=sys.stderr)
        return 2
    for job, run, cell_variant in jobs:
        with hydra_context(_search_path(job, args.config_dir)):
            tally = asyncio.run(rescore(run, job, run_id=root.name, job="" if job == root else job.name,
                                        root=root, variant=cell_variant))
        print(f"runner.score: {job.name}: {tally.calls} judging call(s), {tally.spent(6)}", file=sys.stderr)
    if jobs and jobs[0][0] != root:  # a sweep: its cells' answers compared two by two
        from runner.calling.pairwise import judge_sweep

        with hydra_context(_search_path(jobs[0][0], args.config_dir)):
            tally = asyncio.run(judge_sweep(root, [(job, run) for job, run, _ in jobs]))
        if tally is not None:
            print(f"runner.score: pairwise: {tally.calls} judging call(s), {tally.spent(6)}", file=sys.stderr)
    elif any(s.is_pairwise for _, run, _ in jobs for s in scorers_for(run)):
        print(f"runner.score: {root.name} is a single run, one cell: a pairwise scorer compares a sweep's cells, "
              f"so it judges nothing here", file=sys.stderr)
    from runner.analysis.build import build_comparison

    gate = jobs[0][1].fail_under if jobs else None
    comparison = build_comparison(root, history_path=args.history, fail_under=gate,
                                  stats=jobs[0][1].stats if jobs else None)
    print(f"runner.score: {counted(len(comparison.records), 'call')} from {counted(len(jobs), 'job')}: "
          f"{root / 'report.md'}",
          file=sys.stderr)
    return comparison.exit_code


if __name__ == "__main__":
    sys.exit(main())
