"""Mutation testing on demand (not in CI): plants small faults in the modules that carry promises, one at a
time, and runs the tests that should catch each; a fault no test catches is a promise nothing guards.

    python benchmarks/mutation.py                 # every module below (tens of minutes on 2 cores)
    python benchmarks/mutation.py costs retry     # some of them
    python benchmarks/mutation.py --list          # the modules, their files and their tests
    python benchmarks/mutation.py --report costs  # the last run's numbers and survivors, without running again

The tool is cosmic-ray (`pip install -e ".[mutation]"`). It edits a module's file in place and runs a
command per mutant, so the tests' `python -m runner` subprocesses see the fault too (an in-process
trampoline such as mutmut 3's would not). It works on a copy of the tracked files in a temporary folder, so
the working tree is never touched, even when a run is stopped. Sessions (sqlite) are kept under
outputs/mutation/ for --report. Equivalent survivors, judged by hand, are listed in docs/mutation.md.
"""
from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SESSIONS = REPO / "outputs" / "mutation"


@dataclass(frozen=True)
class Target:
    files: tuple[str, ...]
    tests: tuple[str, ...]  # the narrow selection that should catch this module's faults
    functions: tuple[str, ...] = ()  # only these functions/classes of the files, when the files do more


# a judge that is llama.cpp: minutes per mutant, and nothing in these modules that the OpenAI fake's judge misses
NO_EMBEDDED_JUDGE = "--deselect=tests/test_scores.py::test_the_embedded_model_judges_end_to_end"

TARGETS: dict[str, Target] = {
    "costs": Target(("runner/calling/costs.py", "runner/money.py"),
                    ("tests/test_money.py", "tests/test_costs.py", "tests/test_budget.py",
                     "tests/test_cells.py::test_what_a_model_without_a_price_spent_is_unknown_unless_the_cache_answered",
                     "tests/test_adding_a_provider.py::"
                     "test_the_readme_provider_answers_through_the_sdk_and_is_priced_as_it_says")),
    "retry": Target(("runner/calling/retry.py",),
                    ("tests/test_retry.py", "tests/test_call_outcomes.py::test_a_servers_retry_after_is_waited_for")),
    "cache": Target(("runner/calling/cache.py",),
                    ("tests/test_cache.py",
                     "tests/test_engine_behaviour.py::test_the_cache_reuses_only_identical_successful_calls",
                     "tests/test_engine_behaviour.py::test_the_cache_keeps_answers_of_another_endpoint_apart",
                     "tests/test_call_outcomes.py::test_a_cached_answer_keeps_where_its_token_counts_came_from")),
    "budget": Target(("runner/calling/budget.py",),
                     ("tests/test_budget.py",
                      "tests/test_engine_behaviour.py::test_the_budget_stops_calls_before_it_is_passed",
                      "tests/test_engine.py::test_a_budget_needs_a_known_price")),
    "records": Target(("runner/records.py",),
                      ("tests/test_records.py", "tests/test_cells.py::test_a_tiny_time_is_written_as_a_plain_decimal")),
    "engine": Target(("runner/calling/engine.py",),
                     ("tests/test_tally.py", "tests/test_budget.py", "tests/test_engine_behaviour.py",
                      "tests/test_limits.py",
                      "tests/test_call_outcomes.py",
                      # asserts that calls overlapped, which a loaded machine does not always give
                      "--deselect=tests/test_engine_behaviour.py::test_the_budget_stops_calls_before_it_is_passed")),
    "web": Target(("runner/tasks/web.py", "runner/tasks/addresses.py"),
                  ("tests/test_addresses.py", "tests/test_web.py")),
    "history": Target(("runner/analysis/history.py",),
                      ("tests/test_history_db.py", "tests/test_history_migrations.py")),
    "changes": Target(("runner/analysis/run_diff.py",),
                      ("tests/test_run_diff.py",)),
    "comparison": Target(("runner/analysis/summary.py", "runner/analysis/report.py"),
                         ("tests/test_summary.py", "tests/test_report_tables.py", "tests/test_run_diff.py",
                          "tests/test_cells.py::"
                          "test_what_a_model_without_a_price_spent_is_unknown_unless_the_cache_answered")),
    # the embedded model's counting (runner/providers/local_worker.py) needs llama.cpp per mutant: left out
    "usage": Target(("runner/providers/openai.py", "runner/providers/anthropic.py", "runner/providers/gemini.py",
                     "runner/providers/ollama.py"),
                    ("tests/test_openai_provider.py", "tests/test_anthropic_provider.py",
                     "tests/test_gemini_provider.py", "tests/test_ollama_provider.py"),
                    functions=("_usage", "usage_from", "Chunks", "_stream", "_once", "answer")),
    # the modules that came with scores, batch runs, page addresses and the sanitizer
    "scores": Target(("runner/analysis/scores.py", "runner/analysis/statistics.py"),
                     ("tests/test_scores.py", "tests/test_pairwise.py", NO_EMBEDDED_JUDGE)),
    "scorers": Target(("runner/scorers/checks.py", "runner/scorers/judge.py", "runner/scorers/__init__.py"),
                      ("tests/test_scores.py", NO_EMBEDDED_JUDGE)),
    "scoring": Target(("runner/calling/scoring.py",), ("tests/test_scores.py", NO_EMBEDDED_JUDGE)),
    "pairwise": Target(("runner/analysis/pairwise.py", "runner/calling/pairwise.py", "runner/scorers/pairwise.py",
                        "runner/scorers/pair_rows.py"),
                       ("tests/test_pairwise.py",)),
    "batch": Target(("runner/calling/batch.py", "runner/calling/batch_files.py"),
                    ("tests/test_batch_openai.py", "tests/test_batch_anthropic.py", "tests/test_batch_gemini.py")),
    "addresses": Target(("runner/tasks/addresses.py",), ("tests/test_addresses.py", "tests/test_web.py")),
    "markup": Target(("runner/analysis/markup.py",), ("tests/test_report_html.py",)),
    "votes": Target(("runner/analysis/votes.py",), ("tests/test_human_votes.py", "tests/test_history_db.py")),
}

