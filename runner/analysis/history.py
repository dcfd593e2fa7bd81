"""The history database: every run's calls in one SQLite file, so later runs can be compared with it.

One row per run in `runs` (keyed by its folder, so rebuilding a comparison replaces the run's rows
instead of adding them again), its calls in `calls`, with results.csv's columns, and its score rows in
`scores`, with scores.jsonl's columns (replaced too when `runner.score` rescores the run), written and read by
column name. The schema changes only through named migrations (runner.analysis.migrations). The arena's votes on
them are in `human_judgments`. Runs of the same
sweep share a fingerprint: the set of cells (model x task x prompt x temperature x variant) their jobs ran.
"""
from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from runner.analysis.history_file import DEFAULT_PATH, path_for  # noqa: F401 - where the history is, for its readers
from runner.analysis.migrations import migrate
from runner.analysis.summary import frame
from runner.records import CSV_COLUMNS, calls_text
from runner.scorers.rows import COLUMNS as SCORE_COLUMNS
from runner.variant import describe as describe_variants

QUOTED = ", ".join(f'"{c}"' for c in CSV_COLUMNS)  # "repeat" is an SQL keyword
SCORES_QUOTED = ", ".join(f'"{c}"' for c in SCORE_COLUMNS)
RUN_COLUMNS = ["id", "run_id", "folder", "fingerprint", "sweep", "command", "started_at", "recorded_at",
               "calls", "ok", "error", "skipped", "cost_usd", "spent_usd"]


@dataclass(frozen=True)
class Sweep:
    """What makes two runs comparable: the same cells."""

    cells: tuple[tuple[str, str, str, float, str], ...]  # (model, task, prompt, temperature, variant), sorted

    @property
    def fingerprint(self) -> str:
        # a cell without a variant hashes as before variants existed: older runs stay the same sweep
        text = "\n".join(f"{m}\t{t}\t{p}\t{temp:g}" + (f"\t{v}" if v else "") for m, t, p, temp, v in self.cells)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def description(self) -> str:
        def values(i, fmt=str):
            return ",".join(dict.fromkeys(fmt(c[i]) for c in self.cells))

        swept = describe_variants(c[4] for c in self.cells)
        return (f"model={values(0)} task={values(1)} prompt={values(2)} "
                f"temperature={values(3, lambda t: f'{t:g}')}" + (f" {swept}" if swept else ""))


@dataclass(frozen=True)
class Run:
    id: int
    run_id: str
    folder: str
    fingerprint: str
    sweep: str
    command: str
    started_at: str

    @property
    def label(self) -> str:
        return f"{self.run_id} ({self.started_at[:16].replace('T', ' ')} UTC)"


