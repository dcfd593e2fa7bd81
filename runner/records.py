"""One record per model call, and the files a job writes them to as it runs.

`results.jsonl` holds the full record (the messages sent included, each image as a reference: where it came
from, its sha256, type and size); `results.csv` holds the contract's
columns plus a few more, one row per record. Both are appended and flushed after every call, so a
crash or kill loses no finished call. Every text is redacted as it is written (runner.redact): a key a
server echoed, or a password in a base_url, never reaches either file.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from runner import money
from runner.calls import recorded
from runner.redact import redact_value

# The contract's columns, in the contract's order; then the ones this project adds.
CONTRACT_COLUMNS = [
    "run_id", "model", "provider", "model_id", "task", "prompt", "temperature", "item", "repeat",
    "status", "error", "input_tokens", "output_tokens", "cached_tokens", "tokens_source", "cost_usd",
    "spent_usd", "latency_s", "ttft_s", "finish_reason", "retries", "cache_hit", "response",
]
EXTRA_COLUMNS = ["step", "job", "started_at", "max_tokens", "base_url", "note", "variant", "seed",
                 "reasoning_effort", "reasoning_tokens", "reasoning_tokens_source", "billed_input_tokens",
                 "billed_output_tokens", "tool_calls"]
CSV_COLUMNS = CONTRACT_COLUMNS + EXTRA_COLUMNS
# dollars are written to the last digit the price gives (a call can cost $0.0000112), never rounded
EXACT_COLUMNS = {"cost_usd", "spent_usd"}


@dataclass
class Record:
    run_id: str
    model: str
    provider: str
    model_id: str
    task: str
    prompt: str
    temperature: float | None  # what the model answered at: empty when none was sent and its default is unknown
    item: str
    repeat: int
    status: str = "ok"  # ok | error | skipped
    error: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    tokens_source: str = ""
    cost_usd: float | None = None
    spent_usd: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    finish_reason: str = ""
    retries: int = 0
    cache_hit: bool = False
    response: str = ""
    step: str = ""  # which call of a multi-step task (brochure: links, write; debate: turn-1-model...)
    job: str = ""  # the job's folder name inside a sweep
    started_at: str = ""  # when the call began (its first attempt), UTC
    max_tokens: int | None = None
    base_url: str = ""
    note: str = ""  # e.g. "page text cut at 5000 characters"
    variant: str = ""  # the job's overrides beyond the four cell dimensions (runner.variant)
    seed: int | None = None  # the seed sent to the provider; None: none sent (its API takes none, a cache hit)
    reasoning_effort: str = ""  # model.reasoning as sent; "" when the model thought at its own default
    reasoning_tokens: int | None = None  # of output_tokens, the thinking (None: not reported)
    reasoning_tokens_source: str = ""  # provider | estimate; "" when reasoning_tokens is empty
    reasoning: str = ""  # thinking text or thought summaries the API returned (JSONL only, never the response)
    # the tokens of every attempt the provider billed for this call in this run (retries of an empty answer
    # included; 0 for a cache hit): what spent_usd is the price of
    billed_input_tokens: int | None = None
    billed_output_tokens: int | None = None
    # the tools the model called in this answer: [{"id", "name", "arguments"}] (results.csv: name(arguments))
    tool_calls: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # task-specific extras (JSONL only)

    def data(self) -> dict[str, Any]:
        """The record as a plain dict (messages and details as they are: JSON values already)."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    def row(self, data: dict[str, Any] | None = None) -> dict[str, Any]:
        return csv_row(data or self.data())


FIELD_NAMES = [f.name for f in fields(Record)]


def csv_row(data: dict[str, Any]) -> dict[str, Any]:
    """A record (a Record's data, or a dict read back from results.jsonl) as one results.csv row."""
    row = {column: csv_value(data.get(column), exact=column in EXACT_COLUMNS) for column in CSV_COLUMNS}
    row["tool_calls"] = calls_text(data.get("tool_calls"))
    return row


