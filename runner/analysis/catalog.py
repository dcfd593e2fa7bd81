"""The runs runner.view shows: those the history database holds, and run folders under outputs/ that it
does not; read again for every page, since runs keep arriving. A run's calls come from its folder while
it is there, else from the history."""
from __future__ import annotations

import csv
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from runner.analysis import history
from runner.variant import Labels


@dataclass
class Entry:
    """One run the viewer knows: from the history (run set) or only a folder under outputs/."""

    key: str
    folder: Path
    run: history.Run | None = None
    calls: int | None = None
    ok: int | None = None
    error: int | None = None
    skipped: int | None = None
    spent_usd: float | None = None
    votes: list | None = None

    @property
    def name(self) -> str:
        return self.run.run_id if self.run else self.folder.name

    @property
    def command(self) -> str:
        if self.run:
            return self.run.command
        from runner.analysis.run_folder import command_line

        return command_line(self.folder) if self.folder.is_dir() else ""

    @property
    def scores(self) -> str:
        """The best-scoring cell of the run's summary.csv with its 95% interval, and how many were scored;
        "" for a run without scores (scores live in the run's folder, not the history)."""
        return best_score(self.folder / "summary.csv")

    @property
    def started(self) -> str:
        """When it started (UTC): when its first call began, as the history keeps it; for a folder the history
        does not hold, the earliest start among each job's first recorded call (else when the folder last
        changed)."""
        if self.run:
            return self.run.started_at[:19].replace("T", " ")
        first = first_calls_started(self.folder)
        if first:
            return first[:19].replace("T", " ")
        changed = datetime.fromtimestamp(self.folder.stat().st_mtime, timezone.utc) if self.folder.exists() else None
        return changed.strftime("%Y-%m-%d %H:%M:%S") if changed else ""


def first_calls_started(folder: Path) -> str:
    """The earliest started_at of each job's first record: one line read per job, whatever the run's size."""
    from runner.folders import job_folders

    found = []
    for job in job_folders(folder) if folder.is_dir() else ():
        try:
            with (job / "results.jsonl").open("rb") as handle:
                record = json.loads(handle.readline() or b"null")
        except (OSError, ValueError):
            continue
        started = record.get("started_at") if isinstance(record, dict) else None
        if isinstance(started, str) and started:
            found.append(started)
    return min(found, default="")


def best_score(path: Path) -> str:
    """The best cell of a summary.csv, read once per version of the file (the viewer asks on every page)."""
    try:
        stat = path.stat()
    except OSError:
        return ""
    return _best_score(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4096)
def _best_score(path: Path, mtime_ns: int, size: int) -> str:
    try:
        with path.open(encoding="utf-8", newline="") as file:
            rows = [row for row in csv.DictReader(file) if row.get("score")]
    except (OSError, UnicodeDecodeError, csv.Error):
        return ""
    try:
        scored = sorted(((float(row["score"]), row) for row in rows), key=lambda pair: pair[0], reverse=True)
    except ValueError:
        return ""
    if not scored:
        return ""
    score, row = scored[0]
    label = Labels(r.get("variant") or "" for _, r in scored)(row.get("model", ""), row.get("variant") or "")
    interval = f" [{float(row['score_low']):.2f}, {float(row['score_high']):.2f}]" \
        if row.get("score_low") and row.get("score_high") else ""
    cells = f" (best of {len(scored)} cells)" if len(scored) > 1 else ""
    return f"{label} {score:.2f}{interval}{cells}"


class Catalog:
    """What the history and the outputs folder hold, read again for every page (runs keep arriving)."""

    def __init__(self, history_path: Path, outputs: Path) -> None:
        self.history_path = Path(history_path)
        self.outputs = Path(outputs)

    def entries(self) -> list[Entry]:
        found: list[Entry] = []
        known: set[str] = set()
        if self.history_path.is_file():
            totals = self._totals()
            votes = history.votes(self.history_path)
            for run in history.runs(self.history_path):
                counts = totals.get(run.id, (None,) * 5)
                found.append(Entry(f"h{run.id}", Path(run.folder), run, *counts, votes=votes.get(run.id, [])))
                known.add(run.folder)
        from runner.folders import job_folders

        for folder in sorted(self.outputs.glob("*/*")) if self.outputs.is_dir() else []:
            resolved = str(folder.resolve())
            if folder.is_dir() and resolved not in known and job_folders(folder):
                digest = hashlib.sha1(resolved.encode()).hexdigest()[:12]
                found.append(Entry(f"f{digest}", folder.resolve()))
        return found

    def _totals(self) -> dict[int, tuple]:
        db = history.connect(self.history_path)
        try:
            return {row[0]: tuple(row[1:]) for row in
                    db.execute("SELECT id, calls, ok, error, skipped, spent_usd FROM runs")}
        finally:
            db.close()

    def find(self, key: str) -> Entry | None:
        return next((e for e in self.entries() if e.key == key), None)

    def calls(self, entry: Entry):
        """The run's calls: from its folder when it is still there, else from the history."""
        from runner.analysis.run_folder import read_calls
        from runner.analysis.summary import frame
        from runner.folders import job_folders

        if entry.folder.is_dir() and job_folders(entry.folder):
            return frame(read_calls(entry.folder).table())
        return history.calls(self.history_path, entry.run)

    def scores(self, entry: Entry):
        """The run's score rows: from its folder's scores.jsonl files when it is still there, else the history."""
        from runner.analysis import scores
        from runner.folders import job_folders

        if entry.folder.is_dir() and job_folders(entry.folder):
            return scores.read(entry.folder)
        return scores.recorded(self.history_path, entry.run)
