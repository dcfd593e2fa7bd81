"""A sweep's cells are every combination it declares, and every number in the comparison means what it
says: swept keys beyond model/task/prompt/temperature, plain decimals in every results.csv, unknown prices
as n/a, cached answers that keep their timing. Real runs through the command line against the strict
OpenAI fake; the files a reader opens are checked."""
from __future__ import annotations

import csv
import re
import sqlite3
from decimal import Decimal
from pathlib import Path

from PIL import Image

from runner.records import Record, RecordWriter
from tests.fakes.openai_server import openai_server
from tests.test_reports import assert_tables_well_formed, markdown_tables

EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def env_for(server) -> dict:
    return {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def table_after(report: str, heading: str) -> list[str]:
    """The rows (header and delimiter left out) of the first table under a `## heading`."""
    section = report[report.index(f"## {heading}"):]
    return markdown_tables(section)[0][2:]


def first_cells(rows: list[str]) -> list[str]:
    """Each row's first cell as a reader sees it: report.md escapes every character markdown could read
    (`model\\.id`: a dot before a letter would make a link in some viewers)."""
    return [re.sub(r"\\(.)", r"\1", row.split("|")[1].strip()) for row in rows]


def shown_in(png: Path) -> list[str]:
    """What a plot says it shows: one name per point, bar group or line (its PNG description)."""
    return Image.open(png).text["Description"].split("; ")


def test_a_swept_model_id_makes_cells_of_its_own_in_every_table_plot_and_the_history(runner, tmp_path):
    sweep = ["-m", "model=gpt", "model.id=gpt-4o-mini,gpt-4o", "max_tokens=8", "cache=false"]
    with openai_server() as server:
        first = runner(*sweep, "hydra.sweep.dir=outputs/sweeps/ids", env=env_for(server))
        # as many cells, other model ids: another sweep
        other = runner("-m", "model=gpt", "model.id=gpt-4o-mini,gpt-4.1-nano", "max_tokens=8", "cache=false",
                       "hydra.sweep.dir=outputs/sweeps/other", env=env_for(server))
        again = runner(*sweep, "hydra.sweep.dir=outputs/sweeps/ids-again", env=env_for(server))
    assert first.code == other.code == again.code == 0, again.stderr[-2000:]
    assert {r.json["model"] for r in server.received} == {"gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"}
    root = tmp_path / "outputs/sweeps/ids"

    rows = read_csv(root / "results.csv")
    assert {r["variant"] for r in rows} == {"max_tokens=8 model.id=gpt-4o-mini", "max_tokens=8 model.id=gpt-4o"}
    summary = read_csv(root / "summary.csv")
    assert sorted((r["model"], r["model_id"], r["variant"]) for r in summary) == [
        ("gpt", "gpt-4o", "max_tokens=8 model.id=gpt-4o"),
        ("gpt", "gpt-4o-mini", "max_tokens=8 model.id=gpt-4o-mini")]

    # labels show what differs (the model id), not what every cell shares (max_tokens=8)
    names = ["gpt (model.id=gpt-4o)", "gpt (model.id=gpt-4o-mini)"]
    report = (root / "report.md").read_text(encoding="utf-8")
    assert_tables_well_formed(report)
    assert sorted(first_cells(table_after(report, "Summary"))) == names
    assert sorted(first_cells(table_after(report, "Cost by model and task"))) == names
    assert sorted(first_cells(table_after(report, "Answers side by side"))) == names
    assert "max_tokens=8" not in "".join(table_after(report, "Summary"))
    assert sorted(shown_in(root / "cost_vs_latency.png")) == names
    assert sorted(shown_in(root / "latency.png")) == names

    # the history: the same sweep only with the same cells, the variant included
    db = sqlite3.connect(tmp_path / "outputs/history.sqlite")
    runs = dict(db.execute("SELECT run_id, fingerprint FROM runs").fetchall())
    variants = {v for (v,) in db.execute("SELECT DISTINCT variant FROM calls")}
    db.close()
    assert runs["ids"] == runs["ids-again"] != runs["other"]
    assert variants == {"max_tokens=8 model.id=gpt-4o-mini", "max_tokens=8 model.id=gpt-4o",
                        "max_tokens=8 model.id=gpt-4.1-nano"}
    assert "## Since the previous run" not in (tmp_path / "outputs/sweeps/other/report.md").read_text()
    since = (tmp_path / "outputs/sweeps/ids-again/report.md").read_text(encoding="utf-8")
    since = since[since.index("## Since the previous run"):]
    assert "the previous run ids (" in since
    assert "gpt (model.id=gpt-4o) 1 of 1 changed" not in since and "gpt (model.id=gpt-4o) 0 of 1 changed" in since


def test_a_sweep_declared_in_an_experiment_file_makes_cells_too(runner, tmp_path):
    experiment = tmp_path / "mine" / "experiment" / "lengths.yaml"
    experiment.parent.mkdir(parents=True)
    experiment.write_text("# @package _global_\nhydra:\n  sweeper:\n    params:\n      max_tokens: 4,16\n",
                          encoding="utf-8")
    with openai_server() as server:
        run = runner("--config-dir", str(tmp_path / "mine"), "-m", "+experiment=lengths", "model=gpt",
                     "cache=false", env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    summary = run.rows("summary.csv")
    assert sorted(r["variant"] for r in summary) == ["max_tokens=16", "max_tokens=4"]
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    assert sorted(first_cells(table_after(report, "Summary"))) == ["gpt (max_tokens=16)", "gpt (max_tokens=4)"]


def test_no_results_csv_has_a_number_in_exponent_notation_and_costs_keep_every_digit(runner, tmp_path):
    # a price that makes each call cost a few millionths of a dollar, with more than 6 decimals
    price = "model.price={input: 0.123, output: 0.457}"
    with openai_server() as server:
        run = runner("-m", "model=gpt", price, "repeats=2", "cache=false", env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    files = sorted(run.root().rglob("results.csv"))
    assert [p.relative_to(run.root()).as_posix() for p in files] == ["0/results.csv", "results.csv"]
    for path in files:
        rows = read_csv(path)
        assert len(rows) == 2
        for row in rows:
            exact = (int(row["input_tokens"]) * Decimal("0.123") + int(row["output_tokens"]) * Decimal("0.457")) \
                / 1_000_000
            assert exact < Decimal("0.00001") and exact != round(exact, 6)  # a real tiny cost, past 6 places
            assert Decimal(row["cost_usd"]) == exact and Decimal(row["spent_usd"]) == exact, (path, row)
            for column, value in row.items():
                assert not EXPONENT.match(value), f"{path}: {column}={value}"
    [summary] = read_csv(run.root() / "summary.csv")  # its numbers are written the same way
    assert not [f"{column}={value}" for column, value in summary.items() if EXPONENT.match(value)]
    assert Decimal(summary["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in read_csv(files[-1]))


def test_a_tiny_time_is_written_as_a_plain_decimal(tmp_path):
    record = Record(run_id="r", model="gpt", provider="openai", model_id="gpt-4o", task="joke", prompt="default",
                    temperature=0.7, item="a", repeat=0, latency_s=1.234e-07, ttft_s=2e-08, cost_usd=3.12e-05)
    with RecordWriter(tmp_path) as writer:
        writer.write(record)
    [row] = read_csv(tmp_path / "results.csv")
    assert (row["latency_s"], row["ttft_s"], row["cost_usd"]) == ("0.0000001234", "0.00000002", "0.0000312")


def test_an_unknown_price_is_n_a_not_zero_and_a_mix_says_so(runner, tmp_path):
    with openai_server() as server:
        run = runner("-m", "model=gpt", "model.id=gpt-4.1-mini,my-private-model", "cache=false",
                     "hydra.sweep.dir=outputs/mix", env=env_for(server))
        alone = runner("model=gpt", "model.id=my-private-model", "cache=false", "hydra.run.dir=outputs/alone",
                       env=env_for(server))
    assert run.code == 0 and alone.code == 0, run.stderr[-2000:]

    [row] = read_csv(tmp_path / "outputs/alone/summary.csv")
    assert row["cost_usd"] == row["spent_usd"] == "" and row["unpriced"] == "1"
    report = (tmp_path / "outputs/alone/report.md").read_text(encoding="utf-8")
    assert "spent n/a (no known price)" in report and "spent $0" not in report
    assert "| n/a |" in table_after(report, "Cost by model and task")[0]
    assert "n/a spent (no known price)" in alone.stdout + alone.stderr  # the job's own line
    assert "$0.000000 spent" not in alone.stdout + alone.stderr

    summary = {r["model_id"]: r for r in read_csv(tmp_path / "outputs/mix/summary.csv")}
    assert Decimal(summary["gpt-4.1-mini"]["spent_usd"]) > 0 and summary["my-private-model"]["spent_usd"] == ""
    report = (tmp_path / "outputs/mix/report.md").read_text(encoding="utf-8")
    assert re.search(r"spent \$0\.0\d+ \+ n/a for 1 call with no known price", report), report[:400]


def test_a_model_answered_from_the_cache_keeps_its_timing_in_the_summary_and_both_plots(runner, tmp_path):
    sweep = ["-m", "model=gpt", "model.id=gpt-4o-mini,gpt-4o", "repeats=2"]
    with openai_server(chunk_delay_s=0.02) as server:
        first = runner(*sweep, "hydra.sweep.dir=outputs/live", env=env_for(server))
        calls = len(server.received)
        cached = runner(*sweep, "hydra.sweep.dir=outputs/cached", env=env_for(server))
    assert first.code == cached.code == 0, cached.stderr[-2000:]
    assert len(server.received) == calls == 4  # the second run asked nothing

    live = {r["model_id"]: r for r in read_csv(tmp_path / "outputs/live/summary.csv")}
    replayed = {r["model_id"]: r for r in read_csv(tmp_path / "outputs/cached/summary.csv")}
    for model_id, row in replayed.items():
        assert row["cache_hits"] == "2" and row["timing_from_cache"] == "2"
        assert float(row["latency_p50_s"]) == float(live[model_id]["latency_p50_s"]) > 0  # the original calls'
        assert float(row["ttft_p50_s"]) > 0
        assert live[model_id]["timing_from_cache"] == "0"
    folder = tmp_path / "outputs/cached"
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "(cached)" in table_after(report, "Summary")[0] and "its timing is that of the original call" in report
    for png in ("cost_vs_latency.png", "latency.png"):
        assert sorted(shown_in(folder / png)) == ["gpt (model.id=gpt-4o) [timing from cache]",
                                                   "gpt (model.id=gpt-4o-mini) [timing from cache]"]


def test_what_a_model_without_a_price_spent_is_unknown_unless_the_cache_answered():
    from runner.analysis.summary import frame, summarize

    def row(**values):
        return dict(run_id="r", model="mine", provider="openai_compatible", model_id="private", task="joke",
                    prompt="default", temperature=0.7, item="a", status="ok", cost_usd=None, **values)

    [called] = summarize(frame([row(repeat=0, spent_usd=None, cache_hit=False)])).to_dict("records")
    [replayed] = summarize(frame([row(repeat=0, spent_usd=0.0, cache_hit=True)])).to_dict("records")
    assert called["spent_usd"] is None and called["cost_usd"] is None and called["unpriced"] == 1
    assert replayed["spent_usd"] == 0 and replayed["cost_usd"] is None  # a cache hit paid nothing
