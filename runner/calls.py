"""The plain data of one model call: the messages sent (`Request`) and what came back (`Response`, `Usage`).

Providers turn a Request into their SDK's call and its answer into a Response; everything after them
(engine, cache, records, tasks) sees only these types. Imports nothing of the runner's.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

# A message is a plain dict, the same for every provider (each provider's module converts it to its API's shape):
#   {"role": "system" | "user", "content": str, or (a user message) a list of parts (below): pictures and text}
#   {"role": "assistant", "content": str}, and in a tool loop also "tool_calls": [ToolCall dicts] and, when the
#     provider must be sent its own content back (Anthropic's thinking blocks with their signatures, Gemini's
#     parts with thought signatures), "replay": Response.replay as it came
#   {"role": "tool", "tool_call_id": str, "name": str, "content": str, "is_error": bool}: one tool call's result
Message = dict

# The values of `model.reasoning` (how hard a model thinks before it answers), least effort first. None (null
# in YAML) is the model's own default. Each provider maps them onto its API (runner.providers.*: `params`).
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# what a model may take as input (model.input_modalities; the models.dev catalogue's names)
MODALITIES = ("text", "image", "audio", "video", "pdf")


def chat(system: str | None, *user: str | list[dict]) -> list[Message]:
    """The system message if there is one, then the user's messages: how every task opens a conversation."""
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": text} for text in user]
    return messages


# A message's content is a string, or, when the call carries images (task.images), a list of parts, each a
# provider-neutral dict that every provider maps onto its own wire format (runner.providers.*):
#   {"type": "text", "text": str}
#   {"type": "image", "media_type": one of IMAGE_TYPES (sniffed from the bytes), "data": the bytes in base64,
#    "source": the file path or URL it came from, "sha256": of the bytes, "size": bytes, "width", "height"}
# A text-only call keeps plain string content, so nothing that never sends images changes.
# The image types the runner reads: what OpenAI and Anthropic both take (Gemini takes all but GIF: a provider
# says which it takes, runner.providers.capabilities)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# what an image part keeps in results.jsonl and the report: a reference, never the bytes
IMAGE_REFERENCE = ("media_type", "source", "sha256", "size", "width", "height")


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def parts_of(content) -> list[dict]:
    """A message's content as parts (plain text is one text part)."""
    if isinstance(content, list):
        return content
    return [text_part(content if isinstance(content, str) else "")]


def text_of(content) -> str:
    """A message's text: plain content as it is, the text parts of a list joined by blank lines."""
    if isinstance(content, list):
        return "\n\n".join(str(part.get("text") or "") for part in content
                            if isinstance(part, dict) and part.get("type") == "text")
    return "" if content is None else str(content)


def is_image(part) -> bool:
    return isinstance(part, dict) and part.get("type") == "image"


def images_in(messages: list[Message]) -> list[dict]:
    """Every image part of the messages, in order (none for text-only messages: no list is walked)."""
    return [part for m in messages if isinstance(m.get("content"), list) for part in m["content"] if is_image(part)]


def reference(part: dict) -> dict:
    """An image part as results.jsonl keeps it: where it came from, its hash, type and size, not its bytes."""
    return {"type": "image", **{key: part[key] for key in IMAGE_REFERENCE if key in part}}


def _without_image_data(messages: list[Message], image) -> list[Message]:
    if not any(isinstance(m.get("content"), list) for m in messages):
        return messages  # text only: the same list, nothing copied
    return [{**m, "content": [image(p) if is_image(p) else p for p in m["content"]]}
            if isinstance(m.get("content"), list) else m for m in messages]


def recorded(messages: list[Message]) -> list[Message]:
    """The messages as a record keeps them: each image a reference, its bytes left out."""
    return _without_image_data(messages, reference)


def keyed(messages: list[Message]) -> list[Message]:
    """The messages as the response cache keys them: each image by its type and hash (the bytes decide the
    answer; where they came from does not)."""
    return _without_image_data(messages, lambda p: {"type": "image", "media_type": p.get("media_type"),
                                                    "sha256": p.get("sha256")})


