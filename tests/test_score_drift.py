"""Score drift across runs: a run's scores reach the history database (a named migration; replaced, not
added again, when the run is rescored), and `python -m runner.compare` and the report's "Scores since the
previous run" call a change a regression only when its 95% interval excludes 0, else "within noise".

The runs are real: the job runs in this process on the scripted provider (tests/fakes/inprocess.py) with a
deterministic scorer, its comparison is built into a history file, and runner.compare reads them back.
"""
from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from runner.analysis import compare_runs, history, migrations
from runner.analysis.build import build_comparison
from runner.calling.job import execute
from runner.scorers.rows import COLUMNS as SCORE_COLUMNS
from tests.conftest import FAKE_CONF
from tests.fakes.inprocess import answer

DATA = Path(__file__).parent / "data"
AUDIENCES = [f"group{i}" for i in range(12)]
OVERRIDES = ["model=scripted", "task=joke", "task.inputs=[" + ", ".join(f"{{audience: {a}}}" for a in AUDIENCES) + "]",
             "cache=false", "~task.scorers", "+scorer.owl={type: icontains, value: owl}"]


def answer_owls_for(scripted, passing: set[int]) -> None:
    """The model tells an owl joke (which the `owl` scorer passes) to these audiences only."""
    def reply(request):
        audience = request.messages[-1]["content"].rsplit(" ", 1)[-1]
        return answer("an owl walks into a bar" if AUDIENCES.index(audience) in passing else "a cat walks in")

    scripted.otherwise = reply


def scored_run(scripted, run_settings, folder: Path, passing: set[int], history_path: Path | None) -> Path:
    """One run answered and scored, its comparison built (and recorded into history_path when given)."""
    answer_owls_for(scripted, passing)
    asyncio.run(execute(run_settings(*OVERRIDES), folder, run_id=folder.name))
    (folder / ".hydra").mkdir()  # what Hydra saves: runner.score composes the job again from it
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(OVERRIDES), encoding="utf-8")
    if history_path is not None:
        build_comparison(folder, history_path=history_path)
    return folder


def score_lines(text: str) -> dict[str, str]:
    """The Scores table's rows by scorer (one cell here)."""
    heading = "## Scores since the previous run" if "## Scores since the previous run" in text else "## Scores"
    part = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    return {line.split(" | ")[4].strip(): line for line in part.splitlines() if line.startswith("| scripted")}


def compare(capsys, *args: str) -> str:
    capsys.readouterr()
    assert compare_runs.main(list(args)) == 0
    return capsys.readouterr().out


def test_a_clear_drop_is_a_regression_from_the_history_in_the_report_and_runner_compare(
        scripted, run_settings, tmp_path, capsys):
    path = tmp_path / "history.sqlite"
    first = scored_run(scripted, run_settings, tmp_path / "outputs" / "first", set(range(12)), path)
    shutil.rmtree(first)  # the earlier run's scores must come from the history, not its folder
    second = scored_run(scripted, run_settings, tmp_path / "outputs" / "second", {0, 1}, path)

    report = (second / "report.md").read_text(encoding="utf-8")
    for lines in (score_lines(report), score_lines(compare(capsys, "--history", str(path)))):
        assert set(lines) == {"overall", "owl"}
        for line in lines.values():
            assert "| 12 | 1.00 → 0.17 | -0.83 [" in line and "**regression**" in line, line

    # the viewer's two runs side by side say it too (the earlier run's folder is gone: from the history)
    from runner.analysis.catalog import Catalog
    from runner.analysis.view_pages import compare_page

    catalog = Catalog(path, tmp_path / "outputs")
    status, html = compare_page(catalog, [entry.key for entry in catalog.entries()])
    scores_part = html.split("<h2>Scores</h2>", 1)[1].split("</table>", 1)[0]
    assert status == 200 and scores_part.count("<strong>regression</strong>") == 2, scores_part


