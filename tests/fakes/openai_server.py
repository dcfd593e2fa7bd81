"""A strict fake of OpenAI's Chat Completions API (JSON and SSE streaming) on 127.0.0.1.

Strict the way the real API is: unknown request fields, a wrong type, JSON mode without the word
"json" in the messages, or a bad key get the real API's 400/401 error shapes. Reasoning models (REASONING)
refuse as the API does (texts checked 2026-12-07): a temperature other
than 1 (unless GPT-5.2+ at effort none), an effort the model does not take, max_tokens instead of
max_completion_tokens; reasoning_effort on a model that does not reason. They spend THOUGHT[effort]
reasoning tokens against max_completion_tokens before any answer: with no room left the answer is empty
and finish_reason "length", as the API does; usage reports them in completion_tokens_details.
Structured outputs as the API does them: a strict json_schema whose objects are not all closed
(additionalProperties false, every property required) is a 400, and a strict schema is always answered in
it (constrained decoding can produce nothing else): when the scripted answer is not JSON of the schema, the
answer is an instance made from the schema. A schema sent without strict is not enforced: the answer is as
scripted, valid or not.
Images (tests/fakes/images.py): a user message's content may be parts, `text` and `image_url` with a data URL;
an image anywhere else, a part in another shape, base64 that does not decode or bytes that are not a PNG, JPEG,
GIF or WebP image get the API's 400, and so does any image sent to a model in TEXT_ONLY. The answer says what
each image of the last user message is; usage counts each image by OpenAI's tile rule.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from tests.fakes import images
from tests.fakes import tools as brain
from tests.fakes.server import FakeServer, Faults, Received, Reply
from tests.fakes.verdicts import is_judging, verdict

ALLOWED = {"model", "messages", "temperature", "max_tokens", "max_completion_tokens", "stream",
           "stream_options", "response_format", "top_p", "n", "stop", "seed", "user", "reasoning_effort",
           "tools", "tool_choice", "parallel_tool_calls"}
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# the reasoning models this fake knows: id -> (the efforts it takes, its default); by OpenAI's API reference
REASONING = {
    "gpt-5": (("minimal", "low", "medium", "high"), "medium"),
    "gpt-5-mini": (("minimal", "low", "medium", "high"), "medium"),
    "gpt-5-nano": (("minimal", "low", "medium", "high"), "medium"),
    "gpt-5.1": (("none", "low", "medium", "high"), "none"),
    "gpt-5.2": (("none", "low", "medium", "high", "xhigh"), "none"),
    "gpt-5.4": (("none", "low", "medium", "high", "xhigh"), "none"),
    # GPT-5.5 and 5.6 reason at medium when told nothing, so a temperature without reasoning_effort none is a 400
    "gpt-5.5": (("none", "low", "medium", "high", "xhigh"), "medium"),
    "gpt-5.6-sol": (("none", "low", "medium", "high", "xhigh"), "medium"),
    "gpt-5.6-luna": (("none", "low", "medium", "high", "xhigh"), "medium"),
    "o3": (("low", "medium", "high"), "medium"),
    "o4-mini": (("low", "medium", "high"), "medium"),
}
# GPT-5.5 and later refuse a sampling parameter outright while they reason, in other words than gpt-5's (live
# probes in UKGovernmentBEIS/inspect_ai#5242, read 2026-12-07)
NO_SAMPLING_WHILE_REASONING = {"gpt-5.5", "gpt-5.6-sol", "gpt-5.6-luna"}
# reasoning tokens a call spends at each effort, before its answer
THOUGHT = {"none": 0, "minimal": 16, "low": 120, "medium": 480, "high": 1500, "xhigh": 3000}
ROLES = {"system", "user", "assistant", "developer"}
TEXT_ONLY = {"gpt-3.5-turbo", "gpt-4"}  # models that refuse image parts
PART_TYPES = "'text', 'image_url', 'input_audio', 'refusal', 'audio', and 'file'"
DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.S)
# Mistral's Chat Completions (model=mistral): OpenAI's shape, its own name for the seed, no max_completion_tokens
MISTRAL_FIELDS = (ALLOWED - {"seed", "max_completion_tokens", "user"}) | {"random_seed", "safe_prompt"}


def tools_problem(body: dict) -> Reply | None:
    """Chat Completions' rules for `tools` and for the assistant's tool calls and the tool messages answering them
    (texts as the API words them, checked 2026-12-07)."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            return _error(400, "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an "
                               "empty array instead.", "invalid_request_error", "empty_array", "tools")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict) \
                    or set(tool) - {"type", "function"}:
                return _error(400, f"Missing required parameter: 'tools[{i}].function'.", "invalid_request_error",
                              "missing_required_parameter", f"tools[{i}].function")
            if set(function) - {"name", "description", "parameters", "strict"}:
                return _error(400, f"Unrecognized request argument supplied: tools[{i}].function."
                                   f"{sorted(set(function) - {'name', 'description', 'parameters', 'strict'})[0]}",
                              "invalid_request_error")
            if not isinstance(function.get("name"), str) or not FUNCTION_NAME.match(function["name"]):
                return _error(400, f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected a "
                                   f"string that matches the pattern '^[a-zA-Z0-9_-]+$'.", "invalid_request_error",
                              "invalid_value", f"tools[{i}].function.name")
            parameters = function.get("parameters")
            if parameters is not None and (not isinstance(parameters, dict) or parameters.get("type") != "object"):
                return _error(400, f"Invalid schema for function '{function['name']}': schema must be a JSON Schema "
                                   f"of 'type: \"object\"', got 'type: \"{(parameters or {}).get('type')}\"'.",
                              "invalid_request_error", "invalid_function_parameters", f"tools[{i}].function.parameters")
    if "tool_choice" in body and tools is None:
        return _error(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                           "specified.", "invalid_request_error", None, "tool_choice")
    pending: list[str] = []  # the tool call ids the messages must answer next
    for i, m in enumerate(body["messages"]):
        role = m.get("role")
        if role == "tool":
            if "tool_call_id" not in m:
                return _error(400, "Missing parameter 'tool_call_id': messages with role 'tool' must have a "
                                   "'tool_call_id'.", "invalid_request_error", None, f"messages.[{i}].tool_call_id")
            if set(m) - {"role", "content", "tool_call_id"} or not isinstance(m.get("content"), str):
                return _error(400, f"Invalid message: {m}", "invalid_request_error")
            if m["tool_call_id"] not in pending:
                return _error(400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                                   "message with 'tool_calls'.", "invalid_request_error", None, f"messages.[{i}].role")
            pending.remove(m["tool_call_id"])
            continue
        if pending:
            return _error(400, f"An assistant message with 'tool_calls' must be followed by tool messages responding "
                               f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                               f"{', '.join(pending)}", "invalid_request_error", None, f"messages.[{i}].role")
        if role == "assistant" and "tool_calls" in m:
            if set(m) - {"role", "content", "tool_calls"} or not (m.get("content") is None
                                                                  or isinstance(m["content"], str)):
                return _error(400, f"Invalid message: {m}", "invalid_request_error")
            for j, call in enumerate(m["tool_calls"]):
                function = call.get("function") or {}
                if not isinstance(call.get("id"), str) or call.get("type") != "function" \
                        or not isinstance(function.get("name"), str):
                    return _error(400, f"Missing required parameter: 'messages[{i}].tool_calls[{j}].id'.",
                                  "invalid_request_error", "missing_required_parameter",
                                  f"messages[{i}].tool_calls[{j}].id")
                if not isinstance(function.get("arguments"), str):
                    return _error(400, f"Invalid type for 'messages[{i}].tool_calls[{j}].function.arguments': "
                                       f"expected a string, but got an object instead.", "invalid_request_error",
                                  "invalid_type", f"messages[{i}].tool_calls[{j}].function.arguments")
                pending.append(call["id"])
        elif m.get("role") not in ROLES or not isinstance(m.get("content"), (str, list)) \
                or set(m) - {"role", "content", "name"}:
            return _error(400, f"Invalid message: {m}", "invalid_request_error")
        else:
            problem = content_problem(i, m, body["model"])
            if problem:
                return problem
    if pending:
        return _error(400, f"An assistant message with 'tool_calls' must be followed by tool messages responding to "
                           f"each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                           f"{', '.join(pending)}", "invalid_request_error", None, "messages")
    return None


def tool_turn(body: dict) -> brain.Decision | None:
    """What the fake model does when offered tools (tests.fakes.tools), from Chat Completions' messages."""
    if not body.get("tools"):
        return None
    messages = body["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    after = messages[last_user + 1:]
    rounds = [i for i, m in enumerate(after) if m["role"] == "assistant" and m.get("tool_calls")]
    latest = after[rounds[-1]:] if rounds else []  # the last round of calls and the results answering it
    calls = {c["id"]: c["function"]["name"] for m in latest[:1] for c in m["tool_calls"]}
    results = [brain.Result(calls.get(m["tool_call_id"], "?"), m["content"], m["content"].startswith("error:"))
               for m in latest if m["role"] == "tool"]
    return brain.decide(text_of(messages[last_user]), [t["function"]["name"] for t in body["tools"]], results,
                        len(rounds))


def words(text: str) -> int:
    return len(text.split())


def text_of(message: dict) -> str:
    content = message.get("content")
    if not isinstance(content, list):  # text, or an assistant's tool calls without text (None)
        return content or ""
    return " ".join(p["text"] for p in content if p["type"] == "text")


def images_of(message: dict) -> list[bytes]:
    """The decoded images of a (valid) message."""
    content = message.get("content")
    return [] if not isinstance(content, list) else [
        images.decode(DATA_URL.fullmatch(p["image_url"]["url"]).group(2)) for p in content if p["type"] == "image_url"]


def default_answer(messages: list[dict]) -> str:
    if is_judging(messages):  # a task's judge (runner.scorers): the verdict it asks for
        return verdict(messages)
    last = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
    seen = "".join(f" {images.seen(data)}" for data in images_of(last))
    return f"Answer to: {' '.join(text_of(last).split()[:12])}{seen}"


def content_problem(i: int, message: dict, model: str) -> Reply | None:
    """The API's 400 for a message whose content parts it refuses (None: plain text, or parts it takes)."""
    content = message.get("content")
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return _error(400, f"Invalid message: {message}", "invalid_request_error")
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if set(part) != {"type", "text"} or not isinstance(part["text"], str):
                return _error(400, f"Invalid value for '{where}.text': expected a string.", "invalid_request_error",
                              "invalid_type", f"{where}.text")
            continue
        if kind != "image_url":
            return _error(400, f"Invalid value: '{kind}'. Supported values are: {PART_TYPES}.", "invalid_request_error",
                          "invalid_value", f"{where}.type")
        if message["role"] != "user":
            return _error(400, f"Image URLs are only allowed for messages with role 'user', but this message with role "
                               f"'{message['role']}' contains an image URL.", "invalid_request_error", None,
                          f"messages.[{i}].content.[{j}].type")
        if model in TEXT_ONLY:
            return _error(400, "Invalid content type. image_url is only supported by certain models.",
                          "invalid_request_error", None, f"messages.[{i}].content.[{j}].type")
        spec = part.get("image_url")
        if set(part) != {"type", "image_url"} or not isinstance(spec, dict) or set(spec) - {"url", "detail"} \
                or not isinstance(spec.get("url"), str) or spec.get("detail", "auto") not in ("auto", "low", "high"):
            return _error(400, f"Missing required parameter: '{where}.image_url.url'.", "invalid_request_error",
                          "missing_required_parameter", f"{where}.image_url.url")
        url = DATA_URL.fullmatch(spec["url"])
        if url is None:  # the real API downloads an https URL; the runner sends data URLs, and so must a test
            return _error(400, "Invalid image URL: this fake takes data URLs only (data:image/...;base64,...).",
                          "invalid_request_error", "invalid_image_url", f"{where}.image_url.url")
        data = images.decode(url.group(2))
        if data is None:
            return _error(400, "Invalid base64 image_url.", "invalid_request_error", "invalid_image_url",
                          f"{where}.image_url.url")
        found = images.sniff(data)
        if found is None or found[0] not in images.SUPPORTED:
            return _error(400, "You uploaded an unsupported image. Please make sure your image has of one the "
                               "following formats: ['png', 'jpeg', 'gif', 'webp'].", "invalid_request_error",
                          "invalid_image_format")
    return None


def image_tokens(messages: list[dict]) -> int:
    return sum(images.openai_tokens(*images.sniff(data)[1:]) for m in messages for data in images_of(m))


def not_strict(schema: dict, context: tuple = ()) -> str | None:
    """Why strict structured outputs refuse this schema (the API's words; the first object that is not closed),
    or None. Checked 2026-12-07: "In context=(), 'additionalProperties' is required to be supplied and to be
    false." is quoted in many issue threads; the `required` wording is the fake's own."""
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return f"In context={context}, 'additionalProperties' is required to be supplied and to be false."
        missing = [name for name in schema.get("properties") or {} if name not in (schema.get("required") or [])]
        if missing:
            return (f"In context={context}, 'required' is required to be supplied and to be an array including "
                    f"every key in properties. Missing '{missing[0]}'.")
    for name, child in (schema.get("properties") or {}).items():
        problem = not_strict(child, (*context, "properties", name))
        if problem:
            return problem
    if isinstance(schema.get("items"), dict):
        return not_strict(schema["items"], (*context, "items"))
    return None


def instance(schema: dict):
    """The least JSON value of this schema: what a model under constrained decoding could answer."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("anyOf"):
        return instance(schema["anyOf"][0])
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {name: instance(child) for name, child in (schema.get("properties") or {}).items()}
    if kind == "array":
        items = schema.get("items")
        return [instance(items)] * max(1, schema.get("minItems", 1)) if isinstance(items, dict) else []
    return {"string": "text", "integer": 1, "number": 0.5, "boolean": True, "null": None}[kind]


def follows(text: str, schema: dict) -> bool:
    import jsonschema

    try:
        return jsonschema.Draft202012Validator(schema).is_valid(json.loads(text))
    except json.JSONDecodeError:
        return False


def _error(status: int, message: str, type_: str, code=None, param=None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": type_, "param": param, "code": code}})


def _listed(values) -> str:
    """'none', 'low', 'medium', and 'high': how the API lists the values it takes."""
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def refusal(body: dict) -> Reply | None:
    """What the API says to a request a reasoning model (or one that does not reason) refuses."""
    model = body["model"]
    effort = body.get("reasoning_effort")
    if model not in REASONING:
        if "reasoning_effort" in body:
            return _error(400, "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                          "invalid_request_error", "unsupported_parameter", "reasoning_effort")
        return None
    efforts, default = REASONING[model]
    if "max_tokens" in body:
        return _error(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                           "'max_completion_tokens' instead.", "invalid_request_error", "unsupported_parameter",
                      "max_tokens")
    if effort is not None and effort not in efforts:
        return _error(400, f"Unsupported value: '{effort}' is not supported with the '{model}' model. Supported "
                           f"values are: {_listed(efforts)}.", "invalid_request_error", "unsupported_value",
                      "reasoning_effort")
    sampling_allowed = (effort or default) == "none" and model not in ("gpt-5.1",)
    t = body.get("temperature")
    if t is not None and not sampling_allowed and model in NO_SAMPLING_WHILE_REASONING:
        return _error(400, "Unsupported parameter: 'temperature' is not supported with this model.",
                      "invalid_request_error", "unsupported_parameter", "temperature")
    if t is not None and t != 1 and not sampling_allowed:
        return _error(400, f"Unsupported value: 'temperature' does not support {t} with this model. Only the "
                           f"default (1) value is supported.", "invalid_request_error", "unsupported_value",
                      "temperature")
    return None


def thought(body: dict) -> int:
    """Reasoning tokens this call spends (0 for a model that does not reason)."""
    if body["model"] not in REASONING:
        return 0
    return THOUGHT[body.get("reasoning_effort") or REASONING[body["model"]][1]]


class OpenAIFake:
    """Routes for /v1/chat/completions. `answer(messages) -> text` decides what the model says."""

    def __init__(self, key: str = "test-key", answer: Callable[[list[dict]], str] = default_answer,
                 usage_in_stream: bool = True, cached_tokens: int = 0, stream_error_after: int | None = None,
                 chunk_delay_s: float = 0.0, echo_key: bool = False, token_details: bool = True,
                 fields: set[str] = ALLOWED, tools: Callable[[dict], brain.Decision | None] = tool_turn,
                 finish_in_stream: bool = True):
        self.key = key
        self.tools = tools  # what the model does when offered tools: call some, or answer (None: not offered)
        self.calls_made = 0
        self.fields = fields  # the request fields the API knows (MISTRAL_FIELDS for Mistral's)
        self.echo_key = echo_key  # a careless server: its 401 repeats the credentials it was sent
        self.answer = answer
        self.usage_in_stream = usage_in_stream
        self.cached_tokens = cached_tokens
        self.stream_error_after = stream_error_after
        self.chunk_delay_s = chunk_delay_s
        self.token_details = token_details  # false: usage without *_tokens_details, as some compatible servers send
        self.finish_in_stream = finish_in_stream  # false: a broken stream, its usage sent but never a finish reason

    def usage(self, messages, text, reasoning_tokens: int = 0) -> dict:
        said = [text_of(m) for m in messages]
        said += [c["function"]["arguments"] for m in messages for c in m.get("tool_calls") or []]
        prompt = sum(words(text) for text in said) + 3 * len(messages) + image_tokens(messages)
        completion = words(text) + reasoning_tokens  # completion_tokens includes the reasoning tokens
        counts = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if not self.token_details:
            return counts
        return {**counts,
                "prompt_tokens_details": {"cached_tokens": min(self.cached_tokens, prompt), "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": reasoning_tokens, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def validate(self, request: Received) -> Reply | None:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.key}":
            echoed = f" You sent: Authorization: {auth}" if self.echo_key else ""
            return _error(401, f"Incorrect API key provided.{echoed}", "invalid_request_error", "invalid_api_key")
        try:
            body = request.json
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        unknown = set(body) - self.fields
        if unknown:
            return _error(400, f"Unrecognized request argument supplied: {sorted(unknown)[0]}", "invalid_request_error")
        for name in ("seed", "random_seed"):
            if name in body and (type(body[name]) is not int or body[name] < 0):
                return _error(400, f"Invalid type for '{name}': expected an integer, but got {body[name]!r} instead.",
                              "invalid_request_error")
        if not isinstance(body.get("model"), str):
            return _error(400, "you must provide a model parameter", "invalid_request_error")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty array", "invalid_request_error")
        problem = tools_problem(body)
        if problem is not None:
            return problem
        t = body.get("temperature", 1)
        if not isinstance(t, (int, float)) or not 0 <= t <= 2:
            return _error(400, f"Invalid 'temperature': {t}", "invalid_request_error")
        for key in ("max_tokens", "max_completion_tokens"):
            if key in body and (not isinstance(body[key], int) or body[key] < 1):
                return _error(400, f"Invalid '{key}'", "invalid_request_error")
        if "stream_options" in body and not body.get("stream"):
            return _error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                          "invalid_request_error")
        fmt = body.get("response_format")
        if fmt is not None:
            if fmt.get("type") not in ("json_object", "json_schema", "text"):
                return _error(400, "Invalid 'response_format'", "invalid_request_error")
            if fmt.get("type") == "json_object" and not any("json" in text_of(m).lower() for m in messages):
                return _error(400, "'messages' must contain the word 'json' in some form, to use "
                                   "'response_format' of type 'json_object'.", "invalid_request_error")
            if fmt.get("type") == "json_schema":
                spec = fmt.get("json_schema")
                if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) \
                        or not isinstance(spec.get("schema"), dict):
                    return _error(400, "Missing required parameter: 'response_format.json_schema'.",
                                  "invalid_request_error", "missing_required_parameter", "response_format.json_schema")
                problem = spec.get("strict") and not_strict(spec["schema"])
                if problem:
                    return _error(400, f"Invalid schema for response_format '{spec['name']}': {problem}",
                                  "invalid_request_error", param="response_format")
        return refusal(body)

    def chat(self, request: Received) -> Reply:
        problem = self.validate(request)
        if problem:
            return problem
        body = request.json
        decision = self.tools(body)
        if decision is not None and decision.calls:
            return self._tool_calls(body, decision.calls)
        text = decision.text if decision is not None else self.answer(body["messages"])
        spec = (body.get("response_format") or {}).get("json_schema") or {}
        if spec.get("strict") and not follows(text, spec["schema"]):  # constrained decoding: only the schema
            text = json.dumps(instance(spec["schema"]))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        reasoning = thought(body)
        if limit is not None and reasoning >= limit:  # the cap ran out while it was still thinking
            reasoning, text, finish = limit, "", "length"
        elif limit is not None and words(text) + reasoning > limit:
            text = " ".join(text.split()[:limit - reasoning])
            finish = "length"
        usage = self.usage(body["messages"], text, reasoning)
        ident = f"chatcmpl-{int(time.time() * 1000)}"
        if not body.get("stream"):
            return Reply(200, {
                "id": ident, "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": finish}],
                "usage": usage, "system_fingerprint": "fp_test", "service_tier": "default"})
        include_usage = (body.get("stream_options") or {}).get("include_usage") and self.usage_in_stream
        return Reply(200, headers={"Content-Type": "text/event-stream"}, chunk_delay_s=self.chunk_delay_s,
                     chunks=self._sse(ident, body["model"], text, finish, usage if include_usage else None))

    def _tool_calls(self, body: dict, calls: list[tuple[str, dict]]) -> Reply:
        """The model calls tools: `message.tool_calls` (arguments as JSON text), finish_reason tool_calls; streamed,
        each call starts with its index, id and name, and its arguments follow in pieces."""
        self.calls_made += len(calls)
        made = [{"id": f"call_{self.calls_made - len(calls) + i + 1:04d}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(arguments)}}
                for i, (name, arguments) in enumerate(calls)]
        text = " ".join(c["function"]["arguments"] for c in made)
        usage = self.usage(body["messages"], text)
        ident, created, model = f"chatcmpl-{int(time.time() * 1000)}", int(time.time()), body["model"]
        if not body.get("stream"):
            return Reply(200, {
                "id": ident, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None,
                                                     "tool_calls": made},
                             "logprobs": None, "finish_reason": "tool_calls"}],
                "usage": usage, "system_fingerprint": "fp_test", "service_tier": "default"})

        def chunks():
            def chunk(delta, finish_reason=None):
                return ("data: " + json.dumps({
                    "id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": "fp_test",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]})
                    + "\n\n").encode()

            yield chunk({"role": "assistant", "content": None})
            for index, call in enumerate(made):
                yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": ""}}]})
                for piece in brain.argument_text(json.loads(call["function"]["arguments"])):
                    yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            if self.finish_in_stream:
                yield chunk({}, "tool_calls")
            if (body.get("stream_options") or {}).get("include_usage") and self.usage_in_stream:
                yield ("data: " + json.dumps({"id": ident, "object": "chat.completion.chunk", "created": created,
                                              "model": model, "system_fingerprint": "fp_test", "choices": [],
                                              "usage": usage}) + "\n\n").encode()
            yield b"data: [DONE]\n\n"

        return Reply(200, headers={"Content-Type": "text/event-stream"}, chunk_delay_s=self.chunk_delay_s,
                     chunks=chunks())

    def _sse(self, ident, model, text, finish, usage):
        def chunk(delta, finish_reason=None, choices=True, usage_=None):
            data = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                    "system_fingerprint": "fp_test",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
                    if choices else []}
            if usage_ is not None:
                data["usage"] = usage_
            return f"data: {json.dumps(data)}\n\n".encode()

        yield chunk({"role": "assistant", "content": ""})
        pieces = text.split(" ") if text else []
        for i, word in enumerate(pieces):
            if self.stream_error_after is not None and i == self.stream_error_after:
                error = {"message": "The server had an error while processing your request.", "type": "server_error"}
                yield f"data: {json.dumps({'error': error})}\n\n".encode()
                return
            yield chunk({"content": word if i == 0 else " " + word})
        if self.finish_in_stream:
            yield chunk({}, finish)
        if usage is not None:
            yield chunk(None, choices=False, usage_=usage)
        yield b"data: [DONE]\n\n"

    def routes(self) -> dict:
        return {("POST", "/v1/chat/completions"): self.chat}


def openai_server(faults: Faults | None = None, latency_s: float = 0.0, **options) -> FakeServer:
    fake = OpenAIFake(**options)
    server = FakeServer(fake.routes(), faults=faults, latency_s=latency_s)
    server.fake = fake
    return server