def data_url(part: dict) -> str:
    """An image part as a data URL (OpenAI's image_url)."""
    return f"data:{part['media_type']};base64,{part['data']}"


SEEDS = 2**31  # every API that takes a seed takes one below this (Gemini's is an int32)


def seed_for(fixed: int | None, repeat: int) -> int:
    """The seed of one call: `fixed` + the repeat index (repeats still differ, and each is reproducible), or a
    fresh random one when the run fixes none (every process would otherwise start from the same seed)."""
    if fixed is None:
        return secrets.randbelow(SEEDS)
    return (fixed + repeat) % SEEDS


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, what it is for (the model reads it to decide when to call it)
    and a JSON Schema of its arguments (an object). Each provider sends it in its own API's shape; how the
    function runs is the task's business (runner.tasks.tools), never the provider's."""

    name: str
    description: str
    parameters: dict  # JSON Schema of the arguments: {"type": "object", "properties": {...}, "required": [...]}

    def wire(self) -> dict:
        """The tool as plain data: what the cache key and the records hold."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


# A tool call the model made, as plain data (what Response.tool_calls, an assistant message's "tool_calls", the
# cache and the records hold): {"id": str, "name": str, "arguments": dict}. `arguments` is the parsed JSON
# object; when the model sent text that is not a JSON object, it is that text as it came (a str), which the
# runner answers as an error the model can correct.
ToolCall = dict


def tool_call(call_id: str, name: str, arguments) -> ToolCall:
    """One tool call as plain data; `arguments` a dict, or the model's raw JSON text (parsed here when it can be)."""
    return {"id": call_id, "name": name, "arguments": parse_arguments(arguments)}


def parse_arguments(arguments) -> dict | str:
    """A call's arguments as a dict; text that is not a JSON object stays the text it was (None: no arguments)."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        import json

        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
        return parsed if isinstance(parsed, dict) else arguments
    return str(arguments)


def assistant_message(response: Response) -> Message:
    """The model's turn as the next request's history holds it: its text, its tool calls and, where the
    provider needs them back, its own content blocks."""
    message: Message = {"role": "assistant", "content": response.text}
    if response.tool_calls:
        message["tool_calls"] = [dict(call) for call in response.tool_calls]
    if response.replay is not None:
        message["replay"] = response.replay
    return message


def in_tool_loop(messages: list[Message]) -> bool:
    """Whether the messages hold a tool loop's turns (an assistant's tool calls, a tool's result, a provider's
    own blocks to send back), which each provider maps to its own wire format; other messages go as they are."""
    return any(m.get("tool_calls") or m["role"] == "tool" or "replay" in m for m in messages)


def without_replay(message: Message) -> Message:
    """The message without another provider's blocks (`replay`), which no wire format but that provider's takes."""
    return {key: value for key, value in message.items() if key != "replay"}


def tool_message(call: ToolCall, content: str, is_error: bool = False) -> Message:
    """The result of one tool call, answering it by its id (every provider refuses a result without one)."""
    return {"role": "tool", "tool_call_id": call["id"], "name": call["name"], "content": content,
            "is_error": is_error}


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
    # functions the model may call instead of answering (a `tools` task); () offers none. Its answer then has
    # either text or `tool_calls` (or both); the task runs the calls and asks again with their results
    tools: tuple[Tool, ...] = ()
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
    tool_calls: list[ToolCall] = field(default_factory=list)  # the functions the model called, in its order
    # the provider's own content of this answer, to be sent back as it came when the conversation goes on
    # (runner.calls.assistant_message): {"wire": "anthropic", "content": [blocks]} (thinking blocks must be
    # returned with their signatures in a tool loop), {"wire": "gemini", "parts": [parts]} (thought
    # signatures). None: nothing the provider needs back. JSON data, kept in the cache with the answer.
    replay: dict | None = None
    # earlier attempts of the same call that came back with usage and were tried again (an empty answer, a
    # stream broken after its usage arrived): the provider billed them too
    billed_before: list[Response] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def answered(self) -> bool:
        """It said something: text, or calls of the tools it was offered (a turn that only calls is an answer)."""
        return bool(self.text.strip() or self.tool_calls)
