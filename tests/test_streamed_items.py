"""Items from a CSV or JSONL file stream: checked in one pass before any call without being held, then read
again item by item as the calls go; and the comparison of a large run holds its calls by column, so its
memory stays far below what a dict per call would take."""
from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import pytest

from runner.analysis.build import build_comparison
from runner.records import Record, RecordWriter


def jsonl_items(path: Path, count: int) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            out.write(json.dumps({"id": f"item-{i:06d}", "audience": f"readers of the newsletter number {i}",
                                  "notes": "x" * 200}) + "\n")
    return path


def peak_mb(action) -> float:
    """The most memory Python allocated while `action` ran, above what was allocated before it."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_an_items_file_is_checked_without_being_held(run_settings, tmp_path):
    small = jsonl_items(tmp_path / "small.jsonl", 500)
    large = jsonl_items(tmp_path / "large.jsonl", 20_000)  # as dicts: about 20 MB
    settings = {}
    small_mb = peak_mb(lambda: settings.setdefault("small", run_settings("model=scripted", f"task.inputs={small}")))
    large_mb = peak_mb(lambda: settings.setdefault("large", run_settings("model=scripted", f"task.inputs={large}")))
    assert len(settings["large"].task.inputs) == 20_000
    assert large_mb - small_mb < 3, f"checking 20,000 items took {large_mb - small_mb:.1f} MB more than 500"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_every_item_of_a_file_is_called_in_order_with_its_repeats(scripted, run_settings, run_here, tmp_path, suffix):
    path = tmp_path / f"items{suffix}"
    if suffix == ".csv":
        with open(path, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["audience"])
            writer.writerows([[f"group {i}, with a comma"] for i in range(50)])
    else:
        path.write_text("".join(json.dumps({"audience": f"group {i}, with a comma"}) + "\n" for i in range(50)),
                        encoding="utf-8")
    records, tally = run_here(run_settings("model=scripted", f"task.inputs={path}", repeats=2, cache=False))
    assert tally.ok == 100
    assert sorted((r["item"], r["repeat"]) for r in records) == \
        sorted((f"group {i}, with a comma", r) for i in range(50) for r in range(2))
    sent = {m["content"] for request in scripted.received for m in request.messages if m["role"] == "user"}
    assert sent == {f"Tell a light-hearted joke for an audience of group {i}, with a comma" for i in range(50)}


@pytest.mark.slow  # the comparison of 20,000 calls
def test_the_comparison_of_many_calls_holds_them_by_column(tmp_path):
    folder = tmp_path / "run"
    with RecordWriter(folder) as writer:
        for i in range(20_000):
            writer.write(Record(run_id="run", model="gpt", provider="openai", model_id="gpt-4.1-mini", task="joke",
                                prompt="default", temperature=0.7, item=f"group {i}", repeat=0, input_tokens=26,
                                output_tokens=13, tokens_source="provider", cost_usd=3.12e-05, spent_usd=3.12e-05,
                                latency_s=0.2, finish_reason="stop", response=f"A joke for group {i}.",
                                started_at="2026-11-30T13:04:20+00:00", max_tokens=256, base_url="http://127.0.0.1/v1",
                                messages=[{"role": "user", "content": f"Tell a joke for group {i}"}]))
    from runner.analysis.run_folder import read_calls

    calls = {}
    used = peak_mb(lambda: calls.setdefault("read", read_calls(folder)))
    assert len(calls["read"]) == 20_000
    # a dict per call took 75 MB for 20,000 such calls (3.7 KB a call); by column, with equal texts shared, 18 MB;
    # without a dict of every call's identity (to find a resumed job's repeated records), 14 to 18 MB
    assert used < 30, f"reading 20,000 calls took {used:.1f} MB"
    comparison = build_comparison(folder, history_path=tmp_path / "history.sqlite")
    assert len(comparison.records) == 20_000 and comparison.exit_code == 0


def test_a_call_written_again_by_a_resumed_job_counts_once_with_its_last_record(tmp_path):
    from runner.analysis.run_folder import read_calls

    folder = tmp_path / "run"
    base = dict(run_id="run", model="gpt", provider="openai", model_id="m", task="joke", prompt="default",
                temperature=0.7, repeat=0)
    with RecordWriter(folder) as writer:
        writer.write(Record(**base, item="a", status="error", error="HTTP 500"))
        writer.write(Record(**base, item="b", response="first b"))
        writer.write(Record(**base, item="a", response="a, resumed"))  # the same call, answered this time
        writer.write(Record(**{**base, "repeat": 1}, item="b", response="b again, another repeat"))
    with open(folder / "results.jsonl", "a", encoding="utf-8") as handle:  # an older record without a job field
        handle.write(json.dumps({**base, "item": "c", "status": "ok", "response": "c"}) + "\n")
        handle.write(json.dumps({**base, "item": "c", "job": "", "status": "ok", "response": "c, last"}) + "\n")
    table = read_calls(folder).table()
    assert sorted(zip(table["item"], table["repeat"], table["response"])) == [
        ("a", 0, "a, resumed"), ("b", 0, "first b"), ("b", 1, "b again, another repeat"), ("c", 0, "c, last")]