def connect(path: Path) -> sqlite3.Connection:
    """The history file, created or brought up to date by its migrations (runner.analysis.migrations)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30)  # two sweeps ending together wait for each other
    db.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


def _value(value):
    if value is None or (isinstance(value, float) and value != value):  # NaN
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, list):  # a turn's tool calls: as results.csv writes them
        return calls_text(value)
    return value


def _spent(records: pd.DataFrame) -> float | None:
    """What the run paid; None (NULL, not 0) when a call that went to a model has no known price."""
    called = records[(records.status != "skipped") & ~records.cache_hit]
    return None if called.spent_usd.isna().any() else _value(records.spent_usd.fillna(0).sum())


def record(path: Path, folder: Path, records: pd.DataFrame, sweep: Sweep, command: str,
           scored: pd.DataFrame | None = None) -> Run:
    """Add a run's calls and score rows (scores.jsonl's columns), or replace them when this folder was
    recorded before."""
    folder_key = str(Path(folder).resolve())
    started = records.started_at.dropna().astype(str)
    started = started[started != ""]
    started_at = started.min() if len(started) else \
        datetime.fromtimestamp(Path(folder).stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    values = dict(
        run_id=str(records.run_id.dropna().iloc[0]) if records.run_id.notna().any() else Path(folder).name,
        folder=folder_key, fingerprint=sweep.fingerprint, sweep=sweep.description, command=command,
        started_at=started_at, recorded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        calls=len(records), ok=int((records.status == "ok").sum()), error=int((records.status == "error").sum()),
        skipped=int((records.status == "skipped").sum()),
        cost_usd=_value(records.cost_usd.sum(min_count=1)), spent_usd=_spent(records),
    )
    with connect(path) as db:
        columns = list(values)
        db.execute(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                   f"ON CONFLICT(folder) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in columns)}",
                   [values[c] for c in columns])
        run = db.execute("SELECT id FROM runs WHERE folder = ?", (folder_key,)).fetchone()[0]
        db.execute("DELETE FROM calls WHERE run = ?", (run,))
        db.executemany(f"INSERT INTO calls (run, {QUOTED}) VALUES (?, {', '.join('?' * len(CSV_COLUMNS))})",
                       ([run, *map(_value, row)] for row in _rows(records[CSV_COLUMNS])))
        db.execute("DELETE FROM scores WHERE run = ?", (run,))
        if scored is not None and not scored.empty:
            marks = ", ".join("?" * len(SCORE_COLUMNS))
            db.executemany(f"INSERT INTO scores (run, {SCORES_QUOTED}) VALUES (?, {marks})",
                           ([run, *map(_value, row)] for row in _rows(scored.reindex(columns=SCORE_COLUMNS))))
    db.close()
    return find(path, folder_key)


ROWS_AT_ONCE = 10_000


def _rows(records: pd.DataFrame):
    """The records' rows as tuples of Python values, a slice at a time: all at once, as objects, they took
    30 MB more at 100,000 calls."""
    for start in range(0, len(records), ROWS_AT_ONCE):
        yield from records.iloc[start:start + ROWS_AT_ONCE].astype(object).itertuples(index=False, name=None)


def runs(path: Path, fingerprint: str | None = None) -> list[Run]:
    """Runs oldest first, optionally only those of one sweep."""
    if not Path(path).exists():
        return []
    db = connect(path)
    query = f"SELECT {', '.join(RUN_COLUMNS[:7])} FROM runs"
    args: tuple = ()
    if fingerprint:
        query += " WHERE fingerprint = ?"
        args = (fingerprint,)
    found = [Run(*row) for row in db.execute(query + " ORDER BY started_at, id", args)]
    db.close()
    return found


def find(path: Path, ref: str) -> Run | None:
    """A run by its run_id (the newest with that id) or by its folder."""
    folder = str(Path(ref).resolve()) if Path(ref).exists() else None
    matches = [r for r in runs(path) if r.run_id == ref or r.folder == folder]
    return matches[-1] if matches else None


def previous(path: Path, run: Run) -> Run | None:
    """The run of the same sweep just before this one."""
    same = runs(path, run.fingerprint)
    earlier = [r for r in same if (r.started_at, r.id) < (run.started_at, run.id)]
    return earlier[-1] if earlier else None


def calls(path: Path, run: Run, columns: list[str] | None = None) -> pd.DataFrame:
    """The run's calls; `columns`: only these of results.csv's (the others empty), e.g. what a per-model row
    needs, without every answer's text."""
    db = connect(path)
    chosen = QUOTED if columns is None else ", ".join(f'"{c}"' for c in columns if c in CSV_COLUMNS)
    df = pd.read_sql_query(f"SELECT {chosen} FROM calls WHERE run = ?", db, params=(run.id,))
    db.close()
    return frame(df)


def scores(path: Path, run: Run) -> pd.DataFrame:
    """The run's score rows as recorded, with scores.jsonl's columns (none for a run recorded before scores
    reached the history)."""
    db = connect(path)
    df = pd.read_sql_query(f"SELECT {SCORES_QUOTED} FROM scores WHERE run = ? ORDER BY rowid", db, params=(run.id,))
    db.close()
    return df


JUDGMENT_SIDES = ("model", "prompt", "temperature", "variant")


def record_votes(path: Path, run: Run, votes: list[dict]) -> None:
    """Replace the run's human judgments with these votes (runner.analysis.votes: a, b, winner...)."""
    columns = ["item", "step"] + [f"{s}_{k}" for s in "ab" for k in JUDGMENT_SIDES] + ["winner", "voted_at"]
    rows = [[v.get("item"), v.get("step")] + [v[s].get(k) for s in "ab" for k in JUDGMENT_SIDES]
            + [v["winner"], v.get("voted_at")] for v in votes]
    with connect(path) as db:
        db.execute("DELETE FROM human_judgments WHERE run = ?", (run.id,))
        db.executemany(f"INSERT INTO human_judgments (run, {', '.join(columns)}) "
                       f"VALUES (?, {', '.join('?' * len(columns))})", ([run.id, *row] for row in rows))
    db.close()


def votes(path: Path, run_ids: list[int] | None = None) -> dict[int, list[dict]]:
    """Human judgments per run id (all runs, or these), in the shape runner.analysis.votes reads."""
    if not Path(path).exists():
        return {}
    db = connect(path)
    query = ("SELECT run, item, step, " + ", ".join(f"{s}_{k}" for s in "ab" for k in JUDGMENT_SIDES)
             + ", winner, voted_at FROM human_judgments")
    found: dict[int, list[dict]] = {}
    for row in db.execute(query + " ORDER BY run, rowid"):
        run, item, step, *sides, winner, voted_at = row
        if run_ids is not None and run not in run_ids:
            continue
        a, b = dict(zip(JUDGMENT_SIDES, sides[:4])), dict(zip(JUDGMENT_SIDES, sides[4:]))
        found.setdefault(run, []).append(dict(item=item, step=step, a=a, b=b, winner=winner, voted_at=voted_at))
    db.close()
    return found
