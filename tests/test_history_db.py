"""The history database in process: what a run's row says, re-recording a folder, which run is the previous
one, and what makes two runs the same sweep (the end-to-end runs are in test_history.py and test_reports.py)."""
from __future__ import annotations

import hashlib

from runner.analysis import history
from runner.analysis.summary import frame
from runner.records import Record

CELL = ("gpt", "joke", "default", 0.7, "")


def calls(run_id: str, started: str, *statuses: str, cost: float | None = 0.25, answer: str = "hi"):
    return frame([Record(run_id=run_id, model="gpt", provider="openai", model_id="gpt-4o-mini", task="joke",
                         prompt="default", temperature=0.7, item=str(i), repeat=0, status=status,
                         response=answer if status == "ok" else "", started_at=f"{started}:{i:02d}",
                         cost_usd=cost if status == "ok" else None,
                         # a failed or skipped call of a priced model paid nothing; of an unpriced one, unknown
                         spent_usd=cost if status == "ok" or cost is None else 0.0).data()
                  for i, status in enumerate(statuses)])


def folder(tmp_path, name: str):
    made = tmp_path / name
    made.mkdir(exist_ok=True)  # a run's folder exists when it is recorded
    return made


def row(path, run):
    db = history.connect(path)
    found = dict(zip(history.RUN_COLUMNS, db.execute(
        f"SELECT {', '.join(history.RUN_COLUMNS)} FROM runs WHERE id = ?", (run.id,)).fetchone()))
    db.close()
    return found


def test_a_runs_row_counts_its_calls_and_what_they_cost(tmp_path):
    path = tmp_path / "history.sqlite"
    sweep = history.Sweep((CELL,))
    made = calls("run-a", "2026-01-02T10:00", "ok", "error", "skipped", "ok")
    run = history.record(path, folder(tmp_path, "a"), made, sweep, "python -m runner")
    found = row(path, run)
    assert (found["calls"], found["ok"], found["error"], found["skipped"]) == (4, 2, 1, 1)
    assert found["cost_usd"] == 0.5 and found["spent_usd"] == 0.5
    assert run.run_id == "run-a" and run.started_at == "2026-01-02T10:00:00"  # the first call's start
    assert run.label == "run-a (2026-01-02 10:00 UTC)" and run.command == "python -m runner"
    assert run.sweep == "model=gpt task=joke prompt=default temperature=0.7"
    back = history.calls(path, run)
    assert list(back.status) == ["ok", "error", "skipped", "ok"] and list(back.cost_usd.fillna(-1)) == [
        0.25, -1, -1, 0.25]


def test_a_run_with_no_known_price_costs_and_spent_nothing_known_not_0(tmp_path):
    path = tmp_path / "history.sqlite"
    for name, statuses in (("a", ("ok",)), ("b", ("error", "error"))):  # answered, or every call failed
        run = history.record(path, folder(tmp_path, name), calls(name, "2026-01-02T10:00", *statuses, cost=None),
                             history.Sweep((CELL,)), "c")
        found = row(path, run)
        assert found["cost_usd"] is None and found["spent_usd"] is None, name


def test_recording_a_folder_again_replaces_its_run(tmp_path):
    path = tmp_path / "history.sqlite"
    sweep = history.Sweep((CELL,))
    where = folder(tmp_path, "a")
    first = history.record(path, where, calls("run-a", "2026-01-02T10:00", "error", "ok"), sweep, "c")
    assert row(path, first)["cost_usd"] == 0.25  # one priced call is a known cost
    again = history.record(path, where, calls("run-a", "2026-01-02T10:00", "ok", "ok", "ok"), sweep, "c")
    assert again.id == first.id and len(history.runs(path)) == 1
    assert len(history.calls(path, again)) == 3 and row(path, again)["ok"] == 3


def test_the_previous_run_is_the_one_just_before_of_the_same_sweep(tmp_path):
    path = tmp_path / "history.sqlite"
    sweep, other = history.Sweep((CELL,)), history.Sweep((("claude", "joke", "default", 0.7, ""),))
    made = [history.record(path, folder(tmp_path, name), calls(name, started, "ok"), s, "c")
            for name, started, s in [("one", "2026-01-01T10:00", sweep), ("two", "2026-01-02T10:00", sweep),
                                     ("elsewhere", "2026-01-03T10:00", other), ("three", "2026-01-04T10:00", sweep)]]
    one, two, elsewhere, three = made
    assert history.previous(path, three).run_id == "two"
    assert history.previous(path, two).run_id == "one"
    assert history.previous(path, one) is None and history.previous(path, elsewhere) is None
    assert [r.run_id for r in history.runs(path)] == ["one", "two", "elsewhere", "three"]
    assert [r.run_id for r in history.runs(path, sweep.fingerprint)] == ["one", "two", "three"]
    assert history.find(path, "two") == two and history.find(path, str(tmp_path / "three")) == three
    assert history.find(path, "nothing") is None
    assert history.runs(tmp_path / "none.sqlite") == []


