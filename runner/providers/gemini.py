"""Gemini through google-genai, Google's maintained SDK (async API; streamed unless model.stream=false).

The conversion from chat messages to Gemini's shape (system instruction apart, assistant turns as role
"model"), the reading of usage and finish reasons, and the mapping of Google's errors are shared with
the google-generativeai provider (`runner.providers.gemini_generativeai`, chosen by model.sdk).
Batch runs (`model.batch=true`) use Gemini's batch mode: `batches.create` with inline requests (each
carrying its custom id as metadata), `batches.get` to poll, the answers inline in the finished job.

Thinking (checked 2026-12-07). Gemini 2.5 Flash and Pro and every
Gemini 3 model think by default, and their thoughts count against maxOutputTokens, so the runner adds room
for them (`thinking_room`, by the effort set or the model's default) within the model's output limit.
model.reasoning is sent in `generationConfig.thinkingConfig`, never both of its forms:
- Gemini 2.5: `thinkingBudget`, the tokens of room made for the effort (minimal 512, low 2,048, medium 8,192,
  high 32,768), within the model's range (Pro 128-32,768, Flash 1-24,576, Flash-Lite 512-24,576); `none` is
  budget 0, which Flash and Flash-Lite take and Pro refuses. Told nothing they think dynamically (up to about
  8,192 tokens: room as for medium); Flash-Lite does not think unless told to.
- Gemini 3 and later: `thinkingLevel`, the effort's own name, and only the levels the model takes (3 Pro low,
  high; 3.1 Pro low, medium, high; Flash and Flash-Lite minimal, low, medium, high, except 3.7 Flash and later
  without minimal). None of them turns thinking off. Their default is high (3.5 Flash and later Flash: medium;
  3.5 Flash-Lite: minimal).
- `includeThoughts` whenever the model thinks: the thought summaries come back as parts marked `thought`, kept
  in Response.reasoning (results.jsonl), never in the answer. Thoughts are billed by their full count whether
  or not their summary is asked for, so asking costs nothing.
Thought tokens (`thoughtsTokenCount`) are reported beside the answer's (`candidatesTokenCount`); both are billed
as output, so output_tokens is their sum and reasoning_tokens the first. A JSON Schema goes as
`responseJsonSchema` (JSON Schema as it is) with `responseMimeType` application/json.

Tools (checked 2026-12-07): function declarations (`parametersJsonSchema`,
JSON Schema as declared; google-genai's automatic function calling off: the runner runs the calls). The model's
calls are `functionCall` parts (name, args, and an id on Gemini 3, which 2.5 mostly leaves out); the next turn
sends the model's parts back as they came (Response.replay: Gemini 3 refuses a function call part without its
thoughtSignature), then one user turn with a `functionResponse` part per call (name, its id when the call had
one, and the result as {"output": ...} or {"error": ...}): as many responses as there were calls.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.calls import Request, Response, Usage, is_image, parts_of, tool_call
from runner.providers.base import (
    BatchStatus,
    Capabilities,
    Clock,
    ProviderError,
    SDKProvider,
    error_for_status,
    error_response,
    not_the_api,
    refused_error,
    retry_after,
)
from runner.providers.connections import checked_client
from runner.providers.reasons import server_message

if TYPE_CHECKING:
    from google import genai
    from google.genai import types

# systemInstruction and responseMimeType are documented for v1beta; google-genai's own default is v1
API_VERSION = "v1beta"
# the shape of an answer, parsed once before the first call so that pydantic has built every type in it
SAMPLE_ANSWER = {"candidates": [{"content": {"parts": [{"text": "-"}], "role": "model"}, "finishReason": "STOP",
                                 "index": 0}],
                 "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}
# Gemini's finish reasons in the words the other providers use, so the comparison can line them up
# batch jobs' states in the runner's words (RUNNING, PENDING, QUEUED...: still pending)
BATCH_STATES = {"JOB_STATE_SUCCEEDED": "ended", "JOB_STATE_PARTIALLY_SUCCEEDED": "ended",
                "JOB_STATE_EXPIRED": "expired", "JOB_STATE_FAILED": "failed", "JOB_STATE_CANCELLED": "cancelled"}
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
                  "PROHIBITED_CONTENT": "content_filter", "BLOCKLIST": "content_filter", "SPII": "content_filter"}


LEVELS = ("minimal", "low", "medium", "high")


@dataclass(frozen=True)
class Thinking:
    """How one Gemini model thinks: the values of model.reasoning it takes, its effort when told nothing, and
    for Gemini 2.5 the thinking budgets it takes (Gemini 3 and later take levels instead)."""

    efforts: tuple[str, ...]
    default: str | None
    budget: tuple[int, int] | None = None  # (least, most) tokens of thinkingBudget; None: thinkingLevel


def thinking_of(model_id: str) -> Thinking | None:
    """How a Gemini model thinks, by its family (None: it does not think, or its family is not known)."""
    name = model_id.rsplit("/", 1)[-1].lower()  # models/gemini-2.5-flash, a gateway's google/gemini-2.5-flash
    if any(tag in name for tag in ("-image", "-tts", "-live", "-audio", "embedding")):
        return None  # media models think, or not, otherwise: leave them to the catalogue and the config
    if re.fullmatch(r"gemini-(pro|flash|flash-lite)-latest", name):
        # an alias moves from one model to the next, 2.5 (budgets) or 3.x (levels): no setting is safe to send
        return Thinking((), "high")
    match = re.match(r"gemini-(\d+)(?:\.(\d+))?(?:-(pro|flash-lite|flash))?(?:-|$)", name)
    if not match:
        return None
    version, kind = (int(match.group(1)), int(match.group(2) or 0)), match.group(3)
    if version < (2, 5) or (version < (3, 0) and kind is None):
        return None
    if version < (3, 0):
        if kind == "pro":  # cannot turn thinking off
            return Thinking(LEVELS, "medium", (128, 32768))
        if kind == "flash-lite":  # does not think unless told to
            return Thinking(("none", *LEVELS), "none", (512, 24576))
        return Thinking(("none", *LEVELS), "medium", (1, 24576))
    if kind == "pro":
        return Thinking(("low", "medium", "high") if version >= (3, 1) else ("low", "high"), "high")
    if kind == "flash-lite":
        return Thinking(LEVELS, "minimal" if version >= (3, 5) else "high")
    if kind == "flash":
        if version >= (3, 7):
            return Thinking(("low", "medium", "high"), "medium")
        return Thinking(LEVELS, "medium" if version >= (3, 5) else "high")
    return Thinking(("low", "high"), "high")  # a Gemini 3+ family not known here: the levels every one takes


def budget_for(request: Request, thinking: Thinking | None) -> int:
    """Gemini 2.5's thinkingBudget for the effort: 0 for none, else the room made for it, within the model's
    range."""
    if request.reasoning == "none":
        return 0
    least, most = thinking.budget if thinking and thinking.budget else (1, request.thinking_tokens or 1)
    return max(least, min(most, request.thinking_tokens))


WIRE = "gemini"  # Response.replay's mark: the model's parts, to send back as they came


def split_messages(messages: list[dict]) -> tuple[str | None, list[dict]]:
    """(system instruction, contents): Gemini takes the system prompt apart and calls the assistant "model". A
    model turn that called tools goes back as the parts it came with; the tool results that answer it go as one
    user turn of functionResponse parts, each with its call's id when the call had one (snake_case keys, as
    both SDKs take them)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    contents: list[dict] = []
    given_ids: set[str] = set()  # the ids the API gave the last model turn's calls
    for m in messages:
        if m["role"] == "system":
            continue
        if m["role"] == "tool":
            response = {"name": m["name"], "response": {"error" if m.get("is_error") else "output": m["content"]}}
            if m["tool_call_id"] in given_ids:
                response["id"] = m["tool_call_id"]
            part = {"function_response": response}
            if contents and contents[-1]["role"] == "user" and \
                    all("function_response" in p for p in contents[-1]["parts"]):
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        elif m["role"] == "assistant" and (m.get("replay") or {}).get("wire") == WIRE:
            parts = [dict(part) for part in m["replay"]["parts"]]
            given_ids = {part["function_call"]["id"] for part in parts if (part.get("function_call") or {}).get("id")}
            contents.append({"role": "model", "parts": parts})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            parts = [{"text": m["content"]}] if m.get("content") else []
            parts += [{"function_call": {"id": c["id"], "name": c["name"],
                                         "args": c["arguments"] if isinstance(c["arguments"], dict) else {}}}
                      for c in m["tool_calls"]]
            given_ids = {c["id"] for c in m["tool_calls"]}
            contents.append({"role": "model", "parts": parts})
        else:
            role = "model" if m["role"] == "assistant" else "user"
            contents.append({"role": role, "parts": gemini_parts(m["content"])})
    return system, contents


