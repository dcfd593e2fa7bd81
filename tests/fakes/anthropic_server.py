"""A strict fake of Anthropic's Messages API (JSON and SSE streaming) on 127.0.0.1.

Strict the way the real API is: a missing key or `anthropic-version` header, unknown request fields,
a missing `max_tokens`, temperature outside 0..1, a "system" role inside `messages`, or a final
assistant turn ending in whitespace get the real API's error shapes. Streams carry the real `event:`
lines, and an in-stream `event: error` can be injected.

Each model it serves (MODELS; any other is a 404 as on the real API) refuses what the API refuses for it
(texts checked 2026-12-07): an assistant prefill on Claude 4.6 and
later; a temperature with thinking, or any temperature on Opus 4.7 and later; `thinking.type` values the
model does not take (budget_tokens on Opus 4.7 and later); budget_tokens under 1,024 or not below
max_tokens; effort on a model without it; a forced tool call while thinking; an open object in a
structured output's schema. A thinking call spends THOUGHT[effort] tokens (an eighth of budget_tokens)
before its answer, against max_tokens: with no room left the answer is empty and the stop reason
`max_tokens`. Thinking comes first as a `thinking` block (its summary, or empty where the model omits it by
default and `display: summarized` was not asked), streamed as thinking_delta and signature_delta events;
usage counts it in `output_tokens` and says how many in `output_tokens_details.thinking_tokens`.
A forced tool call answers with a `tool_use` block whose input is the answer's JSON object.

Tools (checked 2026-12-07): offered `tools`, the model calls them as the
fakes' tool brain decides (tests.fakes.tools): `tool_use` blocks (id, name, input), stop reason `tool_use`,
streamed as input_json_delta pieces. A request refuses, with the API's texts: a `tool_use` not answered by a
`tool_result` in the next message, a `tool_result` whose `tool_use_id` is missing or answers no `tool_use` of the
message before; with thinking on, a tool loop whose last assistant turn does not start with its thinking block,
and a thinking block whose signature is not the one the fake gave it (the fake's own wording).

Images (tests/fakes/images.py): a user message's content may be blocks, `text` and `image` with a base64 source;
an image block in another shape or in an assistant turn, a media type the API does not take, base64 that does not
decode, bytes that are no image or not of the type declared get the API's 400. The answer says what each image of
the last user message is; usage counts each image as width x height / 750 tokens.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes import images
from tests.fakes import tools as brain
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
    # Haiku 5.5: adaptive only (budget_tokens is a 400), on unless disabled, effort medium by default
    "claude-haiku-5-5": Rules(frozenset({"adaptive", "disabled"}), thinks=True, efforts=EFFORTS,
                              default_effort="medium", sampling=False, prefill=False, display="omitted"),
    "claude-sonnet-5-5": Rules(frozenset({"adaptive", "between_tools"}), thinks=True, efforts=EFFORTS,
                               sampling=False, prefill=False, display="omitted"),
}


def words(text: str) -> int:
    return len(text.split())


def text_of(content) -> str:
    """A message's text: the string, or its text blocks (tool results and thinking left out)."""
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def said(content) -> str:
    """Every word a message carries, for counting: text, thinking, tool inputs and tool results."""
    if isinstance(content, str):
        return content
    parts = []
    for b in content:
        if b.get("type") == "tool_use":
            parts.append(json.dumps(b.get("input")))
        elif b.get("type") == "tool_result":
            parts.append(b["content"] if isinstance(b.get("content"), str) else text_of(b.get("content") or []))
        else:
            parts.append(b.get("text") or b.get("thinking") or "")
    return " ".join(parts)


def signature(thinking: str) -> str:
    """The signature the fake gives a thinking block: it must come back with that very text."""
    return "EqQBCkYIBhgCIkA" + hashlib.sha256(thinking.encode()).hexdigest()[:24]


def last_question(messages: list[dict]) -> str:
    return next((text_of(m["content"]) for m in reversed(messages) if m["role"] == "user" and text_of(m["content"])),
                "")


