"""What a run's or sweep's folder holds, read back: one record per call from the jobs' results.jsonl files,
the command that made it and the config it ran with (Hydra's saved files), and the cells it was asked for.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from runner import variant, yaml_files
from runner.analysis.history import Sweep
from runner.calls import images_in, text_of
from runner.folders import JOB_ERROR_FILE, job_folders
from runner.records import read_records, record_problem

# what tells one call from another: a job resumed in place writes a finished call again
IDENTITY = ["run_id", "job", "model", "task", "prompt", "temperature", "variant", "item", "repeat", "step"]


# Texts shorter than this are shared between rows that hold the same one (a model's name, a status, an
# error, a second of started_at): a sweep of 100,000 calls holds each once, not 100,000 times.
SHARED_TEXT = 200


@dataclass
class Calls:
    """What a folder's results.jsonl files hold: one record per call, and what could not be used. The records
    are kept by column (a list per field, equal texts shared), so 100,000 of them take tens of megabytes,
    not the hundreds their dicts would."""

    columns: dict[str, list] = field(default_factory=dict)  # field -> one value per call (the last record of each)
    failed_jobs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # lines that are not a whole record: file and line

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), ()))

    def records(self) -> Iterator[dict]:
        """The calls as record dicts, made one at a time."""
        names = list(self.columns)
        for values in zip(*self.columns.values()):
            yield dict(zip(names, values))

    def table(self) -> pd.DataFrame:
        """The calls as a DataFrame. It takes the columns over one at a time, each list dropped as soon as it
        is converted, so that the calls are never held twice (at 100,000 calls, 30 MB less at the peak):
        afterwards this Calls holds no records."""
        data = {}
        for name in list(self.columns):
            data[name] = pd.Series(self.columns.pop(name))
        return pd.DataFrame(data, copy=False)


def _shared(value):
    return sys.intern(value) if isinstance(value, str) and len(value) < SHARED_TEXT else value


def read_calls(folder: Path) -> Calls:
    calls = Calls()
    columns: dict[str, list] = {}
    rows = 0
    for job in job_folders(folder):
        if (job / JOB_ERROR_FILE).exists():
            calls.failed_jobs.append(job.name)
        path = job / "results.jsonl"
        if not path.exists():
            continue
        for record in read_records(path, calls.skipped, check=record_problem):
            messages = record.pop("messages", None)  # what was sent stays in results.jsonl
            images = _images(messages)
            if images:  # what the report shows beside the answers (references: the bytes are in images/)
                record["images"] = images
            if str(record.get("step") or "").startswith("turn") and isinstance(messages, list):
                record["asked"] = _last_user_line(messages)  # a conversation's bubbles show the user's line
            if not record.get("details"):
                record["details"] = None  # an empty dict per call would cost more than its column
            for name in record.keys() - columns.keys():  # a field the earlier records lack
                columns[name] = [None] * rows
            for name, column in columns.items():
                column.append(_shared(record.get(name)))
            rows += 1
    # a job resumed in place writes a finished call again: the last record of each call counts
    earlier = _replaced(columns, rows)
    if earlier.any():
        columns = {name: [v for v, gone in zip(column, earlier) if not gone] for name, column in columns.items()}
    calls.columns = columns
    return calls


def _replaced(columns: dict[str, list], rows: int):
    """Which rows a later record of the same call replaces (a boolean array). Found by pandas over the
    identity columns rather than with a dict of every call's identity, which took 40 MB at 100,000 calls;
    a missing value and an empty one are the same identity."""
    identity = pd.DataFrame({name: pd.Series(columns.get(name) or [None] * rows, dtype=object).fillna("")
                             for name in IDENTITY})
    return identity.duplicated(keep="last").to_numpy(dtype=bool)


def _images(messages) -> list[dict] | None:
    """The image references a call's recorded messages hold (None: none, or not a list of messages)."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return None
    return [image for image in images_in(messages)
            if isinstance(image.get("sha256"), str) and isinstance(image.get("media_type"), str)] or None


def _last_user_line(messages: list) -> str | None:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return None


def command_line(folder: Path) -> str:
    """The command that produced this folder, from Hydra's saved overrides (or as runner.chat wrote it)."""
    written = folder / "command.txt"
    if written.is_file():
        return written.read_text(encoding="utf-8").strip()
    multirun = folder / "multirun.yaml"
    if multirun.exists():
        cfg = yaml_files.parse(multirun.read_text(encoding="utf-8")) or {}
        overrides = cfg.get("hydra", {}).get("overrides", {}).get("task", []) or []
        return " ".join(["python -m runner -m", *map(_quote, overrides)])
    saved = folder / ".hydra" / "overrides.yaml"
    if saved.exists():
        overrides = yaml_files.parse(saved.read_text(encoding="utf-8")) or []
        return " ".join(["python -m runner", *map(_quote, overrides)])
    return "python -m runner"


def _quote(override: str) -> str:
    return f"'{override}'" if any(c in override for c in " []{}()*?$!;&|<>\"") else override


def first_config(folder: Path) -> str:
    for job in job_folders(folder):
        path = job / ".hydra" / "config.yaml"
        if path.exists():
            return path.read_text(encoding="utf-8")
    return ""


def declared_sweep(folder: Path) -> str:
    """The part of a sweep declared in YAML (an experiment's hydra.sweeper.params) that the command line
    did not override: the command alone does not say what ran."""
    multirun = folder / "multirun.yaml"
    if not multirun.exists():
        return ""
    cfg = yaml_files.parse(multirun.read_text(encoding="utf-8")) or {}
    params = (cfg.get("hydra", {}).get("sweeper", {}) or {}).get("params") or {}
    overridden = {o.split("=", 1)[0].lstrip("+~") for o in cfg["hydra"].get("overrides", {}).get("task", []) or []}
    return " ".join(f"{key}={value}" for key, value in params.items() if key not in overridden)


def sweep_of(folder: Path, records: pd.DataFrame) -> Sweep:
    """The cells the run's jobs were configured with (so a crashed job still counts), else those recorded."""
    cells = set()
    for job in job_folders(folder):
        hydra_file, config_file = job / ".hydra" / "hydra.yaml", job / ".hydra" / "config.yaml"
        if not (hydra_file.exists() and config_file.exists()):
            continue
        choices = (yaml_files.parse(hydra_file.read_text(encoding="utf-8")) or {}).get("hydra", {}) \
            .get("runtime", {}).get("choices", {})
        config = yaml_files.parse(config_file.read_text(encoding="utf-8")) or {}
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml_files.parse(overrides_file.read_text(encoding="utf-8")) if overrides_file.exists() else []
        try:
            cells.add((str(choices["model"]), str(choices["task"]), str(choices["prompt"]),
                       float(config["temperature"]), variant.of(overrides or [])))
        except (KeyError, TypeError, ValueError):
            continue
    if not cells and not records.empty:
        cells = {(m, t, p, float(temp), v) for m, t, p, temp, v in
                 records[["model", "task", "prompt", "temperature", "variant"]].drop_duplicates()
                 .itertuples(index=False)}
    return Sweep(tuple(sorted(cells)))
