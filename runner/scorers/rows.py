"""Scores are records too: one row per scorer (and judge) per answer, in each job's `scores.jsonl` and
`scores.csv`, written whole each time the job's answers are scored (a re-score replaces them)."""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from runner.records import csv_value, read_records
from runner.redact import redact_value

SCORES_JSONL = "scores.jsonl"
SCORES_CSV = "scores.csv"


@dataclass
class ScoreRow:
    run_id: str
    job: str
    model: str
    task: str
    prompt: str
    temperature: float
    variant: str
    item: str
    repeat: int
    step: str  # the step of the answer scored ("" for a single-call task)
    scorer: str
    status: str = "ok"  # ok | error (the check raised, the verdict was not JSON) | skipped (no key, budget)
    score: float | None = None  # 0 to 1; None unless ok
    passed: bool | None = None
    reason: str = ""
    judge: str = ""  # the judge's model config name, for judge scorers
    cost_usd: float | None = None  # what the judging call costs at list price


COLUMNS = [f.name if f.name != "passed" else "pass" for f in fields(ScoreRow)]


def _data(row: ScoreRow) -> dict:
    data = {f.name: getattr(row, f.name) for f in fields(ScoreRow)}
    data["pass"] = data.pop("passed")
    return {column: data[column] for column in COLUMNS}


def write_scores(folder: Path, rows: Iterable[ScoreRow]) -> int:
    """Replace the job's scores.jsonl and scores.csv with these rows (written aside, then moved in)."""
    datas = [redact_value(_data(row)) for row in rows]
    jsonl, table = folder / SCORES_JSONL, folder / SCORES_CSV
    for path, write in ((jsonl, _write_jsonl), (table, _write_csv)):
        partial = path.with_name(path.name + ".partial")
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            write(handle, datas)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
    return len(datas)


def _write_jsonl(handle, datas: list[dict]) -> None:
    for data in datas:
        handle.write(json.dumps(data, ensure_ascii=False) + "\n")


def _write_csv(handle, datas: list[dict]) -> None:
    writer = csv.DictWriter(handle, fieldnames=COLUMNS)
    writer.writeheader()
    for data in datas:
        writer.writerow({k: csv_value(v, exact=k == "cost_usd") for k, v in data.items()})


def read_scores(folder: Path, skipped: list[str] | None = None) -> list[dict]:
    path = folder / SCORES_JSONL
    return list(read_records(path, skipped)) if path.exists() else []
