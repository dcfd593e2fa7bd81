"""The plain data of one model call: the messages sent (`Request`) and what came back (`Response`, `Usage`).

Providers turn a Request into their SDK's call and its answer into a Response; everything after them
(engine, cache, records, tasks) sees only these types. Imports nothing of the runner's.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}

# The values of `model.reasoning` (how hard a model thinks before it answers), least effort first. None (null
# in YAML) is the model's own default. Each provider maps them onto its API (runner.providers.*: `params`).
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# what a model may take as input (model.input_modalities; the models.dev catalogue's names)
MODALITIES = ("text", "image", "audio", "video", "pdf")


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
    """One call as the provider must send it: every value here was decided for this model before the call
    (runner.calling.asking) and is sent as it is; a provider never sends what is not here."""

    messages: list[Message]
    temperature: float | None  # None: send no temperature (the model takes only its own default)
    # the output cap to send: the visible answer's `max_tokens` plus room for thinking (`thinking_tokens`),
    # because the providers count thinking and answer against one cap
    max_tokens: int
    json_mode: bool = False  # the answer must be a JSON object (any)
    # the value of model.reasoning to send (one of EFFORTS, checked against what the model takes), or None:
    # send nothing, the model thinks as it does by default
    reasoning: str | None = None
    # of max_tokens, the tokens set aside for thinking (0: none): what a provider that takes a thinking budget
    # sends as that budget (Anthropic's budget_tokens, Gemini 2.5's thinkingBudget)
    thinking_tokens: int = 0
    # a JSON Schema the answer must follow, sent as the provider's structured output where the model supports
    # it (json_mode is then implied); None: no schema
    json_schema: dict | None = None
    # sent to the provider where its API takes one; in the cache key only when the run fixes it (`seed=N`)
    seed: int | None = None
    # called with each piece of a streamed answer as it arrives (runner.chat shows it), possibly from another
    # thread; not part of what is asked, so not of the cache key either
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


@dataclass
class Usage:
    """Token counts of one call. `output_tokens` is every output token billed, thinking included (what
    genai-prices prices as output); `reasoning_tokens` says how many of them were thinking. A provider whose
    API reports thoughts beside its output count (Gemini's thoughtsTokenCount) adds them into output_tokens."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    source: str = "provider"  # provider | tiktoken | estimate
    reasoning_tokens: int | None = None  # of output_tokens, the thinking; None: not reported (or no thinking API)
    reasoning_source: str = "provider"  # provider (the API's count) | estimate (counted from the thinking text)

    @property
    def reported(self) -> bool:
        """Whether any count came back: an attempt with usage was billed by the provider, whatever its outcome."""
        return self.input_tokens is not None or self.output_tokens is not None


@dataclass
class Response:
    text: str = ""  # the visible answer only: never the thinking
    reasoning: str = ""  # thinking text or thought summaries, where the API returns them (kept apart from text)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None  # time to the first piece of visible answer text (thinking does not count)
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