def images_of(message: dict) -> list[bytes]:
    """The decoded images of a (valid) message."""
    content = message.get("content")
    return [] if not isinstance(content, list) else [
        images.decode(b["source"]["data"]) for b in content if b.get("type") == "image"]


def default_answer(messages: list[dict]) -> str:
    if is_judging(messages):  # a task's judge (runner.scorers): the verdict it asks for
        return verdict(messages)
    asked = next((m for m in reversed(messages) if m["role"] == "user" and text_of(m["content"])), {"content": ""})
    seen = "".join(f" {images.seen(data)}" for data in images_of(asked))
    return f"Answer to: {' '.join(text_of(asked['content']).split()[:12])}{seen}"


IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
BLOCKS = {"user": {"text": {"type", "text", "cache_control"}, "image": {"type", "source", "cache_control"},
                   "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"}},
          "assistant": {"text": {"type", "text"}, "thinking": {"type", "thinking", "signature"},
                        "redacted_thinking": {"type", "data"}, "tool_use": {"type", "id", "name", "input"}}}


def blocks_problem(messages: list[dict], thinks: bool) -> Reply | None:
    """The Messages API's rules for content blocks, tool use and tool results, and thinking in a tool loop."""
    for i, m in enumerate(messages):
        content = m["content"]
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            return _invalid(f"messages.{i}: all messages must have non-empty content")
        for j, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "image":
                problem = image_problem(f"messages.{i}.content.{j}", block, m["role"])
                if problem:
                    return problem
                continue
            if kind == "text" and not isinstance(block.get("text"), str):
                return _invalid(f"messages.{i}.content.{j}.text.text: Input should be a valid string")
            fields = BLOCKS[m["role"]].get(kind)
            if fields is None:
                return _invalid(f"messages.{i}.content.{j}.type: Input tag '{kind}' found using 'type' does not match "
                                f"any of the expected tags: {', '.join(repr(k) for k in BLOCKS[m['role']])}")
            if kind == "tool_result" and "tool_use_id" not in block:
                return _invalid(f"messages.{i}.content.{j}.tool_result.tool_use_id: Field required")
            if set(block) - fields:
                return _invalid(f"messages.{i}.content.{j}.{kind}.{sorted(set(block) - fields)[0]}: Extra inputs are "
                                f"not permitted")
            if kind == "tool_use" and not isinstance(block.get("input"), dict):
                return _invalid(f"messages.{i}.content.{j}.tool_use.input: Input should be a valid dictionary")
            if kind == "thinking" and block.get("signature") != signature(block.get("thinking") or ""):
                return _invalid(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
    for i, m in enumerate(messages):  # the fields first, as the API validates them; then the pairing
        content = m["content"]
        if isinstance(content, str):
            continue
        asked = [b["id"] for b in content if b.get("type") == "tool_use"]
        if asked:
            after = messages[i + 1]["content"] if i + 1 < len(messages) else []
            answered = {b.get("tool_use_id") for b in after if isinstance(b, dict) and b.get("type") == "tool_result"} \
                if isinstance(after, list) else set()
            missing = [ident for ident in asked if ident not in answered]
            if missing:
                return _invalid(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                                f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                                f"`tool_result` block in the next message.")
        for j, block in enumerate(content):
            if block.get("type") == "tool_result":
                before = messages[i - 1]["content"] if i else []
                ids = {b.get("id") for b in before if isinstance(b, dict) and b.get("type") == "tool_use"} \
                    if isinstance(before, list) else set()
                if block["tool_use_id"] not in ids:
                    return _invalid(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                                    f"blocks: {block['tool_use_id']}. Each `tool_result` block must have a "
                                    f"corresponding `tool_use` block in the previous message.")
    last = messages[-1]
    in_loop = isinstance(last["content"], list) and any(b.get("type") == "tool_result" for b in last["content"])
    if thinks and in_loop and len(messages) > 1:
        i = len(messages) - 2
        first = messages[i]["content"][0] if isinstance(messages[i]["content"], list) else {"type": "text"}
        if first.get("type") not in ("thinking", "redacted_thinking"):
            return _invalid(f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                            f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message must "
                            f"start with a thinking block (preceeding the lastmost set of `tool_use` and "
                            f"`tool_result` blocks). We recommend you include thinking blocks from previous turns. "
                            f"To avoid this requirement, disable `thinking`. Please consult our documentation at "
                            f"{DOCS}")
    return None


def tool_turn(body: dict) -> brain.Decision | None:
    """What the fake model does when offered tools (tests.fakes.tools), from the Messages API's content blocks."""
    tools = [t["name"] for t in body.get("tools") or [] if t["name"] != "json_answer"]
    if not tools or (body.get("tool_choice") or {}).get("type") == "tool":
        return None
    messages = body["messages"]
    asked = max(i for i, m in enumerate(messages) if m["role"] == "user" and text_of(m["content"]))
    after = messages[asked + 1:]
    rounds = sum(1 for m in after if isinstance(m["content"], list) and any(b.get("type") == "tool_use"
                                                                           for b in m["content"]))
    results = []
    if after and isinstance(after[-1]["content"], list):
        names = {b["id"]: b["name"] for m in after for b in (m["content"] if isinstance(m["content"], list) else [])
                 if b.get("type") == "tool_use"}
        results = [brain.Result(names.get(b["tool_use_id"], "?"), said([b]), bool(b.get("is_error")))
                   for b in after[-1]["content"] if b.get("type") == "tool_result"]
    return brain.decide(text_of(messages[asked]["content"]), tools, results, rounds)


def image_problem(where: str, block: dict, role: str) -> Reply | None:
    """The API's 400 for an image block it refuses (None: a base64 image it takes)."""
    if role != "user":  # the fake's wording: only a user turn shows the model a picture
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
    return f"The user asks: {' '.join(last_question(messages).split()[:8])}. I will answer briefly."


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
                 chunk_delay_s: float = 0.0, echo_key: bool = False, thinking_details: bool = True,
                 tools: Callable[[dict], brain.Decision | None] = tool_turn):
        self.key = key
        self.tools = tools  # what the model does when offered tools: call some, or answer (None: not offered)
        self.calls_made = 0
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
        last = text_of(messages[-1]["content"])  # content blocks: blocks_problem, below
        if messages[-1]["role"] == "assistant" and last != last.rstrip():
            return _invalid("messages: final assistant content cannot end with trailing whitespace")
        if body["model"] not in MODELS:
            return _error(404, "not_found_error", f"model: {body['model']}")
        return refusal(body) or blocks_problem(messages, thinking_of(body) is not None)

    def usage(self, body: dict, text: str, thinking: int = 0) -> dict:
        system = body.get("system") or ""
        system_words = words(system if isinstance(system, str) else " ".join(b.get("text", "") for b in system))
        pictures = sum(images.anthropic_tokens(*images.sniff(data)[1:]) for m in body["messages"]
                       for data in images_of(m))
        total = system_words + sum(words(said(m["content"])) for m in body["messages"]) + 3 * len(body["messages"]) \
            + pictures
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
        decision = self.tools(body)
        calls = decision.calls if decision is not None else []
        text = decision.text if decision is not None else self.answer(conversation(body))
        last = body["messages"][-1]
        if last["role"] == "assistant" and text.startswith(text_of(last["content"])):
            text = text[len(text_of(last["content"])):]  # the model continues its prefilled turn
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
            thinking = summary(body["messages"]) if display == "summarized" else ""
            content.append({"type": "thinking", "signature": signature(thinking), "thinking": thinking})
        if tool is not None:
            content.append({"type": "tool_use", "id": "toolu_01test", "name": tool, "input": json.loads(text)})
        elif calls and finish != "max_tokens":  # the model calls tools (parallel calls: several blocks)
            for name, arguments in calls:
                self.calls_made += 1
                content.append({"type": "tool_use", "id": f"toolu_01{self.calls_made:06d}", "name": name,
                                "input": arguments})
            text, finish = " ".join(json.dumps(arguments) for _, arguments in calls), "tool_use"
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
