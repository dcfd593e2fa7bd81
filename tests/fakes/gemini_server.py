"""A strict fake of the Gemini API (generateContent, streamGenerateContent) on 127.0.0.1.

It speaks both wire formats the two Google SDKs use:
- google-genai: `POST /{version}/models/{model}:generateContent`, and `:streamGenerateContent?alt=sse`
  (server-sent events, one `data:` line per chunk).
- google-generativeai over REST: the same paths with `?$alt=json;enum-encoding=int` (enums as numbers),
  and streaming as one JSON array sent in pieces (`[{...}\r\n,\r\n{...}]`), not SSE.
Strict the way the real API is: unknown request fields, roles other than user/model, a temperature
outside 0..2 or a bad key get Google's error bodies. A wrong key gets what Google really sends
(400 INVALID_ARGUMENT with reason API_KEY_INVALID); `reject_key_with` picks 401 or 403 instead.
Usage comes in `usageMetadata`; when streaming, only the last chunk carries the full counts.

Thinking, as the API does it for the models in THINKERS (texts checked 2026-12-07):
`generationConfig.thinkingConfig` takes thinkingBudget on 2.5 (0 turns thinking off on Flash and
Flash-Lite, not on Pro; each model has its range), thinkingLevel on 3.x (each model its own levels), not both,
and nothing on a model that does not think. Field names are taken in either spelling (thinkingLevel or
thinking_level), as proto3 JSON parsing does. A call thinks before it answers and its thoughts count against
maxOutputTokens: when they use it all the answer is empty (finishReason MAX_TOKENS, a content without parts).
`usageMetadata.thoughtsTokenCount` reports them beside candidatesTokenCount (totalTokenCount is their sum with
the prompt). With includeThoughts the thought summary comes first, as parts marked `"thought": true`; Gemini 3's
answers carry a thoughtSignature on their first part. A call whose system instruction is a task judge's
(runner.scorers) gets the verdict it asks for, as the other fakes do (tests/fakes/verdicts.py).

Function calling (checked 2026-12-07): `tools` of functionDeclarations
(`parameters`, the Schema proto, or `parametersJsonSchema`, JSON Schema; either spelling of the field names).
Offered tools, the model calls them as the fakes' tool brain decides (tests.fakes.tools): `functionCall` parts,
each in a chunk of its own when streamed, with an `id` on Gemini 3 (none on 2.5) and a thoughtSignature on the
first. A request refuses, with the API's texts: a turn of functionResponse parts that does not answer every call
of the model turn before it; a response without the id its call had (the fake's wording, from an issue title);
on Gemini 3, a function call part sent back without its thought signature.

Images (tests/fakes/images.py): a part is `text` or `inlineData` {mimeType, data} (either spelling of each field,
data in either base64 alphabet, as proto3 JSON parsing takes them: google-genai sends `inlineData` with `mime_type`
and URL-safe base64, google-generativeai `mimeType` and the standard alphabet). A part with anything else, base64
that does not decode, a type Gemini does not take (GIF among them) or bytes that are no image get the API's 400.
The answer says what each image of the last user turn is; usage counts 258 tokens an image (Gemini 2.x's rule).
"""
from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from tests.fakes import images
from tests.fakes import tools as brain
from tests.fakes.openai_server import words
from tests.fakes.server import FakeServer, Faults, Received, Reply
from tests.fakes.verdicts import is_judging, verdict

VERSIONS = ("v1", "v1beta")
BODY_FIELDS = {"contents", "systemInstruction", "generationConfig", "safetySettings", "tools", "toolConfig",
               "cachedContent"}
GENERATION_FIELDS = {"temperature", "maxOutputTokens", "topP", "topK", "candidateCount", "stopSequences",
                     "responseMimeType", "responseSchema", "responseJsonSchema", "presencePenalty",
                     "frequencyPenalty", "seed", "thinkingConfig", "responseModalities"}
MIME_TYPES = {"text/plain", "application/json", "text/x.enum"}
# google.ai.generativelanguage's FinishReason numbers, sent when the client asks for enum-encoding=int
FINISH_NUMBERS = {"STOP": 1, "MAX_TOKENS": 2, "SAFETY": 3}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
LEVELS = ("minimal", "low", "medium", "high")
IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}  # not GIF