def test_a_change_within_noise_is_not_a_regression(scripted, run_settings, tmp_path, capsys):
    """7 of 12 pass, then 6 of 12 (three items lost, two gained): the change is negative, its interval holds 0."""
    path = tmp_path / "history.sqlite"
    first = scored_run(scripted, run_settings, tmp_path / "outputs" / "first", set(range(7)), path)
    second = scored_run(scripted, run_settings, tmp_path / "outputs" / "second", set(range(3, 9)), path)

    from_history = score_lines(compare(capsys, "--history", str(path), "first", "second"))
    # folders the history does not know are read from their scores.jsonl files
    from_folders = score_lines(compare(capsys, "--history", str(tmp_path / "none.sqlite"), str(first), str(second)))
    for lines in (from_history, from_folders):
        assert set(lines) == {"overall", "owl"}
        for line in lines.values():
            assert "| 12 | 0.58 → 0.50 | -0.08 [" in line and line.endswith("| within noise |"), line
            assert "regression" not in line


def test_runner_compare_says_when_only_one_run_was_scored(scripted, run_settings, tmp_path, capsys):
    path = tmp_path / "history.sqlite"
    scored_run(scripted, run_settings, tmp_path / "outputs" / "first", set(range(12)), path)
    second = scored_run(scripted, run_settings, tmp_path / "outputs" / "second", set(range(12)), None)
    for name in ("scores.jsonl", "scores.csv"):
        (second / name).unlink()
    build_comparison(second, history_path=path)
    assert "Only the earlier run was scored: nothing to compare." in compare(capsys, "--history", str(path))


def test_scores_reach_a_history_written_by_main_and_a_rescore_replaces_them(scripted, run_settings, tmp_path,
                                                                           monkeypatch):
    """A history made by the runner before scores reached it (m001-m003, tests/data/history-1208829.sqlite)
    opens, migrates, keeps its rows and takes a scored run; `runner.score` replaces that run's score rows."""
    path = tmp_path / "history.sqlite"
    shutil.copy(DATA / "history-1208829.sqlite", path)
    db = sqlite3.connect(path)
    kept = ", ".join(f'"{row[1]}"' for row in db.execute("PRAGMA table_info(calls)"))  # later migrations add columns
    calls_before = db.execute(f"SELECT {kept} FROM calls ORDER BY rowid").fetchall()
    assert "scores" not in {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()

    folder = scored_run(scripted, run_settings, tmp_path / "outputs" / "2026-11-16_06-00-00", {0, 1, 2}, path)
    run = history.find(path, str(folder))
    recorded = history.scores(path, run)
    assert len(recorded) == 12 and list(recorded.columns) == SCORE_COLUMNS
    assert sorted(recorded.loc[recorded["pass"] == 1, "item"]) == ["group0", "group1", "group2"]

    from runner import score

    monkeypatch.chdir(tmp_path)
    code = score.main([str(folder), "scorer.owl.value=walks", "--config-dir", str(FAKE_CONF), "--history", str(path)])
    assert code == 0
    rescored = history.scores(path, run)
    assert len(rescored) == 12 and (rescored["pass"] == 1).all()  # replaced, not added again

    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
    assert db.execute(f"SELECT {kept} FROM calls WHERE run < ? ORDER BY rowid", (run.id,)).fetchall() == calls_before
    db.close()


@pytest.mark.parametrize("made_by", ["3b97bf9", "0be982c", "1208829"])
def test_every_scores_jsonl_column_reaches_the_history_through_a_migration(tmp_path, made_by):
    """A column added to scores.jsonl needs a migration that adds it to the history's scores table."""
    path = tmp_path / "history.sqlite"
    shutil.copy(DATA / f"history-{made_by}.sqlite", path)
    db = sqlite3.connect(path)
    migrations.migrate(db)
    assert set(SCORE_COLUMNS) <= migrations.columns(db, "scores"), "add a migration in runner/analysis/migrations.py"
    db.close()


def test_the_report_shows_each_cells_score_trend_over_the_runs_of_its_sweep(scripted, run_settings, tmp_path):
    path = tmp_path / "history.sqlite"
    for name, passing in (("first", range(12)), ("second", range(6)), ("third", range(3))):
        folder = scored_run(scripted, run_settings, tmp_path / "outputs" / name, set(passing), path)
    report = (folder / "report.md").read_text(encoding="utf-8")
    trend = report.split("## Score trend\n", 1)[1].split("\n## ", 1)[0]
    [row] = [line for line in trend.splitlines() if line.startswith("| scripted")]
    assert row.endswith("| 1.00 | 0.50 | 0.25 |"), trend
