"""Reports and history, end to end: real sweeps through the command line against the strict OpenAI fake
(and the embedded model), then the files a reader opens: summary.csv, report.md, its PNGs, the history
database and `python -m runner.compare`."""
from __future__ import annotations

import csv
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests import forked
from tests.conftest import clean_env
from tests.fakes.openai_server import OpenAIFake, _error
from tests.fakes.server import FakeServer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CELL_SPLIT = re.compile(r"(?<!\\)\|")
DELIMITER = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+$")


class Script:
    """What the fake model says: changes between runs, and fails on chosen items (HTTP 400)."""

    def __init__(self):
        self.take = 1
        self.failing: set[str] = set()

    def answer(self, messages) -> str:
        # a pipe, blank lines and HTML: what breaks a markdown table if the report does not escape it
        return f"Take {self.take} | a joke\n\nwith <b>two</b> lines"

    def server(self) -> FakeServer:
        fake = OpenAIFake(answer=self.answer)

        def chat(request):
            user = request.json["messages"][-1]["content"]
            if any(item in user for item in self.failing):
                return _error(400, "This item is refused by the test", "invalid_request_error")
            return fake.chat(request)

        return FakeServer({("POST", "/v1/chat/completions"): chat})


def markdown_tables(text: str) -> list[list[str]]:
    """Every block of consecutive lines that starts with a pipe: one table."""
    tables, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            tables.append(block)
            block = []
    return tables


def assert_tables_well_formed(text: str) -> int:
    tables = markdown_tables(text)
    for rows in tables:
        assert len(rows) >= 2 and DELIMITER.match(rows[1]), f"no delimiter row under the header: {rows[:2]}"
        width = len(CELL_SPLIT.split(rows[0]))
        for row in rows:
            assert row.rstrip().endswith("|") and not row.rstrip().endswith("\\|"), f"row not closed: {row}"
            assert len(CELL_SPLIT.split(row)) == width, f"{len(CELL_SPLIT.split(row)) - 2} cells, header has " \
                                                        f"{width - 2}: {row}"
    return len(tables)


def linked_images(folder: Path) -> list[Path]:
    report = (folder / "report.md").read_text(encoding="utf-8")
    links = [folder / link for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)]
    for path in links:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE), f"{path.name} is not a PNG"
        import matplotlib.image

        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert sorted(p.name for p in links) == pngs, "a PNG the report does not link"
    return links


def history_rows(cwd: Path) -> tuple[list[tuple], int]:
    db = sqlite3.connect(cwd / "outputs" / "history.sqlite")
    runs = db.execute("SELECT run_id, fingerprint, calls FROM runs ORDER BY started_at, id").fetchall()
    calls = db.execute("SELECT count(*) FROM calls").fetchone()[0]
    db.close()
    return runs, calls


