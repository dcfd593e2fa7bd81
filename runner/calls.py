"""The plain data of one model call: the messages sent (`Request`) and what came back (`Response`, `Usage`).

Providers turn a Request into their SDK's call and its answer into a Response; everything after them
(engine, cache, records, tasks) sees only these types. Imports nothing of the runner's.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


def chat(system: str | None, *user: str) -> list[Message]:
    """The system message if there is one, then the user's messages: how every task opens a conversation."""
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": text} for text in user]
    return messages


SEEDS = 2**31  # every API that takes a seed takes one below this (Gemini's is an int32)


def seed_for(fixed: int | None, repeat: int) -> int:
    """The seed of one call: `fixed` + the repeat index (repeats still differ, and each is reproducible), or a
    fresh random one when the run fixes none (every process would otherwise start from the same seed)."""
    if fixed is None:
        return secrets.randbelow(SEEDS)
    return (fixed + repeat) % SEEDS


@dataclass(frozen=True)
class Request:
    messages: list[Message]
    temperature: float
    max_tokens: int
    json_mode: bool = False
    # sent to the provider where its API takes one; in the cache key only when the run fixes it (`seed=N`)
    seed: int | None = None
    # called with each piece of a streamed answer as it arrives (runner.chat shows it), possibly from another
    # thread; not part of what is asked, so not of the cache key either
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


@dataclass
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    source: str = "provider"  # provider | tiktoken | estimate


@dataclass
class Response:
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    error: str | None = None  # one line; None when the call succeeded
    error_kind: str | None = None  # auth | rate_limit | server | timeout | connection | bad_request | malformed | ...
    status_code: int | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    batch_id: str | None = None  # answered through this batch of the provider's batch API (priced as such)

    @property
    def ok(self) -> bool:
        return self.error is None