# Operators whose mutants are realistic slips (an off-by-one, a flipped test, a dropped `not`, a wrong sum).
# Left out: swaps no one would write (`+` for `<<`, `==` for `<`), VariableInserter/Replacer (random
# names), RemoveDecorator (a missing @dataclass or @property breaks every caller at once).
EXCLUDED = [
    r"core/ReplaceBinaryOperator_(?!(Add_Sub|Sub_Add|Mul_Div|Div_Mul|Div_FloorDiv|FloorDiv_Div|Pow_Mul)$)",
    r"core/ReplaceComparisonOperator_(?!(Eq_NotEq|NotEq_Eq|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Is_IsNot|IsNot_Is|"
    r"In_NotIn|NotIn_In)$)",
    r"core/ReplaceUnaryOperator_(?!(Delete_Not|USub_UAdd)$)",
    r"core/VariableInserter", r"core/VariableReplacer", r"core/RemoveDecorator",
]


def copy_tree(into: Path) -> None:
    """The tracked (and new, not ignored) files: what a commit would test, without outputs or caches."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def test_command(target: Target) -> list[str]:
    tests = [t for t in target.tests if t.startswith("-") or (REPO / t.split("::")[0]).exists()]
    return [sys.executable, "-m", "pytest", "-x", "-q", *tests]


def config_text(target: Target, timeout_s: float) -> str:
    files = ", ".join(f'"{f}"' for f in target.files)
    return (f'[cosmic-ray]\nmodule-path = [{files}]\ntimeout = {timeout_s:.0f}\nexcluded-modules = []\n'
            f'test-command = "{" ".join(test_command(target))}"\n\n[cosmic-ray.distributor]\nname = "local"\n')


def spans(path: Path, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """Line ranges of the named functions and classes (at any depth) in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.end_lineno) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names]


def skip_outside(db_path: Path, tree: Path, target: Target, sample: int | None = None) -> None:
    """Operators we leave out, and with `functions`, every mutant outside them: marked skipped, never run.
    With `sample`, only that many of the rest, drawn at random (seeded: the same draw for the same code)."""
    import random
    import re

    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    excluded = re.compile("|".join(f"(?:{e})" for e in EXCLUDED))
    kept = {f: spans(tree / f, target.functions) for f in target.files} if target.functions else None
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            for m in item.mutations:
                line = m.start_pos[0]
                outside = kept is not None and not any(a <= line <= b for a, b in kept[str(m.module_path)])
                if excluded.match(m.operator_name) or outside:
                    db.set_result(item.job_id, WorkResult(output="left out", worker_outcome=WorkerOutcome.SKIPPED))
                    break
        pending = sorted(item.job_id for item in db.pending_work_items)
        if sample is not None and len(pending) > sample:
            drawn = set(random.Random(0).sample(pending, sample))
            for job_id in pending:
                if job_id not in drawn:
                    db.set_result(job_id, WorkResult(output="not sampled", worker_outcome=WorkerOutcome.SKIPPED))


