"""A strict fake of Anthropic's Messages API (JSON and SSE streaming) on 127.0.0.1.

Strict the way the real API is: a missing key or `anthropic-version` header, unknown request fields,
a missing `max_tokens`, temperature outside 0..1, a "system" role inside `messages`, or a final
assistant turn ending in whitespace get the real API's error shapes. Streams carry the real `event:`
lines, and an in-stream `event: error` can be injected.

Each model it serves (MODELS; any other is a 404 as on the real API) refuses what the API refuses for it
(texts checked 2026-12-07, /work/shared/reference/providers.md): an assistant prefill on Claude 4.6 and
later; a temperature with thinking, or any temperature on Opus 4.7 and later; `thinking.type` values the
model does not take (budget_tokens on Opus 4.7 and later); budget_tokens under 1,024 or not below
max_tokens; effort on a model without it; a forced tool call while thinking; an open object in a
structured output's schema. A thinking call spends THOUGHT[effort] tokens (an eighth of budget_tokens)
before its answer, against max_tokens: with no room left the answer is empty and the stop reason
`max_tokens`. Thinking comes first as a `thinking` block (its summary, or empty where the model omits it by
default and `display: summarized` was not asked), streamed as thinking_delta and signature_delta events;
usage counts it in `output_tokens` and says how many in `output_tokens_details.thinking_tokens`.
A forced tool call answers with a `tool_use` block whose input is the answer's JSON object.
Images (tests/fakes/images.py): a user message's content may be blocks, `text` and `image` with a base64 source;
an image block in another shape or in an assistant turn, a media type the API does not take, base64 that does not
decode, bytes that are no image or not of the type declared get the API's 400. The answer says what each image of
the last user message is; usage counts each image as width x height / 750 tokens.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes import images
from tests.fakes.server import FakeServer, Faults, Received, Reply
from tests.fakes.verdicts import is_judging, verdict

ALLOWED = {"model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k", "stop_sequences",
           "stream", "metadata", "output_config", "thinking", "tools", "tool_choice", "service_tier"}
STOP_REASONS = {"end_turn", "max_tokens", "tool_use"}
THINKING_FIELDS = {"enabled": {"type", "budget_tokens", "display"}, "adaptive": {"type", "display"},
                   "disabled": {"type"}, "between_tools": {"type"}}
EFFORTS = ("low", "medium", "high", "xhigh", "max")
# thinking tokens an adaptive call spends at each effort, before its answer
THOUGHT = {"low": 120, "medium": 480, "high": 1500, "xhigh": 3000, "max": 6000}
DOCS = "https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking"
PREFILL_REFUSED = ("This model does not support assistant message prefill. The conversation must end with a "
                   "user message.")


@dataclass(frozen=True)
class Rules:
    """What one model takes, as the API treats it."""

    types: frozenset  # the thinking.type values it takes
    thinks: bool = False  # it thinks adaptively when no `thinking` is sent
    efforts: tuple[str, ...] = ()  # output_config.effort values ((): "does not support the effort parameter")
    default_effort: str = "high"
    sampling: bool = True  # it takes a temperature at all
    prefill: bool = True
    display: str = "summarized"  # what thinking it returns unless `display` says otherwise
    structured: bool = True


_OLD = Rules(frozenset({"enabled", "disabled"}))
_46 = Rules(frozenset({"enabled", "adaptive", "disabled"}), efforts=("low", "medium", "high", "max"), prefill=False)
_47 = Rules(frozenset({"adaptive", "disabled"}), efforts=EFFORTS, sampling=False, prefill=False, display="omitted")
MODELS = {
    "claude-haiku-4-5": _OLD, "claude-haiku-4-5-20251001": _OLD, "claude-sonnet-4-5": _OLD,
    "claude-opus-4-5": Rules(frozenset({"enabled", "disabled"}), efforts=("low", "medium", "high")),
    "claude-opus-4-6": _46, "claude-sonnet-4-6": _46,
    "claude-opus-4-7": _47, "claude-opus-4-8": _47,
    "claude-opus-5": Rules(frozenset({"adaptive", "disabled"}), thinks=True, efforts=EFFORTS, sampling=False,
                           prefill=False, display="omitted"),
    "claude-opus-5-5": Rules(frozenset({"adaptive"}), thinks=True, efforts=EFFORTS, default_effort="medium",
                             sampling=False, prefill=False, display="omitted"),
    "claude-sonnet-5-5": Rules(frozenset({"adaptive", "between_tools"}), thinks=True, efforts=EFFORTS,
                               sampling=False, prefill=False, display="omitted"),
}


def words(text: str) -> int:
    return len(text.split())


def text_of(message: dict) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else " ".join(b["text"] for b in content if b["type"] == "text")


def images_of(message: dict) -> list[bytes]:
    """The decoded images of a (valid) message."""
    content = message.get("content")
    return [] if isinstance(content, str) else [
        images.decode(b["source"]["data"]) for b in content if b["type"] == "image"]


def default_answer(messages: list[dict]) -> str:
    if is_judging(messages):  # a task's judge (runner.scorers): the verdict it asks for
        return verdict(messages)
    last = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
    seen = "".join(f" {images.seen(data)}" for data in images_of(last))
    return f"Answer to: {' '.join(text_of(last).split()[:12])}{seen}"


IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def blocks_problem(i: int, message: dict) -> Reply | None:
    """The API's 400 for content blocks it refuses (None: plain text, or text and image blocks it takes)."""
    content = message["content"]
    if isinstance(content, str):
        return None
    if not content:
        return _invalid(f"messages.{i}: all messages must have non-empty content")
    for j, block in enumerate(content):
        where = f"messages.{i}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if set(block) - {"type", "text", "cache_control"} or not isinstance(block.get("text"), str):
                return _invalid(f"{where}.text.text: Input should be a valid string")
            continue
        if kind != "image":
            return _invalid(f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                            f"'text', 'image'")
        if message["role"] != "user":  # the fake's wording: only a user turn shows the model a picture
            return _invalid(f"{where}.image: an image may only be in a user message")
        source = block.get("source")
        if set(block) - {"type", "source", "cache_control"} or not isinstance(source, dict) \
                or source.get("type") != "base64" or set(source) != {"type", "media_type", "data"}:
            return _invalid(f"{where}.image.source: Input should be a valid base64 image source")
        if source["media_type"] not in IMAGE_TYPES:
            return _invalid(f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                            f"'image/gif' or 'image/webp'")
        data = images.decode(source["data"])
        if data is None:  # the fake's wording
            return _invalid(f"{where}.image.source.base64.data: Invalid base64 data")
        found = images.sniff(data)
        if found is None:
            return _invalid(f"{where}.image.source.base64.data: Could not process image")
        if found[0] != source["media_type"]:
            return _invalid(f"{where}.image.source.base64: The image was specified using the {source['media_type']} "
                            f"media type, but the image appears to be a {found[0]} image")
    return None


