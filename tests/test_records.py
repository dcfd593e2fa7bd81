"""A job's files as it writes them, in process: results.csv's columns and values as the contract names them,
results.jsonl's full records, appending on resume, and damaged lines named when read back."""
from __future__ import annotations

import csv
import json

from runner.records import Record, RecordWriter, read_records, write_csv

# CONTRACT.md's literal list, in its order: the columns users' scripts read by name
CONTRACT = ("run_id, model, provider, model_id, task, prompt, temperature, item, repeat, status, error, "
            "input_tokens, output_tokens, cached_tokens, tokens_source, cost_usd, spent_usd, latency_s, ttft_s, "
            "finish_reason, retries, cache_hit, response").split(", ")


def record(**extra) -> Record:
    base = dict(run_id="r1", model="gpt", provider="openai", model_id="gpt-4o-mini", task="joke", prompt="default",
                temperature=0.7, item="0", repeat=0)
    return Record(**{**base, **extra})


def rows(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def test_results_csv_has_the_contracts_columns_and_writes_values_plainly(tmp_path):
    with RecordWriter(tmp_path) as writer:
        writer.write(record(input_tokens=12, output_tokens=3, cost_usd=0.0000112, spent_usd=0.0, latency_s=1.23456789,
                            ttft_s=0.00000012344, cache_hit=True, response="a, \"quoted\"\nanswer"))
        writer.write(record(repeat=1, status="error", error="HTTP 500: server error", latency_s=0.000001,
                            ttft_s=0.0, cached_tokens=None))
    header, (ok, failed) = rows(tmp_path / "results.csv")
    assert header[:len(CONTRACT)] == CONTRACT
    assert ok["cost_usd"] == "0.0000112" and ok["spent_usd"] == "0.0"  # every digit, never 1.12e-05
    assert ok["latency_s"] == "1.234568"  # seconds: six decimals
    assert ok["ttft_s"] == "0.0000001234"  # smaller than that: four significant digits, still no exponent
    assert ok["cache_hit"] == "true" and failed["cache_hit"] == "false"
    assert ok["response"] == "a, \"quoted\"\nanswer" and ok["temperature"] == "0.7"
    assert failed["latency_s"] == "0.000001" and failed["ttft_s"] == "0.0"
    with RecordWriter(tmp_path / "more") as more:
        more.write(record(latency_s=0.987654321, ttft_s=0.0000009876543))
    (under_a_second,) = rows(tmp_path / "more" / "results.csv")[1]
    assert (under_a_second["latency_s"], under_a_second["ttft_s"]) == ("0.987654", "0.0000009877")
    assert failed["cached_tokens"] == "" and failed["cost_usd"] == ""  # unknown is empty, not 0
    assert failed["status"] == "error" and failed["error"] == "HTTP 500: server error"
    assert failed["retries"] == "0" and failed["tokens_source"] == ""  # a row that says nothing claims nothing
    assert writer.count == 2
    # closed when the job ends: an open file cannot be moved aside on Windows (a re-used folder moves it)
    assert writer._jsonl.closed and writer._csv_file.closed


def test_a_resumed_job_appends_under_the_one_header(tmp_path):
    with RecordWriter(tmp_path) as writer:
        writer.write(record())
    with RecordWriter(tmp_path) as writer:
        writer.write(record(repeat=1))
        assert writer.count == 1
    header, written = rows(tmp_path / "results.csv")
    assert [r["repeat"] for r in written] == ["0", "1"] and header[0] == "run_id"
    assert [r["repeat"] for r in read_records(tmp_path / "results.jsonl")] == [0, 1]


def test_a_jobs_folder_is_made_with_its_parents(tmp_path):
    with RecordWriter(tmp_path / "sweep" / "3") as writer:
        writer.write(record())
    assert len(rows(tmp_path / "sweep" / "3" / "results.csv")[1]) == 1


def test_an_empty_results_csv_gets_its_header(tmp_path):
    (tmp_path / "results.csv").write_text("")
    with RecordWriter(tmp_path) as writer:
        writer.write(record())
    header, written = rows(tmp_path / "results.csv")
    assert header[:len(CONTRACT)] == CONTRACT and len(written) == 1


def test_results_jsonl_keeps_the_whole_record_and_no_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-records-test-secret-99")
    messages = [{"role": "user", "content": "héllo"}]
    with RecordWriter(tmp_path) as writer:
        writer.write(record(messages=messages, details={"pages": ["https://example.com/"]},
                            error="rejected sk-records-test-secret-99", status="error"))
    (kept,) = read_records(tmp_path / "results.jsonl")
    assert kept["messages"] == messages and kept["details"] == {"pages": ["https://example.com/"]}
    assert kept["error"] == "rejected [redacted]"
    for name in ("results.jsonl", "results.csv"):
        assert b"sk-records-test-secret-99" not in (tmp_path / name).read_bytes()
    assert "héllo" in (tmp_path / "results.jsonl").read_text(encoding="utf-8")  # UTF-8, not \\u escapes


def test_damaged_lines_are_skipped_and_named(tmp_path):
    path = tmp_path / "results.jsonl"
    good = json.dumps(record().data())
    path.write_bytes(f"{good}\n\n[1, 2]\n{{not json\n\xff\n{good}\n{good[:30]}".encode("utf-8", "surrogateescape")
                     .replace("\xff".encode(), b"\xff"))
    skipped: list[str] = []
    assert len(list(read_records(path, skipped))) == 2
    assert skipped == [f"{path}, line 3: not a JSON record", f"{path}, line 4: not a JSON record",
                       f"{path}, line 5: not a JSON record",
                       f"{path}, line 7: cut short (the file's last line, unfinished)"]
    assert len(list(read_records(path))) == 2


def test_write_csv_writes_what_the_job_writer_writes(tmp_path):
    data = [record(cost_usd=0.0000112).data(), record(repeat=1).data()]
    assert write_csv(tmp_path / "all.csv", data) == 2
    with RecordWriter(tmp_path / "job") as writer:
        for r in data:
            writer.write(Record(**r))
    assert (tmp_path / "all.csv").read_text() == (tmp_path / "job" / "results.csv").read_text()
