"""Per-model limits on calls: a concurrency that adapts to 429s, and optional requests and tokens per minute.

One `ModelLimits` per model per job is shared by every call to that model (a debate's opponent calls
included), so `model.concurrency` bounds calls in flight, not cells. The allowed concurrency halves on a
429 and grows back by one after as many successes in a row as it currently allows, up to
`model.concurrency` (additive increase, multiplicative decrease, as TCP does). A 429's Retry-After also
holds back every new call to that model until it has passed, not only the retry of the call that got it.
`model.rpm` and `model.tpm` are sliding one-minute windows; a call's tokens are estimated before it
starts and corrected to what the provider reported once it ends.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from runner.calling.retry import retry_after_s
from runner.calls import Response
from runner.settings import ModelSettings
from runner.words import counted

log = logging.getLogger(__name__)

WINDOW_S = 60.0


@dataclass
class Permit:
    """One call's place among the model's calls in flight."""

    generation: int  # the concurrency cut in force when the call started
    tokens: list | None  # its [time, tokens] entry in the tokens-per-minute window


class ModelLimits:
    def __init__(self, model: ModelSettings, clock=time.monotonic) -> None:
        self.name = model.name
        self.ceiling = model.concurrency
        self.allowed = model.concurrency
        self.rpm = model.rpm
        self.tpm = model.tpm
        self.in_flight = 0
        self.clock = clock
        self._starts: deque[float] = deque()  # call start times within the window (rpm); at most rpm of them
        self._tokens: deque[list] = deque()  # [start time, tokens] within the window (tpm), oldest first
        self._token_sum = 0
        self._successes = 0
        self._generation = 0
        self._paused_until = 0.0
        self._changed = asyncio.Event()

    def _expire(self, now: float) -> None:
        while self._starts and self._starts[0] <= now - WINDOW_S:
            self._starts.popleft()
        while self._tokens and self._tokens[0][0] <= now - WINDOW_S:
            entry = self._tokens.popleft()
            self._token_sum -= entry[1]
            entry[0] = None  # out of the window: its call's real usage no longer counts

    def _wait_s(self, now: float, tokens: int) -> float:
        """Seconds until a call of `tokens` tokens may start as far as time-based limits go (0: now)."""
        wait = max(0.0, self._paused_until - now)
        if self.rpm is not None and len(self._starts) >= self.rpm:
            wait = max(wait, self._starts[0] + WINDOW_S - now)
        if self.tpm is not None and self._tokens and self._token_sum + tokens > self.tpm:
            # a call larger than tpm on its own runs once the window is empty rather than never
            freed = 0
            for started, used in self._tokens:  # noqa: B007 - `started` of the entry the loop stops at
                freed += used
                if self._token_sum - freed + tokens <= self.tpm:
                    break
            wait = max(wait, started + WINDOW_S - now)
        return wait

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def acquire(self, tokens: int) -> Permit:
        """Wait until one more call of about `tokens` tokens (input estimate + max_tokens) may start."""
        while True:
            now = self.clock()
            self._expire(now)
            wait = self._wait_s(now, tokens)
            if wait <= 0 and self.in_flight < self.allowed:
                break
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=wait if wait > 0 else None)
            except asyncio.TimeoutError:
                pass
        self.in_flight += 1
        entry = None
        if self.rpm is not None:
            self._starts.append(now)
        if self.tpm is not None:
            entry = [now, tokens]
            self._tokens.append(entry)
            self._token_sum += tokens
        return Permit(self._generation, entry)

    def release(self, permit: Permit, response: Response | None) -> None:
        """The call ended (None: it was cancelled); adapt the limits to how it went."""
        self.in_flight -= 1
        if permit.tokens is not None and response is not None and response.usage.input_tokens is not None:
            used = response.usage.input_tokens + (response.usage.output_tokens or 0)
            if permit.tokens[0] is not None:
                self._token_sum += used - permit.tokens[1]
            permit.tokens[1] = used
        if response is not None and response.status_code == 429:
            self._successes = 0
            if permit.generation == self._generation:  # one cut per burst: calls started before it don't cut again
                self._generation += 1
                self.allowed = max(1, self.allowed // 2)
                log.info("%s: rate limited; at most %s in flight for now", self.name,
                         counted(self.allowed, "call"))
            if response.retry_after_s:
                self._paused_until = max(self._paused_until, self.clock() + retry_after_s(response.retry_after_s))
        elif response is not None and response.ok:
            self._successes += 1
            if self._successes >= self.allowed and self.allowed < self.ceiling:
                self.allowed += 1
                self._successes = 0
        self._wake()