def conversation(body: dict) -> list[dict]:
    """The request's messages with its system prompt first, as an `answer` function sees them."""
    system = body.get("system") or ""
    if not isinstance(system, str):
        system = "\n\n".join(b.get("text", "") for b in system)
    return ([{"role": "system", "content": system}] if system else []) + body["messages"]


def _error(status: int, type_: str, message: str, headers: dict | None = None) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": type_, "message": message},
                          "request_id": "req_test"}, headers={"request-id": "req_test", **(headers or {})})


def _invalid(message: str) -> Reply:
    return _error(400, "invalid_request_error", message)


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def open_object(schema) -> bool:
    """Whether a structured output's schema has an object not closed by `additionalProperties: false`."""
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        return True
    children = [*(schema.get("properties") or {}).values(), *(schema.get("$defs") or {}).values()]
    children += [schema["items"]] if isinstance(schema.get("items"), dict) else []
    children += [s for key in ("anyOf", "allOf", "oneOf") for s in schema.get(key) or []]
    return any(open_object(child) for child in children)


def thinking_of(body: dict) -> str | None:
    """The thinking a request gets: "enabled", "adaptive", or None (none)."""
    rules = MODELS[body["model"]]
    kind = (body.get("thinking") or {}).get("type")
    if kind is None:
        return "adaptive" if rules.thinks else None
    return kind if kind in ("enabled", "adaptive") else None


