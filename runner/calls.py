"""The plain data of one model call: the messages sent (`Request`) and what came back (`Response`, `Usage`).

Providers turn a Request into their SDK's call and its answer into a Response; everything after them
(engine, cache, records, tasks) sees only these types. Imports nothing of the runner's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


def chat(system: str | None, *user: str) -> list[Message]:
    """The system message if there is one, then the user's messages: how every task opens a conversation."""
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": text} for text in user]
    return messages


@dataclass(frozen=True)
class Request:
    messages: list[Message]
    temperature: float
    max_tokens: int
    json_mode: bool = False
    # called with each piece of a streamed answer as it arrives (runner.chat shows it), possibly from another
    # thread; not part of what is asked, so not of the cache key either
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


@dataclass
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    source: str = "provider"  # provider | tiktoken | estimate

    @property
    def reported(self) -> bool:
        """Whether any count came back: an attempt with usage was billed by the provider, whatever its outcome."""
        return self.input_tokens is not None or self.output_tokens is not None


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
    # earlier attempts of the same call that came back with usage and were tried again (an empty answer, a
    # stream broken after its usage arrived): the provider billed them too
    billed_before: list[Response] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None