def gemini_parts(content) -> list[dict]:
    """A message's content as Gemini's parts: text parts, and each image an `inline_data` part (its media type
    and its bytes in base64, which google-genai's Blob takes as it is)."""
    return [{"inline_data": {"mime_type": part["media_type"], "data": part["data"]}} if is_image(part)
            else {"text": part["text"]} for part in parts_of(content)]


def finish_reason(value) -> str | None:
    """A candidate's finish reason (an enum of either SDK) as a lower-case word; None while unfinished."""
    name = getattr(value, "name", value)
    if not name or name == "FINISH_REASON_UNSPECIFIED":
        return None
    return FINISH_REASONS.get(name, str(name).lower())


def usage_from(metadata, thinks: bool = False) -> Usage:
    """usageMetadata of either SDK. Thought tokens are reported beside the answer's and billed as output: they
    count in output_tokens, and reasoning_tokens says how many (for a model that thinks, 0 when it did not)."""
    if metadata is None or not metadata.prompt_token_count:
        return Usage(input_tokens=None)
    prompt, answer = metadata.prompt_token_count, metadata.candidates_token_count or 0
    thoughts = getattr(metadata, "thoughts_token_count", None)
    if thoughts is None:  # not thinking, or google-generativeai, whose protos lack it: the total has them
        tools = getattr(metadata, "tool_use_prompt_token_count", None) or 0
        thoughts = max(0, (metadata.total_token_count or 0) - prompt - answer - tools)
    return Usage(input_tokens=prompt, output_tokens=answer + thoughts,
                 cached_tokens=metadata.cached_content_token_count or 0, source="provider",
                 reasoning_tokens=thoughts if thinks or thoughts else None)