@dataclass(frozen=True)
class Thinker:
    """How one model thinks: by budget (2.5: its range, whether 0 turns thinking off, whether it thinks when
    told nothing) or by level (3.x: the levels it takes and its default)."""

    budget: tuple[int, int] | None = None
    can_turn_off: bool = False
    thinks_by_default: bool = True
    levels: tuple[str, ...] = ()
    default_level: str | None = None


# the thinking models this fake knows (Google's thinking docs as of 2026-12-07); any other model does not think
THINKERS = {
    "gemini-2.5-pro": Thinker(budget=(128, 32768)),
    "gemini-2.5-flash": Thinker(budget=(1, 24576), can_turn_off=True),
    "gemini-2.5-flash-lite": Thinker(budget=(512, 24576), can_turn_off=True, thinks_by_default=False),
    "gemini-3-pro-preview": Thinker(levels=("low", "high"), default_level="high"),
    "gemini-3.1-pro-preview": Thinker(levels=("low", "medium", "high"), default_level="high"),
    "gemini-3-flash-preview": Thinker(levels=LEVELS, default_level="high"),
    "gemini-3.1-flash-lite": Thinker(levels=LEVELS, default_level="high"),
    "gemini-3.5-flash": Thinker(levels=LEVELS, default_level="medium"),
    "gemini-3.5-flash-lite": Thinker(levels=LEVELS, default_level="minimal"),
    "gemini-3.7-flash": Thinker(levels=("low", "medium", "high"), default_level="medium"),
    "gemini-3.8-flash": Thinker(levels=("low", "medium", "high"), default_level="medium"),  # no minimal, as 3.7
}
# thought tokens a call spends: by level; by budget (at most the budget); dynamic thinking (2.5 told nothing,
# or budget -1) spends more than the 256 tokens a default max_tokens leaves, as the real models do
LEVEL_THOUGHTS = {"minimal": 16, "low": 120, "medium": 480, "high": 1500}
DYNAMIC_THOUGHTS = 1000
THINKING_FIELDS = {"includeThoughts": "include_thoughts", "thinkingBudget": "thinking_budget",
                   "thinkingLevel": "thinking_level"}
SCHEMA_FIELDS = ("responseSchema", "responseJsonSchema")
SIGNATURE = base64.b64encode(b"fake-thought-signature").decode()


