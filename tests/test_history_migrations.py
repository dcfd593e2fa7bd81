"""History files written by earlier versions open, migrate and keep their rows; every results.csv column
reaches the history through a named migration.

tests/data/history-*.sqlite were written by the runner at those commits (tests/data/make_history.py): two
runs of one sweep, four calls each. 3b97bf9 wrote the first history (no variant column); 0be982c is the
main branch before named migrations; 1208829 had migrations m001-m003, before scores reached the history.
"""
from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from runner.analysis import history, migrations
from runner.records import CSV_COLUMNS
from runner.scorers.rows import COLUMNS as SCORE_COLUMNS
from tests import forked
from tests.conftest import clean_env

DATA = Path(__file__).parent / "data"
WRITTEN_BY = ["3b97bf9", "0be982c", "1208829"]


def copy(tmp_path: Path, commit: str) -> Path:
    path = tmp_path / f"history-{commit}.sqlite"
    shutil.copy(DATA / f"history-{commit}.sqlite", path)
    return path


@pytest.mark.parametrize("commit", WRITTEN_BY)
def test_a_history_from_an_earlier_version_migrates_and_keeps_its_rows(tmp_path, commit):
    path = copy(tmp_path, commit)
    before = sqlite3.connect(path)
    query = "SELECT run, run_id, model, item, response, cost_usd FROM calls ORDER BY rowid"
    rows_before = before.execute(query).fetchall()
    before.close()
    assert len(rows_before) == 8

    runs = history.runs(path)  # opening it migrates it
    assert [r.run_id for r in runs] == ["2026-11-02_06-00-00", "2026-11-09_06-00-00"]
    assert history.previous(path, runs[1]) == runs[0]  # still one sweep
    calls = history.calls(path, runs[1])
    assert len(calls) == 4 and set(calls.variant) == {""}
    assert "Owls: they give a hoot." in set(calls.response)

    after = sqlite3.connect(path)
    assert after.execute(query).fetchall() == rows_before
    assert [name for (name,) in after.execute("SELECT name FROM _migrations ORDER BY name")] == \
        [step.__name__ for step in migrations.MIGRATIONS]
    assert set(CSV_COLUMNS) <= migrations.columns(after, "calls")
    after.close()


@pytest.mark.parametrize("commit", WRITTEN_BY)
def test_a_run_recorded_into_an_earlier_history_is_compared_with_the_runs_already_there(tmp_path, commit):
    """The user's path: the comparison of a new run of the same sweep, into the history an older version
    kept, says what changed since that version's last run."""
    path = copy(tmp_path, commit)
    folder = tmp_path / "outputs" / "2026-11-16_06-00-00"
    sys.path.insert(0, str(DATA))
    try:
        from make_history import write_run
    finally:
        sys.path.remove(str(DATA))
    write_run(folder, folder.name, "2026-11-16T06:00:01+00:00",
              {"owls": "Owls again.", "lawyers": "A lawyer walks into a bar."})
    proc = forked.run([sys.executable, "-m", "runner.comparison", str(folder), "--history", str(path)],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "Warning" not in report, report
    assert "## Since the previous run" in report and "2026-11-09_06-00-00" in report
    assert "Owls again." in report  # the changed answer, against the one the older version recorded
    assert len(history.runs(path)) == 3


def test_every_results_csv_column_reaches_the_history_through_a_migration(tmp_path):
    """A column added to results.csv (or scores.csv) needs a migration that adds it to the history: a new
    file gets every one of them, and only through the migrations."""
    db = sqlite3.connect(tmp_path / "new.sqlite")
    migrations.migrate(db)
    assert set(CSV_COLUMNS) <= migrations.columns(db, "calls"), "add a migration in runner/analysis/migrations.py"
    assert set(SCORE_COLUMNS) <= migrations.columns(db, "scores"), "scores.csv's too"
    assert migrations.migrate(db) == []  # applied once


def test_a_migration_that_fails_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = copy(tmp_path, "3b97bf9")

    def broken(db):
        db.execute('ALTER TABLE calls ADD COLUMN "half_done"')
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.OperationalError):
        migrations.migrate(db)
    assert "half_done" not in migrations.columns(db, "calls")
    assert "broken" not in migrations.applied(db)
    assert db.execute("SELECT count(*) FROM calls").fetchone()[0] == 8
    db.close()



def test_a_history_with_a_column_this_version_does_not_know_still_takes_runs(tmp_path):
    """A newer version may have added a column: rows are written and read by column name, so an older
    version recording into that file (a shared file, a downgrade) still works and keeps the column."""
    path = copy(tmp_path, "0be982c")
    db = sqlite3.connect(path)
    migrations.migrate(db)
    db.execute('ALTER TABLE calls ADD COLUMN "score" REAL')
    db.execute('UPDATE calls SET "score" = 0.5')
    db.commit()
    db.close()
    folder = tmp_path / "outputs" / "2026-11-16_06-00-00"
    sys.path.insert(0, str(DATA))
    try:
        from make_history import write_run
    finally:
        sys.path.remove(str(DATA))
    write_run(folder, folder.name, "2026-11-16T06:00:01+00:00", {"owls": "Owls again.", "lawyers": "Lawyers."})
    from runner.analysis.build import build_comparison

    comparison = build_comparison(folder, history_path=path)
    assert comparison.exit_code == 0
    runs = history.runs(path)
    assert len(runs) == 3 and set(history.calls(path, runs[-1]).response) == {"Owls again.", "Lawyers."}
    db = sqlite3.connect(path)
    assert db.execute('SELECT count(*) FROM calls WHERE "score" = 0.5').fetchone()[0] == 8
    db.close()
