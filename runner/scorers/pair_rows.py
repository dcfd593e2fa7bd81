"""Pairwise verdicts are records too: one row per judged order (each pair of cells is judged A/B and B/A)
in the sweep's `pairwise.jsonl` and `pairwise.csv`, written whole each time the sweep is judged (a re-score
replaces them)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from runner.scorers.rows import read_rows, replace_tables

PAIRWISE_JSONL = "pairwise.jsonl"
PAIRWISE_CSV = "pairwise.csv"
PAIRWISE_FOLDER = "pairwise"  # the sweep's subfolder whose results.jsonl holds the pairwise judges' calls
TIE = "tie"


@dataclass
class PairRow:
    run_id: str
    scorer: str
    task: str
    item: str
    repeat: int
    cell_a: str  # the pair's cells, in a fixed order (runner.calling.pairwise.cell_name)
    cell_b: str
    order: str  # "AB": cell_a was shown as answer A; "BA": cell_b was
    judge: str  # the judge's model config name
    status: str = "ok"  # ok | error (the call failed, the verdict was not JSON) | skipped (no answer, no key, budget)
    better: str = ""  # the judge's pick by position: A, B or tie
    winner: str = ""  # the pick as a cell: cell_a, cell_b, or `tie`
    reason: str = ""
    cost_usd: float | None = None  # what the judging call costs at list price
    judge_model_id: str = ""  # the judge as it was called: its config's model id and the run's judge settings
    judge_temperature: float | None = None
    judge_max_tokens: int | None = None


COLUMNS = [f.name for f in fields(PairRow)]


def write_pairs(folder: Path, rows: Iterable[PairRow]) -> int:
    """Replace the sweep's pairwise.jsonl and pairwise.csv with these rows (written aside, then moved in)."""
    return replace_tables(folder, PAIRWISE_JSONL, PAIRWISE_CSV, COLUMNS,
                          [{f.name: getattr(row, f.name) for f in fields(PairRow)} for row in rows])


def is_judging_folder(job: Path, root: Path) -> bool:
    """The sweep's pairwise judges' folder: it holds calls (results.jsonl) but is no job of the sweep."""
    return job.parent == root and job.name == PAIRWISE_FOLDER and not (job / ".hydra").exists()


def remove_pairs(folder: Path) -> None:
    for name in (PAIRWISE_JSONL, PAIRWISE_CSV):
        (folder / name).unlink(missing_ok=True)


def read_pairs(folder: Path, skipped: list[str] | None = None) -> list[dict]:
    return read_rows(folder / PAIRWISE_JSONL, skipped)