def function_calls(candidate) -> list[tuple[str | None, str, dict]]:
    """The candidate's function calls, (id or None, name, args), in either SDK's types."""
    content = candidate.content
    found = []
    for part in (content.parts or []) if content is not None else []:
        call = getattr(part, "function_call", None)
        if call is None or not call.name:  # a proto's empty default, or no call
            continue
        if hasattr(type(call), "to_dict"):  # google-generativeai's proto: args is a Struct
            args = type(call).to_dict(call).get("args") or {}
        else:
            args = call.args or {}
        found.append((getattr(call, "id", None) or None, call.name, dict(args)))
    return found


def part_data(part) -> dict:
    """One part as JSON data (a thought signature as base64 text), to send back as it came."""
    if hasattr(part, "model_dump"):  # google-genai
        return part.model_dump(mode="json", exclude_none=True)
    # a google-generativeai proto (its protos have no thought signatures): only the fields it set
    return {key: value for key, value in type(part).to_dict(part).items() if value}


def candidate_text(candidate, thought: bool = False) -> str:
    """The answer's text parts, without thought summaries (or, `thought`, the thought summaries only)."""
    content = candidate.content
    if content is None or not content.parts:
        return ""
    return "".join(part.text for part in content.parts
                   if part.text and bool(getattr(part, "thought", False)) == thought)


def key_rejected(details) -> bool:
    """Google answers a wrong API key with 400 INVALID_ARGUMENT and reason API_KEY_INVALID, not 401."""
    return "API_KEY_INVALID" in str(details)


def status_error(status: int | None, message: str, details, headers) -> ProviderError:
    if key_rejected(details):
        return ProviderError(f"HTTP {status}: key rejected ({server_message(message)})", "auth", status)
    return error_for_status(status, message, retry_after(headers))


def unreadable(exc: BaseException) -> ProviderError | None:
    """A body that is not JSON at all (a web page, plain text) as the SDK's parse error shows it; None
    when the JSON was only cut short (worth a retry)."""
    for error in (exc, exc.__context__, exc.__cause__):
        if isinstance(error, json.JSONDecodeError):
            return not_the_api(error.doc)
    marker = "Raw response: "  # google-genai's UnknownApiResponseError keeps the body in its message
    if marker in str(exc):
        return not_the_api(str(exc).split(marker, 1)[1])
    return None


