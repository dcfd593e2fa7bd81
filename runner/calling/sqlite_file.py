"""A SQLite file that several processes share (the response cache, the budget ledger), used from one
thread of its own so the event loop never waits on the database or its locks."""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000  # another process holding the lock: wait for it rather than fail


class SqliteFile:
    def __init__(self, path: Path, setup: Callable[[sqlite3.Connection], None], name: str) -> None:
        self.path = Path(path)
        self._setup = setup  # pragmas and schema, run once on the first connection
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def connection(self) -> sqlite3.Connection:
        """The connection, opened on first use; only ever called from this file's own thread."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._setup(db)
            self._db = db
        return self._db

    async def run(self, work: Callable, *args):
        """`work(connection, *args)` in the file's thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: work(self.connection(), *args))

    def close(self) -> None:
        def close_db():
            if self._db is not None:
                self._db.close()
                self._db = None

        self._thread.submit(close_db).result()
        self._thread.shutdown()


def try_a_write(db: sqlite3.Connection) -> None:
    """Make one write and roll it back (`db` opened with isolation_level=None): a read-only file passes BEGIN and
    fails only at a write, so a file that cannot be written raises sqlite3.Error here and is left unchanged. The
    checks before a run's first call use it on the cache and the history."""
    db.execute("BEGIN IMMEDIATE")
    db.execute("CREATE TABLE _write_check (x)")
    db.execute("ROLLBACK")
