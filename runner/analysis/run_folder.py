"""What a run's or sweep's folder holds, read back: one record per call from the jobs' results.jsonl files,
the command that made it and the config it ran with (Hydra's saved files), and the cells it was asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from runner import variant
from runner.analysis.history import Sweep
from runner.folders import JOB_ERROR_FILE, job_folders
from runner.records import read_records

# what tells one call from another: a job resumed in place writes a finished call again
IDENTITY = ["run_id", "job", "model", "task", "prompt", "temperature", "variant", "item", "repeat", "step"]


@dataclass
class Calls:
    """What a folder's results.jsonl files hold: one record per call, and what could not be used."""

    records: list[dict] = field(default_factory=list)  # the last record of each call
    failed_jobs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # lines that are not a whole record: file and line


def _identity(record: dict) -> tuple:
    return tuple("" if record.get(k) is None else record.get(k) for k in IDENTITY)


def read_calls(folder: Path) -> Calls:
    calls = Calls()
    by_call: dict[tuple, dict] = {}
    for job in job_folders(folder):
        if (job / JOB_ERROR_FILE).exists():
            calls.failed_jobs.append(job.name)
        path = job / "results.jsonl"
        if path.exists():
            for record in read_records(path, calls.skipped):
                messages = record.pop("messages", None)  # what was sent stays in results.jsonl
                if str(record.get("step") or "").startswith("turn") and isinstance(messages, list):
                    record["asked"] = _last_user_line(messages)  # a conversation's bubbles show the user's line
                # a job resumed in place writes a finished call again: the last record of each call counts
                key = _identity(record)
                by_call.pop(key, None)
                by_call[key] = record
    calls.records = list(by_call.values())
    return calls


def _last_user_line(messages: list) -> str | None:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content", ""))
    return None


def command_line(folder: Path) -> str:
    """The command that produced this folder, from Hydra's saved overrides (or as runner.chat wrote it)."""
    written = folder / "command.txt"
    if written.is_file():
        return written.read_text(encoding="utf-8").strip()
    multirun = folder / "multirun.yaml"
    if multirun.exists():
        cfg = yaml.safe_load(multirun.read_text(encoding="utf-8")) or {}
        overrides = cfg.get("hydra", {}).get("overrides", {}).get("task", []) or []
        return " ".join(["python -m runner -m", *map(_quote, overrides)])
    saved = folder / ".hydra" / "overrides.yaml"
    if saved.exists():
        overrides = yaml.safe_load(saved.read_text(encoding="utf-8")) or []
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
    cfg = yaml.safe_load(multirun.read_text(encoding="utf-8")) or {}
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
        choices = (yaml.safe_load(hydra_file.read_text(encoding="utf-8")) or {}).get("hydra", {}) \
            .get("runtime", {}).get("choices", {})
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text(encoding="utf-8")) if overrides_file.exists() else []
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
