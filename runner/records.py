"""One record per model call, and the files a job writes them to as it runs.

`results.jsonl` holds the full record (the messages sent included); `results.csv` holds the contract's
columns plus a few more, one row per record. Both are appended and flushed after every call, so a
crash or kill loses no finished call. Every text is redacted as it is written (runner.redact): a key a
server echoed, or a password in a base_url, never reaches either file.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from runner.redact import redact_value

# The contract's columns, in the contract's order; then the ones this project adds.
CONTRACT_COLUMNS = [
    "run_id", "model", "provider", "model_id", "task", "prompt", "temperature", "item", "repeat",
    "status", "error", "input_tokens", "output_tokens", "cached_tokens", "tokens_source", "cost_usd",
    "spent_usd", "latency_s", "ttft_s", "finish_reason", "retries", "cache_hit", "response",
]
EXTRA_COLUMNS = ["step", "job", "started_at", "max_tokens", "base_url", "note"]
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
    temperature: float
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
    started_at: str = ""
    max_tokens: int | None = None
    base_url: str = ""
    note: str = ""  # e.g. "page text cut at 5000 characters"
    messages: list[dict] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # task-specific extras (JSONL only)

    def data(self) -> dict[str, Any]:
        """The record as a plain dict (messages and details as they are: JSON values already)."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    def row(self, data: dict[str, Any] | None = None) -> dict[str, Any]:
        data = data or self.data()
        return {column: _cell(data[column], exact=column in EXACT_COLUMNS) for column in CSV_COLUMNS}


FIELD_NAMES = [f.name for f in fields(Record)]


def _cell(value: Any, exact: bool = False) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and exact:
        return format(Decimal(repr(value)), "f")  # the float's shortest exact digits, without an exponent
    if isinstance(value, float):
        return round(value, 6) if abs(value) >= 1e-6 or value == 0 else f"{value:.3e}"
    return value


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

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(path: Path) -> Iterator[dict]:
    """Records of a results.jsonl; a line cut short by a crash is skipped."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