def budget_thoughts(budget: int) -> int:
    return 0 if budget == 0 else min(budget, 100 + budget // 8)


PART_FIELDS = {"text": "text", "thought": "thought", "thoughtSignature": "thought_signature",
               "functionCall": "function_call", "functionResponse": "function_response", "inlineData": "inline_data"}
DATA_FIELDS = ("text", "functionCall", "functionResponse", "inlineData")
FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")


def camel(part: dict) -> dict | None:
    """A part with its field names as the API's JSON names them (proto3 JSON takes either spelling); None when a
    field is not a Part's."""
    named = {}
    for name, value in part.items():
        known = next((c for c, snake in PART_FIELDS.items() if name in (c, snake)), None)
        if known is None:
            return None
        named[known] = value
    return named


def asked_turn(contents: list[dict]) -> dict:
    """The last user turn with text (a turn of function responses is no question)."""
    return next((c for c in reversed(contents) if c["role"] == "user" and text_of(c)), {})


def question_of(contents: list[dict]) -> str:
    """The last user turn's text."""
    return text_of(asked_turn(contents))


def _blob(part: dict) -> dict | None:
    return part.get("inlineData", part.get("inline_data")) if isinstance(part, dict) else None


def text_of(content: dict) -> str:
    return " ".join(p["text"] for p in map(camel, content.get("parts", [])) if p and "text" in p)


def images_of(content: dict) -> list[bytes]:
    """The decoded images of a (valid) content."""
    return [images.decode(_blob(part)["data"], urlsafe_too=True) for part in content.get("parts", [])
            if _blob(part) is not None]


def part_problem(where: str, part) -> Reply | None:
    """The API's 400 for a part it refuses (None: an inline image it takes, or a part of another kind)."""
    if not isinstance(part, dict):
        return google_error(400, f"Invalid JSON payload received. Expected an object at '{where}'.")
    blob = _blob(part)
    if blob is None and camel(part) is not None:
        return None  # text, a function call or response: checked with their turn (GeminiFake._parts_ok)
    if blob is None or len(part) != 1:
        return google_error(400, f"Invalid JSON payload received. Unknown name in part at '{where}': {sorted(part)}")
    spelled = {("mimeType" if key == "mime_type" else key): value for key, value in blob.items()}
    if set(spelled) != {"mimeType", "data"} or not isinstance(spelled["mimeType"], str):
        return google_error(400, f"* GenerateContentRequest.{where}.inline_data: mime_type and data are required")
    data = images.decode(spelled["data"], urlsafe_too=True)
    if data is None:
        shown = str(spelled["data"])[:40]
        return google_error(400, f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed "
                                 f"for \"{shown}\"")
    if spelled["mimeType"] not in IMAGE_TYPES:  # the fake's wording
        return google_error(400, f"Unsupported MIME type: {spelled['mimeType']}")
    found = images.sniff(data)
    if found is None or found[0] != spelled["mimeType"]:
        return google_error(400, "Unable to process input image. Please retry or report in "
                                 "https://developers.generativeai.google/guide/troubleshooting")
    return None


def thought_summary(contents: list[dict]) -> str:
    """What the fake's thought summary says (a thought part's text)."""
    return f"**Weighing the request** I am asked: {' '.join(question_of(contents).split()[:8])}"


def tool_turn(body: dict, model: str) -> brain.Decision | None:
    """What the fake model does when offered functions (tests.fakes.tools), from Gemini's parts."""
    names = [d["name"] for tool in body.get("tools") or [] for d in tool.get("functionDeclarations")
             or tool.get("function_declarations") or []]
    if not names:
        return None
    contents = body["contents"]
    asked = max(i for i, c in enumerate(contents) if c["role"] == "user"
                and any("text" in camel(p) for p in c["parts"]))
    after = contents[asked + 1:]
    rounds = sum(1 for c in after if c["role"] == "model" and any("functionCall" in camel(p) for p in c["parts"]))
    results = []
    if after and after[-1]["role"] == "user":
        for part in map(camel, after[-1]["parts"]):
            response = (part.get("functionResponse") or {}).get("response") or {}
            text = response.get("output", response.get("error", json.dumps(response)))
            results.append(brain.Result(part["functionResponse"].get("name", "?"), str(text), "error" in response))
    return brain.decide(question_of(contents), names, results, rounds)


def google_error(code: int, message: str, reason: str | None = None, headers: dict | None = None) -> Reply:
    """Google's error body: {"error": {"code", "message", "status", "details"}}."""
    error = {"code": code, "message": message, "status": STATUS_NAMES.get(code, "UNKNOWN")}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                             "domain": "googleapis.com",
                             "metadata": {"service": "generativelanguage.googleapis.com"}}]
    return Reply(code, {"error": error}, headers=headers)


@dataclass
class Call:
    """What one call answers: its text after its thoughts, the thought summary (when asked for), how it ended."""

    body: dict
    text: str
    thoughts: int
    summary: str
    finish: str | int
    model_version: str
    signed: bool  # Gemini 3 signs its answer's first part (thoughtSignature)


def default_answer(contents: list[dict]) -> str:
    asked = asked_turn(contents)
    seen = "".join(f" {images.seen(data)}" for data in images_of(asked))
    return f"Answer to: {' '.join(text_of(asked).split()[:12])}{seen}"



def _texts(content: dict) -> list[str]:
    """Every word a turn carries, for counting: text, function calls' args and function responses."""
    said = []
    for part in map(camel, content.get("parts", [])):
        if "text" in part:
            said.append(part["text"])
        elif "functionCall" in part:
            said.append(json.dumps(part["functionCall"].get("args") or {}))
        elif "functionResponse" in part:
            said.append(json.dumps(part["functionResponse"].get("response") or {}))
    return said


def as_messages(body: dict) -> list[dict]:
    """The request as chat messages, its system instruction first (to tell a judge's call from an answer's)."""
    system = body.get("systemInstruction")
    messages = [{"role": "system", "content": "".join(_texts(system))}] if system else []
    return messages + [{"role": c.get("role", "user"), "content": "".join(_texts(c))} for c in body["contents"]]


