"""The history database's schema, as named migrations applied in order (after simonw/llm's migrations.py).

Each migration is a function that changes the schema one step; `migrate` applies those a file has not had
yet and records each by name in `_migrations`, so a history written by any earlier version opens, is
brought up to date, and keeps its rows. A new column in results.csv is a new migration here that adds it
(tests/test_history_migrations.py fails until it is).

Files written before migrations existed have no `_migrations` table; their tables are those of the first
migration, perhaps with columns a later one adds already added (the runner used to add missing columns
as it found them), so each migration checks what is there before it changes anything.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []
migration = MIGRATIONS.append


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')}


def add_column(db: sqlite3.Connection, table: str, column: str, kind: str = "") -> None:
    if column not in columns(db, table):
        db.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind}'.rstrip())


def applied(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM _migrations")}


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations this file has not had, each in a transaction of its own; their names."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    db.commit()
    done = applied(db)
    names = []
    for step in MIGRATIONS:
        if step.__name__ in done:
            continue
        db.execute("BEGIN IMMEDIATE")  # another process may be migrating the same file: one at a time
        try:
            if step.__name__ not in applied(db):
                step(db)
                db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                           (step.__name__, datetime.now(timezone.utc).isoformat(timespec="seconds")))
                names.append(step.__name__)
            db.commit()
        except BaseException:
            db.rollback()
            raise
    return names


# The columns results.csv had when the history began; later ones are added by the migrations below.
FIRST_CALL_COLUMNS = [
    "run_id", "model", "provider", "model_id", "task", "prompt", "temperature", "item", "repeat",
    "status", "error", "input_tokens", "output_tokens", "cached_tokens", "tokens_source", "cost_usd",
    "spent_usd", "latency_s", "ttft_s", "finish_reason", "retries", "cache_hit", "response",
    "step", "job", "started_at", "max_tokens", "base_url", "note",
]


@migration
def m001_runs_and_calls(db: sqlite3.Connection) -> None:
    """One row per run (keyed by its folder), and its calls with results.csv's columns."""
    quoted = ", ".join(f'"{c}"' for c in FIRST_CALL_COLUMNS)  # "repeat" is an SQL keyword
    db.execute("""CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        folder TEXT NOT NULL UNIQUE,
        fingerprint TEXT NOT NULL,
        sweep TEXT NOT NULL,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        calls INTEGER, ok INTEGER, error INTEGER, skipped INTEGER, cost_usd REAL, spent_usd REAL)""")
    db.execute(f"CREATE TABLE IF NOT EXISTS calls (run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, "
               f"{quoted})")
    db.execute("CREATE INDEX IF NOT EXISTS calls_by_run ON calls(run)")
    db.execute("CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs(fingerprint, started_at)")


@migration
def m002_calls_variant(db: sqlite3.Connection) -> None:
    """A call's variant (the job's overrides beyond model, task, prompt and temperature): '' before."""
    add_column(db, "calls", "variant")


@migration
def m003_human_judgments(db: sqlite3.Connection) -> None:
    """People's votes in the arena (runner.chat): which of two anonymous answers was better."""
    db.execute("""CREATE TABLE IF NOT EXISTS human_judgments (
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        item TEXT, step TEXT,
        a_model TEXT, a_prompt TEXT, a_temperature REAL, a_variant TEXT,
        b_model TEXT, b_prompt TEXT, b_temperature REAL, b_variant TEXT,
        winner TEXT NOT NULL,  -- a | b | tie | both_bad
        voted_at TEXT)""")
    db.execute("CREATE INDEX IF NOT EXISTS human_judgments_by_run ON human_judgments(run)")


# The columns scores.jsonl had when scores reached the history; later ones are added by later migrations.
FIRST_SCORE_COLUMNS = [
    "run_id", "job", "model", "task", "prompt", "temperature", "variant", "item", "repeat", "step", "scorer",
    "status", "score", "pass", "reason", "judge", "cost_usd",
]


@migration
def m004_scores(db: sqlite3.Connection) -> None:
    """A run's score rows (scores.jsonl's columns), so a score's drift can be told from noise across runs."""
    quoted = ", ".join(f'"{c}"' for c in FIRST_SCORE_COLUMNS)  # "repeat" and "pass" read as keywords
    db.execute(f"CREATE TABLE IF NOT EXISTS scores (run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, "
               f"{quoted})")
    db.execute("CREATE INDEX IF NOT EXISTS scores_by_run ON scores(run)")


@migration
def m005_scores_judge_settings(db: sqlite3.Connection) -> None:
    """A score row's judge as it was called: the model id and the temperature and max_tokens it was asked at."""
    for column in ("judge_model_id", "judge_temperature", "judge_max_tokens"):
        add_column(db, "scores", column)


@migration
def m006_calls_seed(db: sqlite3.Connection) -> None:
    """The seed a call sent (`seed`): null before, and where none was sent."""
    add_column(db, "calls", "seed", "INTEGER")


@migration
def m007_calls_reasoning(db: sqlite3.Connection) -> None:
    """Reasoning models: the effort asked for, and how many of the output tokens were thinking."""
    add_column(db, "calls", "reasoning_effort")
    add_column(db, "calls", "reasoning_tokens", "INTEGER")
    add_column(db, "calls", "reasoning_tokens_source")


@migration
def m008_calls_billed_tokens(db: sqlite3.Connection) -> None:
    """The tokens of every attempt the provider billed for a call (retries included): empty before."""
    add_column(db, "calls", "billed_input_tokens", "INTEGER")
    add_column(db, "calls", "billed_output_tokens", "INTEGER")


@migration
def m009_calls_tool_calls(db: sqlite3.Connection) -> None:
    """The tools a call's answer called (`tool_calls`, a tools task's turns): '' before and elsewhere."""
    add_column(db, "calls", "tool_calls")
