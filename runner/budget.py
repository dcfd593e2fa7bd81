"""The spending limit (`budget_usd`): no call starts unless what was spent plus what is in flight stays under it.

Before a call starts, its worst case is reserved: the input tokens (tiktoken's count for OpenAI model
families; otherwise the UTF-8 byte count, which no byte-level tokenizer exceeds) plus `max_tokens` of
output, at the model's price. When the call ends the reservation is replaced by what it really cost.
The ledger is a small SQLite file at the run's or sweep's root, so the budget covers a whole sweep, the
processes of a parallel launcher included. A call that does not fit waits while this job has calls in
flight (they usually cost less than reserved); when none are left and it still does not fit, the budget
is reached and every later call of the job is skipped.
A model whose price is unknown cannot be kept under a budget: preflight refuses it (set `model.price`,
zeros for a free self-hosted model).
"""
from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runner.costs import call_cost
from runner.providers.base import Request, Usage
from runner.settings import ModelSettings
from runner.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count_messages

FILE_NAME = "budget.sqlite"
BUSY_TIMEOUT_MS = 30_000


def worst_case_cost(model: ModelSettings, request: Request) -> float | None:
    """The most this call can cost at list price, or None when the model's price is unknown."""
    tokens, source = count_messages(request.messages, model.id)
    if source != "tiktoken":
        tokens = TOKENS_PER_REPLY + sum(TOKENS_PER_MESSAGE + len((m.get("content") or "").encode())
                                        for m in request.messages)
    return call_cost(model, Usage(tokens, request.max_tokens, 0))


def reached_reason(limit: float) -> str:
    return f"budget of ${limit:g} reached"


class Budget:
    def __init__(self, limit: float, folder: Path) -> None:
        self.limit = limit
        self.path = Path(folder) / FILE_NAME
        self.reached = False
        self.in_flight = 0  # this job's reservations not yet settled
        self._settled = asyncio.Event()
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="budget")

    @property
    def reason(self) -> str:
        return reached_reason(self.limit)

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY CHECK (id = 1), "
                       "spent REAL NOT NULL, reserved REAL NOT NULL)")
            db.execute("INSERT OR IGNORE INTO ledger VALUES (1, 0, 0)")
            self._db = db
        return self._db

    def _reserve(self, amount: float) -> bool:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")  # check and reserve as one step, whatever other processes do
        try:
            spent, reserved = db.execute("SELECT spent, reserved FROM ledger").fetchone()
            if spent + reserved + amount > self.limit:
                return False
            db.execute("UPDATE ledger SET reserved = reserved + ?", (amount,))
            return True
        finally:
            db.execute("COMMIT")

    def _settle(self, reserved: float, spent: float) -> None:
        self._connect().execute("UPDATE ledger SET reserved = MAX(0, reserved - ?), spent = spent + ?",
                                (reserved, spent))

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def admit(self, worst_case: float) -> bool:
        """Reserve a call's worst case; False once the budget is reached."""
        while not self.reached:
            if await self._run(self._reserve, worst_case):
                self.in_flight += 1
                return True
            if self.in_flight == 0:
                self.reached = True
                break
            settled = self._settled
            await settled.wait()
        return False

    async def settle(self, reserved: float, spent: float) -> None:
        """The call ended: replace its reservation by what it cost."""
        try:
            await self._run(self._settle, reserved, spent)
        finally:
            self.in_flight -= 1
            self._settled.set()
            self._settled = asyncio.Event()

    def close(self) -> None:
        def close_db():
            if self._db is not None:
                self._db.close()
                self._db = None

        self._thread.submit(close_db).result()
        self._thread.shutdown()