def _mapped(exc: Exception) -> ProviderError:
    import httpx2
    from google.genai import errors

    if isinstance(exc, ProviderError):
        return exc
    refused = refused_error(exc)
    if refused is not None:
        return refused
    if isinstance(exc, errors.APIError):
        response = getattr(exc, "response", None)
        # a body in Google's shape has a message; another (a proxy's) only details: the parsed body
        message = exc.message or server_message(exc.details) or str(exc)
        return status_error(exc.code, message, exc.details, getattr(response, "headers", None))
    if unreadable(exc) is not None:
        return unreadable(exc)
    if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):
        return ProviderError("timed out waiting for the provider", "timeout", retryable=True)
    if isinstance(exc, (httpx2.TransportError, OSError)):  # aiohttp's ClientConnectorError is an OSError
        return ProviderError(f"connection failed: {connection_failure(exc)}", "connection", retryable=True)
    return ProviderError(f"{type(exc).__name__}: {exc}", "malformed", retryable=True)


# "<ssl.SSLContext object at 0x7f...>": what aiohttp's "Cannot connect to host H:443 ssl:<...>" carries
OBJECT_REPR = re.compile(r"\s*(ssl:)?<[\w.]+ object at 0x[0-9a-fA-F]+>")


def connection_failure(exc: BaseException) -> str:
    """Where a connection failed and why, in words: 'HOST:PORT: Connection refused'. google-genai connects with
    httpx2, or with aiohttp when that is installed; neither's text says both (httpx2's "All connection attempts
    failed" names no host, aiohttp's names the SSL context by its repr)."""
    where = ""
    try:
        url = exc.request.url  # httpx2's errors know their request
        where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}: "
    except (AttributeError, RuntimeError):
        if getattr(exc, "host", None):  # aiohttp's ClientConnectorError
            where = f"{exc.host}:{exc.port}: "
    error: BaseException | None = exc
    seen = set()
    while error is not None and id(error) not in seen:  # the OS's own reason, deepest in the chain
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno:
            return f"{where}{os.strerror(error.errno)}"
        error = getattr(error, "os_error", None) or error.__cause__ or error.__context__
    return f"{where}{OBJECT_REPR.sub('', str(exc)).strip() or type(exc).__name__}"