def calls_text(calls: Any) -> str:
    """Tool calls as one results.csv cell: `name({"arg": "value"})`, several joined by `; `."""
    if not calls or not isinstance(calls, list):
        return ""
    shown = []
    for call in calls:
        arguments = call.get("arguments") if isinstance(call, dict) else None
        text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        shown.append(f"{call.get('name', '?') if isinstance(call, dict) else '?'}({text})")
    return "; ".join(shown)


def csv_value(value: Any, exact: bool = False) -> Any:
    """One value as results.csv (and summary.csv) write it: true/false, plain decimals, '' for None."""
    if type(value) is str:  # most of a row: nothing to do
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        if not exact:  # seconds and the like: 6 decimals, or 4 significant digits when smaller than that
            value = round(value, 6) if abs(value) >= 1e-6 or value == 0 else float(f"{value:.4g}")
        # 12 significant digits: more than any price gives, fewer than a sum's float noise (0.1 + 0.2 is
        # 0.30000000000000004); then the shortest exact digits, never 1.2e-07
        return money.exact(float(f"{value:.12g}"))
    return value


def write_csv(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write a whole results.csv from records, as RecordWriter writes a job's; returns the rows written."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow(csv_row(record))
            count += 1
    return count


class RecordWriter:
    """Appends records to a job's results.jsonl and results.csv as calls finish."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = folder / "results.jsonl"
        self.csv_path = folder / "results.csv"
        new_csv = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
        self._csv_file = open(self.csv_path, "a", encoding="utf-8", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_COLUMNS)
        if new_csv:
            self._csv.writeheader()
        self.count = 0

    def write(self, record: Record) -> None:
        data = record.data()  # not dataclasses.asdict: its deep copy of the messages was most of a write
        data["messages"] = recorded(record.messages)  # an image as a reference (source, sha256...), not its bytes
        data = redact_value(data)  # a key a server echoed, a password in a URL: never written
        self._jsonl.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._jsonl.flush()
        self._csv.writerow(record.row(data))
        self._csv_file.flush()
        self.count += 1

    def close(self) -> None:
        for handle in (self._jsonl, self._csv_file):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


STATUSES = ("ok", "error", "skipped")
# the JSON types each field of a record may hold; any field may also be missing or null (records written
# before it existed), and a number may be an integer where a float is expected, never true or false
_KINDS = {"str": {str}, "int": {int}, "float": {int, float}, "bool": {bool}, "list": {list}, "dict": {dict}}
_WORDS = {"str": "a text", "int": "a whole number", "float": "a number", "bool": "true or false", "list": "a list",
          "dict": "an object"}
_FIELD_KINDS = [(f.name, str(f.type).split("[")[0].split(" |")[0]) for f in fields(Record)]  # "int | None": int
_ALLOWED = tuple((name, frozenset(_KINDS[kind] | {type(None)})) for name, kind in _FIELD_KINDS)


def record_problem(record: dict) -> str | None:
    """What makes a results.jsonl record unusable (a field of the wrong type, an unknown status), or None.
    One set lookup per field: 100,000 records take a fraction of a second."""
    get = record.get
    for name, allowed in _ALLOWED:
        if type(get(name)) not in allowed:
            kind = dict(_FIELD_KINDS)[name]
            return f"{name} is {json.dumps(get(name))[:40]}, not {_WORDS[kind]}"
    if get("status", "ok") not in STATUSES:
        return f"status is {json.dumps(get('status'))[:40]}, not one of {', '.join(STATUSES)}"
    return None


def read_records(path: Path, skipped: list[str] | None = None,
                 check: Callable[[dict], str | None] | None = None) -> Iterator[dict]:
    """Records of a results.jsonl; a line that is not a whole record (cut short by a crash, damaged) or that
    `check` finds a problem in (record_problem: a field of the wrong type) is skipped, and said in `skipped`
    (file and line number) when a list is given."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                record = None
            if isinstance(record, dict):
                problem = check(record) if check is not None else None
                if problem is None:
                    yield record
                elif skipped is not None:
                    skipped.append(f"{path}, line {number}: {problem}")
            elif skipped is not None:
                why = "cut short (the file's last line, unfinished)" if not raw.endswith(b"\n") else "not a JSON record"
                skipped.append(f"{path}, line {number}: {why}")