class GeminiFake:
    """Routes for /{version}/models/*. `answer(contents) -> text` decides what the model says."""

    def __init__(self, key: str = "test-key", answer: Callable[[list[dict]], str] = default_answer,
                 reject_key_with: int = 400, cached_tokens: int = 0, thoughts_tokens: int = 0,
                 finish_reason: str | None = None, stream_error_after: int | None = None,
                 chunk_delay_s: float = 0.0, echo_key: bool = False, sse_always: bool = False,
                 tools: Callable[[dict, str], brain.Decision | None] = tool_turn):
        self.key = key
        self.tools = tools  # what the model does when offered functions: call some, or answer (None: not offered)
        self.calls_made = 0
        self.echo_key = echo_key  # a careless server: its error repeats the credentials it was sent
        self.answer = answer
        self.reject_key_with = reject_key_with
        self.cached_tokens = cached_tokens
        self.thoughts_tokens = thoughts_tokens  # > 0: every call thinks this many tokens, whatever the model
        self.finish_reason = finish_reason  # force one (SAFETY...); None: STOP, or MAX_TOKENS when cut
        self.stream_error_after = stream_error_after
        self.chunk_delay_s = chunk_delay_s
        # a proxy (LiteLLM's Gemini route) that streams server-sent events whatever the client asked for: what
        # google-generativeai, which asks for one JSON array, cannot read
        self.sse_always = sse_always

    # --- checks -----------------------------------------------------------------------------------
    def check_key(self, request: Received) -> Reply | None:
        query = parse_qs(urlsplit(request.path).query)
        key = request.headers.get("x-goog-api-key") or (query.get("key") or [None])[0]
        if not key:
            return google_error(403, "Method doesn't allow unregistered callers (callers without established "
                                     "identity). Please use API Key or other form of API consumer identity to "
                                     "call this API.", "SERVICE_DISABLED")
        if key != self.key:
            if self.echo_key:
                return google_error(self.reject_key_with, f"API key not valid: {key} (authorization: "
                                    f"{request.headers.get('authorization')})", "API_KEY_INVALID")
            if self.reject_key_with == 400:
                return google_error(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
            if self.reject_key_with == 401:
                return google_error(401, "Request had invalid authentication credentials.",
                                    "ACCESS_TOKEN_TYPE_UNSUPPORTED")
            return google_error(403, "Permission denied: Consumer has been suspended.", "CONSUMER_SUSPENDED")
        return None

    def check_body(self, body) -> Reply | None:
        if not isinstance(body, dict):
            return google_error(400, "Invalid JSON payload received.")
        for name in body:
            if name not in BODY_FIELDS:
                return google_error(400, f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return google_error(400, "* GenerateContentRequest.contents: contents is not specified")
        for i, content in enumerate(contents):
            if set(content) - {"role", "parts"}:
                return google_error(400, f'Invalid JSON payload received. Unknown name in content: {sorted(content)}')
            if content.get("role") not in ("user", "model"):
                return google_error(400, "Please use a valid role: user, model.")
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                return google_error(400, "* GenerateContentRequest.contents.parts: contents.parts must not be empty.")
            for j, part in enumerate(parts):
                problem = part_problem(f"contents[{i}].parts[{j}]", part)
                if problem:
                    return problem
            if not self._parts_ok(content):
                return google_error(400, "* GenerateContentRequest.contents.parts: contents.parts must not be empty.")
        problem = self.check_tools(body)
        if problem:
            return problem
        system = body.get("systemInstruction")
        if system is not None and (set(system) - {"role", "parts"} or not self._parts_ok(system)):
            return google_error(400, "* GenerateContentRequest.system_instruction: invalid content")
        config = body.get("generationConfig", {})
        for name in config:
            if name not in GENERATION_FIELDS:
                return google_error(400, f'Invalid JSON payload received. Unknown name "{name}" at '
                                         f"'generation_config': Cannot find field.")
        temperature = config.get("temperature", 1.0)
        if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
            return google_error(400, "* GenerateContentRequest.generation_config.temperature: "
                                     "temperature must be between 0 and 2")
        limit = config.get("maxOutputTokens")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            return google_error(400, "* GenerateContentRequest.generation_config.max_output_tokens: must be positive")
        seed = config.get("seed")
        if seed is not None and (type(seed) is not int or not -2**31 <= seed < 2**31):  # an int32
            return google_error(400, f"Invalid value at 'generation_config.seed' (TYPE_INT32), {seed!r}")
        if config.get("responseMimeType", "text/plain") not in MIME_TYPES:
            return google_error(400, f"* GenerateContentRequest.generation_config.response_mime_type: "
                                     f"allowed mimetypes are {sorted(MIME_TYPES)}")
        return self.check_schema(config)

    @staticmethod
    def check_schema(config: dict) -> Reply | None:
        """responseSchema (OpenAPI's subset, a proto: no additionalProperties) or responseJsonSchema (JSON
        Schema), one of them, with responseMimeType application/json."""
        given = [name for name in SCHEMA_FIELDS if name in config]
        if len(given) > 1:
            return google_error(400, "* GenerateContentRequest.generation_config: response_schema and "
                                     "response_json_schema cannot both be set")
        if given and config.get("responseMimeType") != "application/json":
            return google_error(400, "* GenerateContentRequest.generation_config.response_mime_type: a response "
                                     "schema needs response_mime_type application/json")
        if "responseSchema" in config:
            unknown = _unknown_schema_field(config["responseSchema"])
            if unknown:
                return google_error(400, f'Invalid JSON payload received. Unknown name "{unknown}" at '
                                         f"'generation_config.response_schema': Cannot find field.")
        return None

    @staticmethod
    def thinking(model: str, config: dict) -> tuple[Reply | None, int, bool]:
        """(the API's refusal or None, the thought tokens this call spends, whether it returns thought summaries)."""
        thinker = THINKERS.get(model)
        raw = config.get("thinkingConfig")
        if raw is None:
            if thinker is None:
                return None, 0, False
            if thinker.levels:
                return None, LEVEL_THOUGHTS[thinker.default_level], False
            return None, DYNAMIC_THOUGHTS if thinker.thinks_by_default else 0, False
        if thinker is None:
            return google_error(400, "thinking_config is not supported."), 0, False
        settings = {}
        for name, value in raw.items():
            camel = next((c for c, snake in THINKING_FIELDS.items() if name in (c, snake)), None)
            if camel is None:
                return google_error(400, f'Invalid JSON payload received. Unknown name "{name}" at '
                                         f"'generation_config.thinking_config': Cannot find field."), 0, False
            settings[camel] = value
        include = settings.get("includeThoughts") is True
        level, budget = settings.get("thinkingLevel"), settings.get("thinkingBudget")
        if level is not None and budget is not None:
            return google_error(400, "You can only set only one of thinking budget and thinking level."), 0, False
        if level is not None:
            name = str(level).lower()
            if name not in LEVELS:
                return google_error(400, f"Invalid value at 'generation_config.thinking_config.thinking_level' "
                                         f"(type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig."
                                         f"ThinkingLevel), \"{level}\""), 0, False
            if not thinker.levels:
                return google_error(400, "Thinking level is not supported for this model."), 0, False
            if name not in thinker.levels:
                return google_error(400, f"Thinking level {name.upper()} is not supported for this model."), 0, False
            return None, LEVEL_THOUGHTS[name], include
        if budget is not None:
            if not isinstance(budget, int):
                return google_error(400, f"Invalid value at 'generation_config.thinking_config.thinking_budget' "
                                         f"(TYPE_INT32), {budget!r}"), 0, False
            if thinker.levels:  # Gemini 3 still takes a budget, for backward compatibility
                return None, DYNAMIC_THOUGHTS if budget == -1 else budget_thoughts(budget), include
            if budget == 0 and not thinker.can_turn_off:
                return google_error(400, "Budget 0 is invalid. This model only works in thinking mode."), 0, False
            low, high = thinker.budget
            if budget not in (0, -1) and not low <= budget <= high:
                return google_error(400, f"The thinking budget ({budget}) is invalid."), 0, False
            if budget == 0 and include:  # Vertex AI's text for it; the Gemini API refuses it too
                return google_error(400, "Thinking_config.include_thoughts is only enabled when thinking is "
                                         "enabled."), 0, False
            return None, DYNAMIC_THOUGHTS if budget == -1 else budget_thoughts(budget), include
        if thinker.levels:
            return None, LEVEL_THOUGHTS[thinker.default_level], include
        return None, DYNAMIC_THOUGHTS if thinker.thinks_by_default else 0, include

    @staticmethod
    def _parts_ok(content: dict) -> bool:
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return False
        for part in parts:
            named = camel(part) if isinstance(part, dict) else None
            if named is None or sum(field in named for field in DATA_FIELDS) != 1:
                return False
            if "text" in named and not isinstance(named["text"], str):
                return False
            if ("functionCall" in named or "functionResponse" in named) and content.get("role") != \
                    ("model" if "functionCall" in named else "user"):
                return False
        return True

    def check_tools(self, body: dict) -> Reply | None:
        """Function declarations, and function calls answered by as many responses, ids matched, signed on
        Gemini 3 (the model is read from the body the route saw: self.model)."""
        for i, tool in enumerate(body.get("tools") or []):
            declarations = tool.get("functionDeclarations") or tool.get("function_declarations")
            if not isinstance(declarations, list) or set(tool) - {"functionDeclarations", "function_declarations"}:
                return google_error(400, f"Invalid JSON payload received. Unknown name in tools[{i}]: {sorted(tool)}")
            for j, declaration in enumerate(declarations):
                fields = {"name", "description", "parameters", "parametersJsonSchema", "parameters_json_schema",
                          "response", "behavior"}
                if set(declaration) - fields:
                    return google_error(400, f'Invalid JSON payload received. Unknown name '
                                             f'"{sorted(set(declaration) - fields)[0]}" at \'tools[{i}].'
                                             f'function_declarations[{j}]\': Cannot find field.')
                if not FUNCTION_NAME.match(str(declaration.get("name") or "")):
                    return google_error(400, f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: "
                                             f"Invalid function name. Must start with a letter or an underscore.")
                given = [k for k in ("parameters", "parametersJsonSchema", "parameters_json_schema")
                         if k in declaration]
                if len(given) > 1:
                    return google_error(400, f"* GenerateContentRequest.tools[{i}].function_declarations[{j}]: "
                                             f"parameters and parameters_json_schema cannot both be set")
                if "parameters" in declaration:
                    unknown = _unknown_schema_field(declaration["parameters"])
                    if unknown:
                        return google_error(400, f'Invalid JSON payload received. Unknown name "{unknown}" at '
                                                 f"'tools[{i}].function_declarations[{j}].parameters': Cannot find "
                                                 f"field.")
        contents = body["contents"]
        for i, content in enumerate(contents):
            parts = [camel(p) for p in content["parts"]]
            responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
            if not responses:
                continue
            before = [camel(p) for p in contents[i - 1]["parts"]] if i else []
            calls = [p["functionCall"] for p in before if "functionCall" in p]
            if len(calls) != len(responses) or len(responses) != len(parts):
                return google_error(400, "Please ensure that the number of function response parts is equal to the "
                                         "number of function call parts of the function call turn.")
            for j, response in enumerate(responses):
                if not response.get("name"):
                    return google_error(400, f"* GenerateContentRequest.contents[{i}].parts[{j}].function_response"
                                             f".name: Name cannot be empty.")
                wanted = {c.get("id") for c in calls if c.get("id")}
                if wanted and response.get("id") not in wanted:
                    return google_error(400, "functionResponse.id does not match functionCall.id")
        return None

    def check_signatures(self, contents: list[dict], model: str) -> Reply | None:
        """Gemini 3 refuses a model turn's function call sent back without the signature it came with."""
        if not THINKERS.get(model, Thinker()).levels:
            return None
        for content in contents:
            calls = [p for p in map(camel, content["parts"]) if "functionCall" in p]
            if calls and calls[0].get("thoughtSignature") != SIGNATURE:
                return google_error(400, f"Function call is missing a thought_signature in functionCall parts. This "
                                         f"is required for tools to work correctly, and missing thought_signature "
                                         f"may lead to degraded model performance. Additional data, function call "
                                         f"`default_api:{calls[0]['functionCall'].get('name')}` , position "
                                         f"{contents.index(content) + 1}. Please refer to https://ai.google.dev/"
                                         f"gemini-api/docs/thought-signatures for more details.")
        return None

    # --- answers ----------------------------------------------------------------------------------
    def usage(self, body: dict, text: str, final: bool = True, thoughts: int | None = None) -> dict:
        """usageMetadata of an answer `text` after `thoughts` thought tokens (None: the fake's fixed
        thoughts_tokens, 0 unless set)."""
        system = body.get("systemInstruction")
        prompt = sum(words(t) for c in body["contents"] for t in _texts(c)) + (sum(map(words, _texts(system)))
                                                                                if system else 0)
        pictures = sum(images.gemini_tokens(*images.sniff(data)[1:]) for c in body["contents"] for data in images_of(c))
        details = [{"modality": "TEXT", "tokenCount": prompt}] + ([{"modality": "IMAGE", "tokenCount": pictures}]
                                                                   if pictures else [])
        prompt += pictures
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt, "promptTokensDetails": details}
        if not final:
            return usage
        if thoughts is None:
            thoughts = self.thoughts_tokens
        if words(text):  # an answer the thinking left no room for has no candidatesTokenCount at all
            usage["candidatesTokenCount"] = words(text)
        usage["totalTokenCount"] = prompt + words(text) + thoughts
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = min(self.cached_tokens, prompt)
        return usage

    def generate(self, request: Received) -> Reply:
        url = urlsplit(request.path)
        version, _, rest = url.path.lstrip("/").partition("/")
        model, _, method = rest.partition(":")
        if version not in VERSIONS or not model.startswith("models/") or method not in (
                "generateContent", "streamGenerateContent"):
            return google_error(404, f"Method not found: {url.path}")
        problem = self.check_key(request)
        if problem:
            return problem
        try:
            body = request.json
        except json.JSONDecodeError:
            return google_error(400, "Invalid JSON payload received.")
        problem = self.check_body(body)
        if problem:
            return problem
        config = body.get("generationConfig", {})
        model_name = model.removeprefix("models/")
        problem, thoughts, include = self.thinking(model_name, config)
        if problem:
            return problem
        thoughts = self.thoughts_tokens or thoughts
        query = parse_qs(url.query)
        numbers = "enum-encoding=int" in (query.get("$alt") or [""])[0]
        problem = self.check_signatures(body["contents"], model_name)
        if problem:
            return problem
        decision = self.tools(body, model_name) if body.get("tools") else None
        if decision is not None and decision.calls:
            return self._function_calls(body, decision.calls, model_name, method, query, numbers, thoughts, include)
        messages = as_messages(body)
        if decision is not None:
            text = decision.text
        elif self.answer is default_answer and is_judging(messages):  # a task's judge: the verdict it asks for
            text = verdict(messages)
        else:
            text = self.answer(body["contents"])
        limit = config.get("maxOutputTokens")
        finish = self.finish_reason or "STOP"
        if limit is not None and thoughts >= limit:  # the cap ran out while it was still thinking
            thoughts, text, finish = limit, "", self.finish_reason or "MAX_TOKENS"
        elif limit is not None and words(text) + thoughts > limit:
            text = " ".join(text.split()[:limit - thoughts])
            finish = self.finish_reason or "MAX_TOKENS"
        summary = thought_summary(body["contents"]) if include and thoughts else ""
        call = Call(body=body, text=text, thoughts=thoughts, summary=summary,
                    finish=FINISH_NUMBERS[finish] if numbers else finish, model_version=model_name,
                    signed=bool(THINKERS.get(model_name, Thinker()).levels))
        if method == "generateContent":
            return Reply(200, self._response(call, self._parts(call.summary, call.text, call.signed), final=True))
        if query.get("alt") == ["sse"] or self.sse_always:
            return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=self._sse(call),
                         chunk_delay_s=self.chunk_delay_s)
        return Reply(200, headers={"Content-Type": "application/json; charset=UTF-8"},
                     chunks=self._json_array(call), chunk_delay_s=self.chunk_delay_s)

    def _function_calls(self, body: dict, calls: list, model: str, method: str, query: dict, numbers: bool,
                        thoughts: int, include: bool) -> Reply:
        """The model calls functions: one functionCall part each (an id on Gemini 3, its first signed there),
        finishReason STOP; streamed, each call in a chunk of its own."""
        gemini3 = bool(THINKERS.get(model, Thinker()).levels)
        parts = []
        for i, (name, arguments) in enumerate(calls):
            self.calls_made += 1
            call = {"name": name, "args": arguments, **({"id": f"fc_{self.calls_made:06d}"} if gemini3 else {})}
            parts.append({"functionCall": call, **({"thoughtSignature": SIGNATURE} if gemini3 and i == 0 else {})})
        text = " ".join(json.dumps(arguments) for _, arguments in calls)
        summary = thought_summary(body["contents"]) if include and thoughts else ""
        call = Call(body=body, text=text, thoughts=thoughts, summary=summary,
                    finish=FINISH_NUMBERS["STOP"] if numbers else "STOP", model_version=model, signed=False)
        thought = [{"text": summary, "thought": True}] if summary else []
        if method == "generateContent":
            return Reply(200, self._response(call, thought + parts, final=True))
        chunks = [self._response(call, [part], final=False) for part in thought + parts[:-1]]
        chunks.append(self._response(call, parts[-1:], final=True))
        if query.get("alt") == ["sse"] or self.sse_always:
            return Reply(200, headers={"Content-Type": "text/event-stream"}, chunk_delay_s=self.chunk_delay_s,
                         chunks=(f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks))
        array = [("[" if i == 0 else "\r\n,\r\n").encode() + json.dumps(c, indent=2).encode()
                 for i, c in enumerate(chunks)] + [b"\r\n]"]
        return Reply(200, headers={"Content-Type": "application/json; charset=UTF-8"},
                     chunk_delay_s=self.chunk_delay_s, chunks=iter(array))

    @staticmethod
    def _parts(summary: str, text: str, signed: bool) -> list[dict]:
        """A thought summary part (if any) then the answer's part (if any, signed on Gemini 3)."""
        parts = [{"text": summary, "thought": True}] if summary else []
        if text:
            parts.append({"text": text, **({"thoughtSignature": SIGNATURE} if signed else {})})
        return parts

    def _response(self, call: Call, parts: list[dict], final: bool) -> dict:
        content = {"parts": parts, "role": "model"} if parts else {"role": "model"}
        candidate = {"content": content, "index": 0}
        if final:
            candidate["finishReason"] = call.finish
        usage = self.usage(call.body, call.text, True, call.thoughts) if final else self.usage(call.body, "", False)
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": call.model_version,
                "responseId": "fake-response-id"}

    def _chunks(self, call: Call):
        """The thought summary's words, then the answer's, one chunk each; the last has the finish reason and the
        full usage (a last chunk without parts when nothing is left to say)."""
        def pieces(text):
            return [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))] if text else []

        parts = [self._parts(piece, "", False) for piece in pieces(call.summary)]
        parts += [self._parts("", piece, call.signed and i == 0) for i, piece in enumerate(pieces(call.text))]
        for i, chunk_parts in enumerate(parts or [[]]):
            if self.stream_error_after is not None and i == self.stream_error_after:
                yield {"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}
                return
            yield self._response(call, chunk_parts, final=i == max(len(parts), 1) - 1)

    def _sse(self, call: Call):
        for chunk in self._chunks(call):
            yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()

    def _json_array(self, call: Call):
        for i, chunk in enumerate(self._chunks(call)):
            yield ("[" if i == 0 else "\r\n,\r\n").encode() + json.dumps(chunk, indent=2).encode()
        yield b"\r\n]"

    def routes(self) -> dict:
        return {("POST", f"/{version}/models/*"): self.generate for version in VERSIONS}


def gemini_server(faults: Faults | None = None, latency_s: float = 0.0, **options) -> FakeServer:
    fake = GeminiFake(**options)
    server = FakeServer(fake.routes(), faults=faults, latency_s=latency_s)
    server.fake = fake
    return server


# the fields of the API's Schema proto (what responseSchema takes): JSON Schema's others are unknown names to it
SCHEMA_PROTO = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
                "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
                "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"}


def _unknown_schema_field(schema) -> str | None:
    if not isinstance(schema, dict):
        return None
    for name, value in schema.items():
        if name not in SCHEMA_PROTO and name not in ("max_items", "min_items", "property_ordering", "any_of"):
            return name
        children = value.values() if name == "properties" and isinstance(value, dict) else \
            value if name in ("anyOf", "any_of") and isinstance(value, list) else [value] if name == "items" else []
        for child in children:
            unknown = _unknown_schema_field(child)
            if unknown:
                return unknown
    return None