class GeminiProvider(SDKProvider):
    key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    key_prefix = "AIza"
    key_owner = "gemini"
    own_host = "generativelanguage.googleapis.com"
    price_provider = "google"
    endpoint_env = "GOOGLE_GEMINI_BASE_URL"
    loggers = ("google_genai", "httpx2", "httpx", "httpcore")
    #: batch mode with inline requests: 20 MB in one batch (larger ones need an uploaded file)
    batch_limits = (100_000, 20 * 1024 * 1024)
    catalogue = "google"  # models.dev's id
    default_temperature = 1.0
    # maxOutputTokens counts thoughts and answer together: room for the thoughts each effort may spend, and the
    # thinkingBudget sent to Gemini 2.5 (within each model's range)
    thinking_room = {"minimal": 512, "low": 2048, "medium": 8192, "high": 32768}
    # Gemini takes PNG, JPEG, WebP, HEIC and HEIF images, not GIF (checked 2026-12-07)
    image_types = ("image/png", "image/jpeg", "image/webp")

    @classmethod
    def image_tokens(cls, width: int, height: int) -> int:
        """Gemini 2.x's rule: 258 tokens for an image whose sides are at most 384 pixels, else 258 per 768 x
        768 tile (Gemini 3 counts by its media resolution: an estimate)."""
        if width <= 384 and height <= 384:
            return 258
        return 258 * math.ceil(width / 768) * math.ceil(height / 768)

    @classmethod
    def family_capabilities(cls, model_id: str) -> Capabilities:
        thinking = thinking_of(model_id)
        if thinking is None:  # gemini-2.0-flash, gemini-1.5-pro...: structured output, no thinking
            return Capabilities(structured_output=model_id.rsplit("/", 1)[-1].lower().startswith("gemini-"))
        return Capabilities(reasoning=True, structured_output=True, tool_call=True,
                            input_modalities=("text", "image", "audio", "video", "pdf"), output_limit=65536,
                            efforts=thinking.efforts, default_effort=thinking.default)

    def thinking_config(self, request: Request) -> dict | None:
        """generationConfig.thinkingConfig for this call (snake_case, as both SDKs' types take it); None for a
        model that does not think, which refuses any."""
        caps = self.capabilities
        if not caps.reasoning:
            return None
        config: dict = {}
        thinking = thinking_of(self.model.id)
        if request.reasoning is not None:
            if request.reasoning == "none" or (thinking is not None and thinking.budget is not None):
                config["thinking_budget"] = budget_for(request, thinking)
            else:
                config["thinking_level"] = request.reasoning.upper()
        if (request.reasoning or caps.default_effort or "none") != "none":
            config["include_thoughts"] = True  # the thought summaries, for results.jsonl (billed either way)
        return config or None

    def json_schema(self, request: Request) -> dict | None:
        """The JSON Schema to send as responseJsonSchema (None: none, or the model has no structured output)."""
        return request.json_schema if self.capabilities.structured_output else None

    def new_client(self) -> genai.Client:
        # imported at the first call: preflight and cached runs do not need google-genai
        import httpx2
        from google import genai
        from google.genai import types

        # HTTP clients of our own, connecting only to addresses the runner allows (at every redirect too), as
        # google-genai's would (it follows redirects); given one, it never switches to aiohttp either
        self._http_clients = (checked_client(httpx2.Client)(follow_redirects=True),
                              checked_client(httpx2.AsyncClient)(follow_redirects=True))
        return genai.Client(
            api_key=self.api_key(),
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=self.endpoint() or None, api_version=API_VERSION,
                timeout=int(self.model.timeout_s * 1000),  # milliseconds in google-genai
                # one attempt, and no implicit reconnects either: the runner has one retry policy
                retry_options=types.HttpRetryOptions(attempts=1),
                httpx_client=self._http_clients[0], httpx_async_client=self._http_clients[1]),
        )

    async def prepare(self) -> None:
        await super().prepare()
        from google.genai import types

        # pydantic builds google-genai's request and answer types at first use: 0.3 s of the first call
        self._params(Request([{"role": "user", "content": "-"}], 0.0, 1))
        types.GenerateContentResponse.model_validate(SAMPLE_ANSWER)

    def config(self, system: str | None, request: Request) -> types.GenerateContentConfig:
        from google.genai import types

        thinking = self.thinking_config(request)
        tools = [types.Tool(function_declarations=[
            types.FunctionDeclaration(name=tool.name, description=tool.description,
                                      parameters_json_schema=tool.parameters)
            for tool in request.tools])] if request.tools else None
        return types.GenerateContentConfig(
            system_instruction=system, temperature=request.temperature, max_output_tokens=request.max_tokens,
            response_mime_type="application/json" if request.json_mode or request.json_schema is not None else None,
            response_json_schema=self.json_schema(request),
            thinking_config=types.ThinkingConfig(**thinking) if thinking else None, seed=request.seed,
            # the runner runs the calls: the SDK must never call a function itself
            tools=tools,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True) if tools else None)

    def _params(self, request: Request) -> dict:
        system, contents = split_messages(request.messages)
        return dict(model=self.model.id, contents=contents, config=self.config(system, request))

    async def _once(self, request: Request) -> Response:
        return answer(await self.client().aio.models.generate_content(**self._params(request)),
                      self.capabilities.reasoning)

    async def _stream(self, request: Request, clock: Clock) -> Response:
        chunks = Chunks(clock, self.capabilities.reasoning)
        async for chunk in await self.client().aio.models.generate_content_stream(**self._params(request)):
            chunks.add(chunk)
        return chunks.response()

    def mapped(self, exc: BaseException) -> ProviderError:
        return _mapped(exc)

    def batch_entry(self, custom_id: str, request: Request) -> dict:
        system, contents = split_messages(request.messages)
        config = {"temperature": request.temperature, "max_output_tokens": request.max_tokens}
        if system:
            config["system_instruction"] = system
        if request.json_mode or request.json_schema is not None:
            config["response_mime_type"] = "application/json"
        if request.seed is not None:
            config["seed"] = request.seed
        if self.json_schema(request) is not None:
            config["response_json_schema"] = request.json_schema
        thinking = self.thinking_config(request)
        if thinking:
            config["thinking_config"] = thinking
        return {"contents": contents, "config": config, "metadata": {"custom_id": custom_id}}

    async def batch_submit(self, entries: list[dict]) -> str:
        try:
            job = await self.client().aio.batches.create(model=self.model.id, src=entries,
                                                         config={"display_name": "runner"})
        except Exception as exc:  # noqa: BLE001 - the runner's terms, as for a call
            raise self.mapped(exc) from None
        return job.name

    async def batch_status(self, batch_id: str) -> BatchStatus:
        try:
            job = await self.client().aio.batches.get(name=batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.mapped(exc) from None
        state = getattr(job.state, "name", str(job.state))
        answered = (job.dest.inlined_responses or []) if job.dest is not None else []
        failed = sum(1 for item in answered if item.error is not None)
        ours = BATCH_STATES.get(state, "pending")
        return BatchStatus(  # the job tells no counts while it runs (google-genai does not read batchStats)
            id=job.name, state=ours, word=state, pending=0 if ours != "pending" else None,
            succeeded=len(answered) - failed if answered else None, failed=failed if answered else None,
            reason=(job.error.message or "") if job.error is not None else "",
            created_at=job.create_time.timestamp() if job.create_time else None,
            ended_at=job.end_time.timestamp() if job.end_time else None, raw=job)

    async def batch_results(self, status: BatchStatus, custom_ids: list[str]) -> dict[str, Response]:
        job = status.raw
        answered = (job.dest.inlined_responses or []) if job.dest is not None else []
        answers: dict[str, Response] = {}
        for index, item in enumerate(answered):
            # each answer names its request by the metadata sent with it; else by its place in the batch
            key = (item.metadata or {}).get("custom_id") or (custom_ids[index] if index < len(custom_ids) else None)
            if key is None:
                continue
            if item.error is not None:
                reason = f"{item.error.code or ''} {item.error.message or 'no reason given'}".strip()
                answers[key] = error_response(ProviderError(f"the batch failed this request ({reason})",
                                                            "batch_failed"))
                continue
            try:
                answers[key] = answer(item.response, self.capabilities.reasoning)
            except ProviderError as exc:
                answers[key] = error_response(exc)
        return answers

    async def close_client(self, client: genai.Client) -> None:
        await client.aio.aclose()
        client.close()
        sync, asynchronous = self._http_clients  # google-genai leaves clients it was given open
        await asynchronous.aclose()
        sync.close()


def answer(result, thinks: bool = False) -> Response:
    """A whole (non-streamed) GenerateContentResponse of either SDK as a Response; `thinks`: the model thinks
    (its reasoning tokens are 0, not unknown, when it reports none)."""
    chunks = Chunks(None, thinks)
    chunks.add(result)
    return chunks.response()


class Chunks:
    """Collects a stream's chunks: text as it arrives (the clock sees the answer's, not the thoughts'), thought
    summaries apart, the finish reason, and the last chunk's usage."""

    def __init__(self, clock: Clock | None, thinks: bool = False) -> None:
        self.clock = clock
        self.thinks = thinks
        self.parts: list[str] = []
        self.thoughts: list[str] = []
        self.finish: str | None = None
        self.usage = Usage(input_tokens=None)
        self.blocked: str | None = None
        self.calls: list[dict] = []
        self.raw: list = []  # every part as the SDK gave it: Response.replay when the model called tools

    def add(self, chunk) -> None:
        if chunk.usage_metadata is not None:
            self.usage = usage_from(chunk.usage_metadata, self.thinks)
            if self.clock is not None:  # a stream that breaks after this was billed for it
                self.clock.usage = self.usage
        feedback = getattr(chunk, "prompt_feedback", None)
        block_reason = getattr(feedback, "block_reason", None)
        if block_reason:
            self.blocked = getattr(block_reason, "name", str(block_reason))
        for candidate in chunk.candidates or ():
            self.thoughts.append(candidate_text(candidate, thought=True))
            text = candidate_text(candidate)
            if text:
                if self.clock is not None:
                    self.clock.text_arrived(text)
                self.parts.append(text)
            for ident, name, args in function_calls(candidate):
                # a call without an id (Gemini 2.5 mostly) gets one of the runner's; none is sent back for it
                self.calls.append(tool_call(ident or f"gemini-call-{len(self.calls) + 1}", name, args))
            if candidate.content is not None and candidate.content.parts:
                self.raw += candidate.content.parts
            self.finish = finish_reason(candidate.finish_reason) or self.finish

    def response(self) -> Response:
        if self.blocked:
            raise ProviderError(f"the prompt was blocked ({self.blocked})", "blocked")
        if self.finish is None:
            raise ProviderError("the response ended before a finish reason", "malformed", retryable=True)
        replay = {"wire": WIRE, "parts": [part_data(part) for part in self.raw]} if self.calls else None
        return Response(text="".join(self.parts), reasoning="".join(self.thoughts), usage=self.usage,
                        finish_reason=self.finish, tool_calls=self.calls, replay=replay)