def run(name: str, target: Target, sample: int | None = None) -> None:
    SESSIONS.mkdir(parents=True, exist_ok=True)
    session = SESSIONS / f"{name}.sqlite"
    session.unlink(missing_ok=True)
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix=f"mutation-{name}-") as folder:
        tree = Path(folder)
        copy_tree(tree)
        # pytest's cache holds tiktoken's encodings (tests/tiktoken_files.py): fetched once, not per mutant
        if (REPO / ".pytest_cache").is_dir():
            shutil.copytree(REPO / ".pytest_cache", tree / ".pytest_cache")
        config = tree / "cosmic-ray.toml"
        config.write_text(config_text(target, 600), encoding="utf-8")
        subprocess.run([bin_dir / "cosmic-ray", "init", config, session], cwd=tree, check=True)
        skip_outside(session, tree, target, sample)
        started = time.monotonic()
        # the unmutated code must pass the selection, or every mutant would count as killed
        baseline = subprocess.run(test_command(target), cwd=tree, capture_output=True, text=True)
        if baseline.returncode != 0:
            print(f"mutation: {name} skipped: its tests fail without any mutant:\n{baseline.stdout[-3000:]}")
            return
        took = time.monotonic() - started
        # a mutant that makes a test hang (a loop that never ends) is cut off, and counts as caught
        config.write_text(config_text(target, max(30.0, 4 * took)), encoding="utf-8")
        print(f"{name}: baseline {took:.0f}s; a mutant is cut off after {max(30.0, 4 * took):.0f}s", flush=True)
        subprocess.run([bin_dir / "cosmic-ray", "exec", config, session], cwd=tree, check=True)
    report(name)


def retest(name: str, target: Target) -> None:
    """The last run's survivors only, against the tests as they are now (after adding tests that should kill
    them): each result is replaced in the session. The code under test must be as it was for that run."""
    import os

    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    session = SESSIONS / f"{name}.sqlite"
    if not session.exists():
        return
    with use_db(str(session), WorkDB.Mode.open) as db:
        survivors = [item for item, result in db.completed_work_items
                     if result.worker_outcome == WorkerOutcome.NORMAL and result.test_outcome == TestOutcome.SURVIVED]
        with tempfile.TemporaryDirectory(prefix=f"mutation-{name}-") as folder:
            tree = Path(folder)
            copy_tree(tree)
            if (REPO / ".pytest_cache").is_dir():
                shutil.copytree(REPO / ".pytest_cache", tree / ".pytest_cache")
            here = Path.cwd()
            os.chdir(tree)  # cosmic-ray applies a mutation to the module path relative to here
            try:
                for item in survivors:
                    db.set_result(item.job_id, mutate_and_test(item.mutations, " ".join(test_command(target)), 300))
            finally:
                os.chdir(here)
    print(f"{name}: {len(survivors)} survivors tested again")
    report(name)


def report(name: str) -> tuple[int, int]:
    """Killed and run counts of a module's last session; prints its survivors."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    session = SESSIONS / f"{name}.sqlite"
    if not session.exists():
        print(f"{name}: no session yet")
        return 0, 0
    killed = survived = unsampled = 0
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                unsampled += result.output == "not sampled"
                continue
            if result.worker_outcome == WorkerOutcome.NORMAL and result.test_outcome == TestOutcome.SURVIVED:
                survived += 1
                m = item.mutations[0]
                diff = [line for line in (result.diff or "").splitlines()
                        if line[:1] in "+-" and line[:3] not in ("+++", "---")]
                survivors.append(f"  {m.module_path}:{m.start_pos[0]} {m.operator_name.split('/')[-1]}"
                                 f" #{m.occurrence}  {' | '.join(d.strip() for d in diff)[:160]}")
            else:
                killed += 1  # killed by a failing test, a timeout, or an import error (incompetent)
        pending = db.num_work_items - db.num_results
    total = killed + survived
    rate = f"{100 * killed / total:.0f}%" if total else "n/a"
    print(f"{name}: {killed}/{total} killed ({rate}), {survived} survived"
          + (f", {pending} not run yet" if pending else "")
          + (f" (a random sample: {unsampled} mutants not drawn)" if unsampled else ""))
    print("\n".join(survivors))
    return killed, total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"some of: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--list", action="store_true", help="show the modules, files and tests, run nothing")
    parser.add_argument("--report", action="store_true", help="show the last run's results, run nothing")
    parser.add_argument("--survivors", action="store_true",
                        help="run only the last run's survivors again, against the tests as they are now")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="run N mutants per module drawn at random: an estimate of the kill rate in less time")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in TARGETS]
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}: choose from {', '.join(TARGETS)}")
    names = args.modules or list(TARGETS)
    if args.list:
        for name in names:
            t = TARGETS[name]
            print(f"{name}: {' '.join(t.files)}" + (f" (only {', '.join(t.functions)})" if t.functions else ""))
            print(f"  tests: {' '.join(t.tests)}")
        return
    for name in names:
        if args.survivors:
            retest(name, TARGETS[name])
        elif not args.report:
            run(name, TARGETS[name], args.sample)
    if len(names) > 1 or args.report:
        print()
        totals = [report(name) for name in names]
        killed, total = sum(k for k, _ in totals), sum(t for _, t in totals)
        if total:
            print(f"all: {killed}/{total} killed ({100 * killed / total:.0f}%)")


if __name__ == "__main__":
    main()
