"""Where the history database is, and whether a run can record itself in it: checked before the first call,
so that a file that is no database, or one that cannot be written, is named then, not after the calls were
paid for (the comparison records the run once they are done).

Light on purpose (sqlite3 only, no pandas): the checks before a run's first call import it.
"""
from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from runner.calling.sqlite_file import try_a_write
from runner.errors import ConfigError

DEFAULT_PATH = Path("outputs") / "history.sqlite"


def path_for(configured: str | None) -> Path:
    """The history file: the config's `history` value, or outputs/history.sqlite under the current folder."""
    return Path(configured).expanduser() if configured else DEFAULT_PATH


def check(path: Path) -> None:
    """Raise a ConfigError naming the file and how to fix it when the comparison could not record the run:
    a file that is not an SQLite database, or that cannot be written; no file yet and no folder it can be
    made in. Nothing is written: a write is tried and rolled back, a new file is only tried for."""
    fix = "move it aside, or set history=FILE for another file"
    if path.is_dir():
        raise ConfigError(f"history={path} is a folder, not a history file (history= takes the .sqlite file)")
    if not path.exists():
        _can_create(path)
        return
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA schema_version")  # reads the header: a file that is no database fails here
            try_a_write(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"the history database {path} cannot be used ({exc}): {fix}") from None


def _can_create(path: Path) -> None:
    """The folder the history would be made in exists or can be made, and takes a file (tried, not guessed)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    why = None
    if not folder.is_dir():
        why = f"{folder} is a file, not a folder"
    else:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            why = f"{folder}: {exc.strerror or exc}"
    if why:
        raise ConfigError(f"the history database {path} cannot be created ({why}): set history=FILE for another file")