def module(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return forked.run([sys.executable, "-m", name, *args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=300)


def summary_rows(folder: Path) -> list[dict]:
    with open(folder / "summary.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_sweep_run_twice_is_recorded_and_its_second_report_says_what_changed(runner, tmp_path):
    script = Script()
    sweep = ["-m", "model=gpt,local", "temperature=0,0.7", "repeats=3", "max_tokens=8", "cache=false"]
    with script.server() as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}
        first = runner(*sweep, "hydra.sweep.dir=outputs/sweeps/first", env=env)
        script.take = 2
        second = runner(*sweep, "hydra.sweep.dir=outputs/sweeps/second", env=env)
    assert first.code == 0 and second.code == 0, second.stderr[-2000:]
    first_dir, second_dir = tmp_path / "outputs/sweeps/first", tmp_path / "outputs/sweeps/second"

    cells = summary_rows(second_dir)
    assert sorted((r["model"], float(r["temperature"])) for r in cells) == \
        [("gpt", 0.0), ("gpt", 0.7), ("local", 0.0), ("local", 0.7)]
    for row in cells:
        assert (row["calls"], row["ok"], row["repeats"]) == ("3", "3", "3")
        assert float(row["latency_p95_s"]) >= float(row["latency_p50_s"]) > 0
        assert row["answer_agreement"] != ""  # repeats > 1: the spread of answers is filled
    gpt = next(r for r in cells if r["model"] == "gpt")
    assert float(gpt["answer_agreement"]) == 1.0  # the fake says the same thing to every repeat
    assert float(gpt["cost_per_call_usd"]) > 0 and float(gpt["tokens_per_s"]) > 0

    first_report = (first_dir / "report.md").read_text(encoding="utf-8")
    second_report = (second_dir / "report.md").read_text(encoding="utf-8")
    assert "Since the previous run" not in first_report
    assert "## Since the previous run" in second_report
    assert "gpt 6 of 6 changed" in second_report and "Take 1 \\| a joke" in second_report
    for folder, report in ((first_dir, first_report), (second_dir, second_report)):
        assert assert_tables_well_formed(report) >= 3  # summary, spread, answers (and changes)
        assert "<b>" not in report  # answers are text, not HTML
        assert {p.name for p in linked_images(folder)} >= {"cost_vs_latency.png"}

    runs, calls = history_rows(tmp_path)
    assert [r[0] for r in runs] == ["first", "second"] and runs[0][1] == runs[1][1] and calls == 2 * 12

    # rebuilding a comparison replaces that run's rows in the history instead of adding them again
    rebuilt = module("runner.comparison", "outputs/sweeps/second", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert history_rows(tmp_path) == (runs, calls)
    assert "## Since the previous run" in (second_dir / "report.md").read_text(encoding="utf-8")

    latest = module("runner.compare", cwd=tmp_path)
    assert latest.returncode == 0, latest.stderr
    assert "model=gpt,local task=joke prompt=default temperature=0,0.7" in latest.stdout
    per_model = {line.split("|")[1].strip(): line for line in latest.stdout.splitlines()
                 if line.startswith("| gpt ") or line.startswith("| local ")}
    assert set(per_model) == {"gpt", "local"}
    assert "gpt 6 of 6 changed" in latest.stdout
    assert_tables_well_formed(latest.stdout)

    by_folder = module("runner.compare", "outputs/sweeps/first", str(second_dir), cwd=tmp_path)
    assert by_folder.returncode == 0 and by_folder.stdout.count("6 of 6 changed") == 1


def test_new_and_fixed_errors_and_the_trend_plot_after_three_runs(runner, tmp_path):
    script = Script()
    sweep = ["task=joke", "task.inputs=[{audience: physicists}, {audience: lawyers}]", "model=gpt",
             "model.max_attempts=1", "cache=false"]
    reports = []
    with script.server() as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}
        for n, failing in enumerate(({"lawyers"}, {"physicists"}, set())):
            script.failing = failing
            run = runner(*sweep, f"hydra.run.dir=outputs/runs/{n}", env=env)
            assert run.code == (1 if failing else 0), run.stderr[-2000:]
            reports.append((tmp_path / f"outputs/runs/{n}/report.md").read_text(encoding="utf-8"))

    second = reports[1]
    since = second[second.index("## Since the previous run"):second.index("## Answers side by side")]
    assert "New errors: 1." in since and "Fixed since then: 1." in since
    new_errors = since[since.index("New errors"):since.index("Fixed since then")]
    assert "| physicists |" in new_errors and "refused by the test" in new_errors
    assert "| lawyers |" in since[since.index("Fixed since then"):]
    assert "## Errors" in second and assert_tables_well_formed(second)

    assert "trend.png" not in second
    assert "![trend](trend.png)" in reports[2]
    assert "trend.png" in {p.name for p in linked_images(tmp_path / "outputs/runs/2")}

    # one run against the run of its sweep before it
    one = module("runner.compare", "1", cwd=tmp_path)
    assert one.returncode == 0 and "New errors: 1." in one.stdout


def test_the_weekly_experiment_sweeps_the_frontier_models_tasks_and_efforts(runner, tmp_path):
    with Script().server() as server:
        run = runner("-m", "+experiment=weekly", "model=gpt_luna", "repeats=1",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr[-2000:]
    folder = run.root()
    assert folder.parent.name == "weekly"
    cells = summary_rows(folder)
    assert sorted((r["task"], r["variant"]) for r in cells) == \
        [("joke", "model.reasoning=high"), ("joke", "model.reasoning=low"),
         ("tutor", "model.reasoning=high"), ("tutor", "model.reasoning=low")]
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "+experiment=weekly" in report and "task=joke,tutor model.reasoning=low,high" in report
    assert all(row["cache_hit"] == "false" for row in run.rows())
    assert sorted({r.json["reasoning_effort"] for r in server.received}) == ["high", "low"]


@pytest.mark.parametrize("args", [[], ["no-such-run"]])
def test_compare_without_runs_to_compare_says_so_in_one_line(tmp_path, args):
    result = module("runner.compare", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("runner.compare: ") and len(result.stderr.strip().splitlines()) == 1
