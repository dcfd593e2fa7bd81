"""Where submitted batches are written down, so that a crash, a kill or `batch.wait=false` loses none.

Two places, both written whole and fsynced before the runner waits for a batch:
- the ledger, `batches/` in the response cache's folder: one JSON file per batch still to be collected
  (provider, endpoint, batch id, its custom ids). A re-run of the same command makes a new run folder,
  but its calls have the same custom ids (the cache keys), so it finds the batch here and attaches to it
  instead of submitting again. The file is removed once every answer of the batch is recorded.
- `batch.json` in the job's folder: the job's batches, with the cell each custom id stands for, and
  whether the job ended with a batch still pending (`python -m runner` then exits 0 and says how to collect).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from runner.redact import redact, redact_value

log = logging.getLogger(__name__)

LEDGER_FOLDER = "batches"
JOB_FILE = "batch.json"
# Providers answer a batch within 24 hours. One submitted longer ago than this was never collected (a
# Monday's cron run whose Tuesday never came): its answers are too old to report as a new run's, so a
# later run forgets it (with a warning) and submits anew.
MAX_AGE_S = 3 * 24 * 3600


def write_durably(path: Path, data: dict) -> None:
    """Replace `path` with `data` as JSON, all or nothing, on disk before this returns. Redacted like every
    file the runner writes (a base_url's password, a key an item's label might quote)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(redact_value(data), handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    if sys.platform != "win32":  # the rename itself reaches the disk with the folder's fsync (POSIX only)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


class Ledger:
    """The batches submitted and not yet collected, shared by every run that uses this cache folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / LEDGER_FOLDER

    def _path(self, entry: dict) -> Path:
        name = hashlib.sha1(f"{entry['provider']}|{entry['endpoint']}|{entry['batch_id']}".encode()).hexdigest()
        return self.folder / f"{name[:20]}.json"

    def add(self, entry: dict) -> None:
        write_durably(self._path(entry), entry)

    def remove(self, entry: dict) -> None:
        try:
            self._path(entry).unlink()
        except FileNotFoundError:
            pass

    def find(self, provider: str, endpoint: str, keys: set[str]) -> list[dict]:
        """The batches of this provider and endpoint that hold any of these custom ids."""
        endpoint = redact(endpoint)  # as it was written down
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("batch ledger file %s cannot be read; ignored", path)
                continue
            if (entry.get("provider"), entry.get("endpoint")) != (provider, endpoint) \
                    or not keys.intersection(entry.get("custom_ids", ())):
                continue
            if time.time() - entry.get("submitted_at", 0) > MAX_AGE_S:
                log.warning("batch %s was submitted more than %d days ago and never collected: forgotten, its "
                            "requests are submitted again", entry.get("batch_id"), MAX_AGE_S // 86400)
                path.unlink(missing_ok=True)
                continue
            found.append(entry)
        return found


def new_entry(provider: str, model_id: str, endpoint: str, batch_id: str, custom_ids: list[str],
              resubmission: bool = False) -> dict:
    return {"provider": provider, "model_id": model_id, "endpoint": redact(endpoint), "batch_id": batch_id,
            "submitted_at": time.time(), "custom_ids": list(custom_ids), "resubmission": resubmission}


class JobFile:
    """The job folder's batch.json."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / JOB_FILE
        self.data: dict = {"batches": [], "pending": False}

    def add(self, entry: dict, cells: dict[str, dict]) -> None:
        self.data["batches"].append({**entry, "cells": {key: cells[key] for key in entry["custom_ids"]
                                                         if key in cells}, "state": "submitted"})
        write_durably(self.path, self.data)

    def set_state(self, batch_id: str, state: str) -> None:
        for batch in self.data["batches"]:
            if batch["batch_id"] == batch_id:
                batch["state"] = state
        write_durably(self.path, self.data)

    def left_pending(self) -> None:
        self.data["pending"] = True
        write_durably(self.path, self.data)


def pending_batches(root: Path) -> list[dict]:
    """The batches the jobs under `root` (a run's or sweep's folder) left pending (batch.wait=false)."""
    pending = []
    for path in sorted(Path(root).glob(f"**/{JOB_FILE}")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("pending"):
            pending += [batch for batch in data.get("batches", ()) if batch.get("state") == "submitted"]
    return pending