def test_the_newest_run_of_an_id_is_the_one_found(tmp_path):
    path = tmp_path / "history.sqlite"
    sweep = history.Sweep((CELL,))
    history.record(path, folder(tmp_path, "a"), calls("same", "2026-01-01T10:00", "ok"), sweep, "c")
    newer = history.record(path, folder(tmp_path, "b"), calls("same", "2026-01-02T10:00", "ok"), sweep, "c")
    assert history.find(path, "same") == newer


def test_a_sweep_without_variants_keeps_the_fingerprint_it_had_before_variants():
    cells = (CELL, ("gpt", "joke", "concise", 0.0, ""))
    before_variants = hashlib.sha256(b"gpt\tjoke\tdefault\t0.7\ngpt\tjoke\tconcise\t0").hexdigest()[:16]
    assert history.Sweep(cells).fingerprint == before_variants
    with_variant = history.Sweep((("gpt", "joke", "default", 0.7, "max_tokens=64"),))
    assert with_variant.fingerprint != history.Sweep((CELL,)).fingerprint
    assert history.Sweep(cells).description == "model=gpt task=joke prompt=default,concise temperature=0.7,0"


def test_the_history_file_is_the_configured_one_or_outputs(tmp_path):
    assert history.path_for(None) == history.DEFAULT_PATH
    assert history.path_for(str(tmp_path / "h.sqlite")) == tmp_path / "h.sqlite"


def test_human_votes_are_kept_per_run_and_replaced_when_voted_again(tmp_path):
    path = tmp_path / "deep" / "history" / "history.sqlite"  # made with its folders
    sweep = history.Sweep((CELL,))
    one = history.record(path, folder(tmp_path, "a"), calls("one", "2026-01-01T10:00", "ok"), sweep, "c")
    two = history.record(path, folder(tmp_path, "b"), calls("two", "2026-01-02T10:00", "ok"), sweep, "c")
    side_a = {"model": "gpt", "prompt": "default", "temperature": 0.7, "variant": ""}
    side_b = {"model": "claude", "prompt": "concise", "temperature": 0.0, "variant": "max_tokens=64"}
    vote = {"item": "0", "step": "", "a": side_a, "b": side_b, "winner": "b", "voted_at": "2026-01-03T10:00:00"}
    history.record_votes(path, one, [vote, {**vote, "item": "1", "winner": "tie"}])
    history.record_votes(path, two, [{**vote, "winner": "a"}])
    assert history.votes(path) == {one.id: [vote, {**vote, "item": "1", "winner": "tie"}],
                                   two.id: [{**vote, "winner": "a"}]}
    history.record_votes(path, one, [{**vote, "winner": "a"}])  # voting again replaces the run's votes
    assert history.votes(path, [one.id]) == {one.id: [{**vote, "winner": "a"}]}
    assert history.votes(path, [two.id]) == {two.id: [{**vote, "winner": "a"}]}
    assert history.votes(tmp_path / "none.sqlite") == {}


def test_the_per_model_columns_give_the_same_rows_as_every_column(tmp_path):
    """The trend reads only PER_MODEL_COLUMNS of earlier runs (not every answer's text): the rows per_model
    makes of them are the ones it makes of whole calls, cache hits, timings and failures included."""
    from runner.analysis.summary import PER_MODEL_COLUMNS, per_model

    path = tmp_path / "history.sqlite"
    made = calls("run-a", "2026-01-02T10:00", "ok", "error", "ok", "ok", "skipped", "ok")
    made.loc[[0, 2], "cache_hit"] = True
    made["latency_s"] = [0.5, None, 0.7, 1.9, None, 1.1]
    made["ttft_s"] = [0.1, None, 0.2, 0.4, None, None]
    made["input_tokens"] = [10, None, 12, 11, None, 13]
    made["output_tokens"] = [5, None, 6, 7, None, 8]
    made.loc[3, "variant"] = "max_tokens=8"
    run = history.record(path, folder(tmp_path, "a"), made, history.Sweep((CELL,)), "python -m runner")
    whole = per_model(history.calls(path, run))
    assert len(whole) == 2 and whole.timing_from_cache.tolist() == [0, 0]
    assert per_model(history.calls(path, run, PER_MODEL_COLUMNS)).equals(whole)