def thought(body: dict) -> int:
    """Thinking tokens the call spends before its answer (0 when it does not think)."""
    kind = thinking_of(body)
    if kind == "enabled":
        return body["thinking"]["budget_tokens"] // 8
    if kind == "adaptive":
        return THOUGHT[(body.get("output_config") or {}).get("effort") or MODELS[body["model"]].default_effort]
    return 0


def refusal(body: dict) -> Reply | None:
    """What the API says to a request this model refuses (None: it takes it)."""
    rules = MODELS[body["model"]]
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in THINKING_FIELDS:
            return _invalid("thinking: Input tag found using 'type' does not match any of the expected tags: "
                            "'enabled', 'disabled', 'adaptive', 'between_tools'")
        extra = set(thinking) - THINKING_FIELDS[kind]
        if extra:
            return _invalid(f"thinking.{kind}.{sorted(extra)[0]}: Extra inputs are not permitted")
        if kind not in rules.types:
            return _invalid(f'"thinking.type.{kind}" is not supported for this model. Use "thinking.type.adaptive" '
                            f'and "output_config.effort" to control thinking behavior.')
        if thinking.get("display", "summarized") not in ("summarized", "omitted"):
            return _invalid(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                return _invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if budget >= body["max_tokens"]:
                return _invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    thinks = thinking_of(body) is not None
    if "temperature" in body and not rules.sampling:
        return _invalid("`temperature` is deprecated for this model.")
    if thinks and body.get("temperature", 1) != 1:
        return _invalid(f"`temperature` may only be set to 1 when thinking is enabled. Please consult our "
                        f"documentation at {DOCS}#important-considerations-when-using-extended-thinking")
    if body["messages"][-1]["role"] == "assistant" and not rules.prefill:
        return _invalid(PREFILL_REFUSED)
    config = body.get("output_config")
    if config is not None:
        if not isinstance(config, dict) or set(config) - {"effort", "format"}:
            return _invalid("output_config: Extra inputs are not permitted")
        if "effort" in config:
            if not rules.efforts:
                return _invalid("This model does not support the effort parameter.")
            if config["effort"] not in rules.efforts:
                listed = ", ".join(f"'{e}'" for e in rules.efforts)
                return _invalid(f"output_config.effort: Input should be {listed}")
        if "format" in config:
            fmt = config["format"]
            if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
                return _invalid("output_config.format: Field required")
            if open_object(fmt["schema"]):
                return _invalid("output_config.format.schema: For 'object' type, 'additionalProperties' must be "
                                "explicitly set to false")
    return tool_refusal(body, thinks)


def tool_refusal(body: dict, thinks: bool) -> Reply | None:
    tools = body.get("tools")
    names = set()
    if tools is not None:
        for i, tool in enumerate(tools if isinstance(tools, list) else [None]):
            schema = tool.get("input_schema") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or set(tool) - {
                    "name", "description", "input_schema", "strict"}:
                return _invalid(f"tools.{i}: Input should be a valid tool")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return _invalid(f"tools.{i}.custom.input_schema: JSON schema is invalid. It must match JSON Schema "
                                f"draft 2020-12 (https://json-schema.org/draft/2020-12). Learn more about tool use "
                                f"at https://docs.anthropic.com/en/docs/tool-use.")
            names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            return _invalid("tool_choice: Input should be a valid tool choice")
        if choice["type"] == "tool" and choice.get("name") not in names:
            return _invalid(f"tool_choice.name: no tool named {choice.get('name')!r} in tools")
        if choice["type"] in ("any", "tool") and thinks:
            return _invalid("Thinking may not be enabled when tool_choice forces tool use.")
    return None


def summary(messages: list[dict]) -> str:
    """The fake's thinking as the API summarizes it (far fewer words than the tokens it bills)."""
    last = next((text_of(m) for m in reversed(messages) if m["role"] == "user"), "")
    return f"The user asks: {' '.join(last.split()[:8])}. I will answer briefly."


class AnthropicFake:
    """Routes for /v1/messages. `answer(messages) -> text` decides what the model says (the messages with the
    system prompt first, as a "system" message).

    Token counts are words, like the OpenAI fake's: input is the words of the system prompt and the
    messages plus 3 per message; `cache_read` and `cache_write` of them are reported as cache reads and
    cache writes, the rest as `input_tokens` (as the real API splits them). Output is the answer's words
    plus the thinking spent. `thinking_details=False` leaves `output_tokens_details` out of usage.
    """

    def __init__(self, key: str = "test-key", answer: Callable[[list[dict]], str] = default_answer,
                 cache_read: int = 0, cache_write: int = 0, stream_error_after: int | None = None,
                 chunk_delay_s: float = 0.0, echo_key: bool = False, thinking_details: bool = True):
        self.key = key
        self.echo_key = echo_key  # a careless server: its 401 repeats the credentials it was sent
        self.answer = answer
        self.cache_read = cache_read
        self.cache_write = cache_write
        self.stream_error_after = stream_error_after
        self.chunk_delay_s = chunk_delay_s
        self.thinking_details = thinking_details

    def validate(self, request: Received) -> Reply | None:
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if given != self.key:
            echoed = (f" (x-api-key: {request.headers.get('x-api-key')}, authorization: "
                      f"{request.headers.get('authorization')})") if self.echo_key else ""
            return _error(401, "authentication_error", f"invalid x-api-key{echoed}")
        if not request.headers.get("anthropic-version"):
            return _invalid("anthropic-version: header is required")
        try:
            body = request.json
        except json.JSONDecodeError:
            return _invalid("There was an error parsing the body of your request")
        unknown = set(body) - ALLOWED
        if unknown:
            return _invalid(f"{sorted(unknown)[0]}: Extra inputs are not permitted")
        if not isinstance(body.get("model"), str):
            return _invalid("model: Field required")
        if "max_tokens" not in body:
            return _invalid("max_tokens: Field required")
        if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
            return _invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
        t = body.get("temperature", 1)
        if not isinstance(t, (int, float)) or not 0 <= t <= 1:
            return _invalid("temperature: range: 0..1")
        if "system" in body and not isinstance(body["system"], (str, list)):
            return _invalid("system: Input should be a valid string or list")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _invalid("messages: Field required")
        for i, m in enumerate(messages):
            if m.get("role") == "system":
                return _invalid('messages: Unexpected role "system". The Messages API accepts a top-level '
                                '`system` parameter, not "system" as an input message role.')
            if m.get("role") not in ("user", "assistant") or set(m) - {"role", "content"}:
                return _invalid(f"messages.{i}: Input should be a valid message")
            if not isinstance(m.get("content"), (str, list)) or (not m["content"] and i < len(messages) - 1):
                return _invalid(f"messages.{i}: all messages must have non-empty content")
            problem = blocks_problem(i, m)
            if problem:
                return problem
        last = text_of(messages[-1])
        if messages[-1]["role"] == "assistant" and last != last.rstrip():
            return _invalid("messages: final assistant content cannot end with trailing whitespace")
        if body["model"] not in MODELS:
            return _error(404, "not_found_error", f"model: {body['model']}")
        return refusal(body)

    def usage(self, body: dict, text: str, thinking: int = 0) -> dict:
        system = body.get("system") or ""
        system_words = words(system if isinstance(system, str) else " ".join(b.get("text", "") for b in system))
        pictures = sum(images.anthropic_tokens(*images.sniff(data)[1:]) for m in body["messages"]
                       for data in images_of(m))
        total = system_words + sum(words(text_of(m)) for m in body["messages"]) + 3 * len(body["messages"]) + pictures
        read = min(self.cache_read, total)
        write = min(self.cache_write, total - read)
        usage = {"input_tokens": total - read - write, "cache_creation_input_tokens": write,
                 "cache_read_input_tokens": read, "output_tokens": words(text) + thinking, "service_tier": "standard"}
        if thinking and self.thinking_details:
            usage["output_tokens_details"] = {"thinking_tokens": thinking}
        return usage

    def messages(self, request: Received) -> Reply:
        problem = self.validate(request)
        if problem:
            return problem
        body = request.json
        text = self.answer(conversation(body))
        last = body["messages"][-1]
        if last["role"] == "assistant" and text.startswith(text_of(last)):
            text = text[len(text_of(last)):]  # the model continues its prefilled turn
        tool = (body.get("tool_choice") or {}).get("name") if (body.get("tool_choice") or {}).get("type") == "tool" \
            else None
        if tool is not None:  # the forced tool's input: the answer's JSON object
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                data = None
            text = json.dumps(data if isinstance(data, dict) else {"answer": text})
        limit = body["max_tokens"]
        spent = thought(body)
        finish = "tool_use" if tool is not None else "end_turn"
        if spent >= limit:  # the cap ran out while it was still thinking
            spent, text, tool, finish = limit, "", None, "max_tokens"
        elif words(text) + spent > limit:
            text = " ".join(text.split()[:limit - spent])
            tool, finish = None, "max_tokens"  # cut short: what it wrote, not a tool call
        content = []
        if thinking_of(body) is not None:
            display = (body.get("thinking") or {}).get("display") or MODELS[body["model"]].display
            content.append({"type": "thinking", "signature": "EqQBCkYIBhgCIkA" + "x" * 24,
                            "thinking": summary(body["messages"]) if display == "summarized" else ""})
        if tool is not None:
            content.append({"type": "tool_use", "id": "toolu_01test", "name": tool, "input": json.loads(text)})
        else:
            content.append({"type": "text", "text": text})
        usage = self.usage(body, text, spent)
        ident = f"msg_{int(time.time() * 1000)}"
        message = {"id": ident, "type": "message", "role": "assistant", "model": body["model"], "content": content,
                   "stop_reason": finish, "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            return Reply(200, message, headers={"request-id": "req_test"})
        return Reply(200, headers={"Content-Type": "text/event-stream", "request-id": "req_test"},
                     chunk_delay_s=self.chunk_delay_s, chunks=self._events(message))

    def _events(self, message: dict):
        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {k: v for k, v in {**usage, "output_tokens": 1}.items() if k != "output_tokens_details"}}
        yield _sse("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(message["content"]):
            if block["type"] == "thinking":
                yield from self._thinking_events(index, block)
            elif block["type"] == "tool_use":
                yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {**block, "input": {}}})
                data = json.dumps(block["input"])
                for at in range(0, len(data), 8):
                    yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                        "type": "input_json_delta", "partial_json": data[at:at + 8]}})
                yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            else:
                yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}})
                yield _sse("ping", {"type": "ping"})
                text = block["text"]
                for i, word in enumerate(text.split(" ") if text else []):
                    if self.stream_error_after is not None and i == self.stream_error_after:
                        yield _sse("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                        "message": "Overloaded"}})
                        return
                    yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                        "type": "text_delta", "text": word if i == 0 else " " + word}})
                yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        delta_usage = {"output_tokens": usage["output_tokens"]}
        if "output_tokens_details" in usage:
            delta_usage["output_tokens_details"] = usage["output_tokens_details"]
        yield _sse("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": delta_usage})
        yield _sse("message_stop", {"type": "message_stop"})

    @staticmethod
    def _thinking_events(index: int, block: dict):
        yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
        pieces = block["thinking"].split(" ") if block["thinking"] else []
        for i, word in enumerate(pieces):
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                "type": "thinking_delta", "thinking": word if i == 0 else " " + word}})
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
            "type": "signature_delta", "signature": block["signature"]}})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})

    def routes(self) -> dict:
        return {("POST", "/v1/messages"): self.messages}


def anthropic_server(faults: Faults | None = None, latency_s: float = 0.0, **options) -> FakeServer:
    fake = AnthropicFake(**options)
    server = FakeServer(fake.routes(), faults=faults, latency_s=latency_s)
    server.fake = fake
    return server
