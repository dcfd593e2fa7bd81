"""The spending limit (`budget_usd`): no call starts unless what was spent plus what is in flight stays under it.

Before a call starts, its worst case is reserved: the input tokens (tiktoken's count for OpenAI model
families; otherwise the UTF-8 byte count, which no byte-level tokenizer exceeds; images by their provider's
rule for their size, runner.calling.vision) plus `max_tokens` of output, at the model's price. When the
call ends the reservation is replaced by what it really cost.
The ledger is a small SQLite file at the run's or sweep's root, so the budget covers a whole sweep, the
processes of a parallel launcher included. A call that does not fit waits while this job has calls in
flight (they usually cost less than reserved); when none are left and it still does not fit, the budget
is reached and every later call of the job is skipped. Each attempt of a call is reserved and settled on its
own (`Hold`): a retry after an attempt the provider billed (an empty answer) starts only when it fits too.
A model whose price is unknown cannot be kept under a budget: preflight refuses it (set `model.price`,
zeros for a free self-hosted model).
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from runner.calling.costs import call_cost
from runner.calling.sqlite_file import SqliteFile
from runner.calling.vision import image_tokens
from runner.calls import Request, Usage, text_of
from runner.settings import ModelSettings
from runner.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count_messages

FILE_NAME = "budget.sqlite"


def worst_case_cost(model: ModelSettings, request: Request, batch: bool = False) -> float | None:
    """The most this call can cost at list price (at the batch price for a batched call), or None when the
    model's price is unknown."""
    tokens, source = count_messages(request.messages, model.id)
    if source != "tiktoken":
        tokens = TOKENS_PER_REPLY + sum(TOKENS_PER_MESSAGE + len(text_of(m.get("content")).encode())
                                        for m in request.messages)
    tokens += image_tokens(model, request.messages)  # by each image's size, the provider's rule
    return call_cost(model, Usage(tokens, request.max_tokens, 0), batch=batch)


def reached_reason(limit: float) -> str:
    return f"budget of ${limit:g} reached"


class Budget:
    def __init__(self, limit: float, folder: Path) -> None:
        self.limit = limit
        self.path = Path(folder) / FILE_NAME
        self.reached = False
        self.in_flight = 0  # this job's reservations not yet settled
        self._settled = asyncio.Event()
        self.file = SqliteFile(self.path, _setup, "budget")

    @property
    def reason(self) -> str:
        return reached_reason(self.limit)

    def _reserve(self, db, amount: float) -> bool:
        db.execute("BEGIN IMMEDIATE")  # check and reserve as one step, whatever other processes do
        try:
            spent, reserved = db.execute("SELECT spent, reserved FROM ledger").fetchone()
            if spent + reserved + amount > self.limit:
                return False
            db.execute("UPDATE ledger SET reserved = reserved + ?", (amount,))
            return True
        finally:
            db.execute("COMMIT")

    @staticmethod
    def _settle(db, reserved: float, spent: float) -> None:
        db.execute("UPDATE ledger SET reserved = MAX(0, reserved - ?), spent = spent + ?",
                                (reserved, spent))

    async def admit(self, worst_case: float, wait: bool = True) -> bool:
        """Reserve a call's worst case; False once the budget is reached. `wait=False`: do not wait for the
        calls in flight to settle (a batch's calls settle only when the whole round is back, and the round
        waits for this call)."""
        while not self.reached:
            if await self.file.run(self._reserve, worst_case):
                self.in_flight += 1
                return True
            if self.in_flight == 0 or not wait:
                self.reached = True
                break
            settled = self._settled
            await settled.wait()
        return False

    async def settle(self, reserved: float, spent: float) -> None:
        """The call ended: replace its reservation by what it cost."""
        try:
            await self.file.run(self._settle, reserved, spent)
        finally:
            self.in_flight -= 1
            self._settled.set()
            self._settled = asyncio.Event()

    def close(self) -> None:
        self.file.close()


class Hold:
    """One call's place under the budget, attempt by attempt: `take` reserves the call's worst case before an
    attempt starts, `release` replaces it by what the attempt was billed as soon as it ends. Without a budget
    every attempt is let in."""

    def __init__(self, budget: Budget | None, worst_case: float | None, wait: bool = True) -> None:
        self.budget = budget if worst_case is not None else None
        self.worst_case = worst_case or 0.0
        self.wait = wait
        self.held = False

    async def take(self) -> bool:
        if self.budget is None:
            return True
        self.held = await self.budget.admit(self.worst_case, wait=self.wait)
        return self.held

    async def release(self, spent: float | None) -> None:
        if self.held:
            self.held = False
            await self.budget.settle(self.worst_case, spent or 0.0)


def _setup(db) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY CHECK (id = 1), "
               "spent REAL NOT NULL, reserved REAL NOT NULL)")
    db.execute("INSERT OR IGNORE INTO ledger VALUES (1, 0, 0)")
