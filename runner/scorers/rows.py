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
# how a skipped row's reason starts when a task's default scorer does not apply to the item (a field it
# reads is missing): the report lists these apart from calls that were skipped
NOT_APPLICABLE = "n/a: "


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
    # the judge as it was called, the same in every cell: conf/model/<judge>.yaml's model id, at the
    # run's judge.temperature and judge.max_tokens
    judge_model_id: str = ""
    judge_temperature: float | None = None
    judge_max_tokens: int | None = None


COLUMNS = [f.name if f.name != "passed" else "pass" for f in fields(ScoreRow)]


def _data(row: ScoreRow) -> dict:
    data = {f.name: getattr(row, f.name) for f in fields(ScoreRow)}
    data["pass"] = data.pop("passed")
    return {column: data[column] for column in COLUMNS}


def write_scores(folder: Path, rows: Iterable[ScoreRow]) -> int:
    """Replace the job's scores.jsonl and scores.csv with these rows (written aside, then moved in)."""
    return replace_tables(folder, SCORES_JSONL, SCORES_CSV, COLUMNS, [_data(row) for row in rows])


def replace_tables(folder: Path, jsonl: str, table: str, columns: list[str], datas: list[dict]) -> int:
    """Write rows as folder/jsonl and folder/table (CSV with `columns`), each written aside and then moved in,
    so a reader never sees half a file; keys redacted. Returns the rows written."""
    datas = [redact_value(data) for data in datas]
    for name, write in ((jsonl, _write_jsonl), (table, _write_csv)):
        path = folder / name
        partial = path.with_name(path.name + ".partial")
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            write(handle, datas, columns)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
    return len(datas)


def _write_jsonl(handle, datas: list[dict], columns: list[str]) -> None:
    for data in datas:
        handle.write(json.dumps(data, ensure_ascii=False) + "\n")


def _write_csv(handle, datas: list[dict], columns: list[str]) -> None:
    writer = csv.DictWriter(handle, fieldnames=columns)
    writer.writeheader()
    for data in datas:
        writer.writerow({k: csv_value(v, exact=k == "cost_usd") for k, v in data.items()})


def read_rows(path: Path, skipped: list[str] | None = None) -> list[dict]:
    """A scores or pairwise JSONL file's rows (none when it does not exist); damaged lines go to `skipped`."""
    return list(read_records(path, skipped)) if path.exists() else []


def read_scores(folder: Path, skipped: list[str] | None = None) -> list[dict]:
    return read_rows(folder / SCORES_JSONL, skipped)
