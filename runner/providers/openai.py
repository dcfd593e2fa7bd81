"""OpenAI Chat Completions through the official `openai` SDK, and any OpenAI-compatible endpoint.

Streaming asks for usage in the last chunk (`stream_options.include_usage`); servers that ignore it
(llama.cpp's, some proxies) leave the counts to `runner.tokens`, and `tokens_source` says so.
Batch runs (`model.batch=true`) upload the requests as one JSONL file (`files.create`, purpose batch),
create the batch (`batches.create`), poll it (`batches.retrieve`) and read its output and error files.
Tools (checked 2026-12-07): `tools` of type function (name, description,
parameters: the JSON Schema as declared); the model's calls come back in `message.tool_calls` (arguments as JSON
text; streamed as `delta.tool_calls` pieces by index: the first with the id and name, then the arguments), with
finish_reason tool_calls. The next turn sends the assistant message with its `tool_calls` (arguments as text
again) and one `tool` message per call, answering it by `tool_call_id`.
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from runner.calls import Request, Response, Usage, data_url, in_tool_loop, is_image, tool_call, without_replay
from runner.errors import ConfigError
from runner.providers import priced_as
from runner.providers.base import (
    BATCH_EXPIRED,
    STRICT_ENV,
    BatchStatus,
    Capabilities,
    Clock,
    ProviderError,
    SDKProvider,
    error_for_status,
    error_response,
    not_the_api,
    refuse_a_page,
    stainless_error,
)
from runner.providers.connections import checked_client
from runner.providers.reasons import server_message

if TYPE_CHECKING:
    import openai


def sdk():
    """The `openai` package, imported at the first call: preflight and a run answered from the cache never
    need it (it takes about 0.45 s to import)."""
    import openai

    return openai


class OpenAIProvider(SDKProvider):
    key_env = ("OPENAI_API_KEY",)
    key_prefix = "sk-"
    key_owner = "openai"
    own_host = "api.openai.com"
    price_provider = "openai"
    endpoint_env = "OPENAI_BASE_URL"
    loggers = ("openai", "httpx2", "httpx", "httpcore")
    # OpenAI's own API wants max_completion_tokens; compatible servers mostly know only max_tokens
    max_tokens_field = "max_completion_tokens"
    seed_field = "seed"  # Chat Completions' (best effort: OpenAI samples alike, not always the same)
    #: where the SDK sends calls when neither model.base_url nor endpoint_env says (None: the SDK's default)
    default_base_url: str | None = None
    #: OpenAI's Batch API: at most 50,000 requests and a 200 MB input file per batch
    batch_limits = (50_000, 200 * 1024 * 1024)
    batch_endpoint = "/v1/chat/completions"
    catalogue = "openai"
    default_temperature = 1.0  # "Only the default (1) value is supported", as the API says to reasoning models
    # max_completion_tokens counts reasoning and answer together: room for the reasoning each effort may spend
    # (OpenAI suggests reserving about 25,000 tokens for reasoning and answer when starting out)
    thinking_room = {"minimal": 1024, "low": 4096, "medium": 16384, "high": 32768, "xhigh": 65536}

    @classmethod
    def family_capabilities(cls, model_id: str) -> Capabilities:
        efforts, default = openai_efforts(model_id)
        if efforts is None:  # gpt-4.1, gpt-4o and other models that do not reason
            return Capabilities()
        return Capabilities(reasoning=True, temperature=False, structured_output=True, tool_call=True,
                            input_modalities=("text", "image"), output_limit=128_000, efforts=efforts,
                            default_effort=default)

    @classmethod
    def image_tokens(cls, width: int, height: int) -> int:
        """OpenAI's tile rule at detail auto/high (GPT-4o, GPT-4.1, GPT-5): fit within 2,048 x 2,048, then the
        shortest side within 768; 170 tokens per 512-pixel tile, plus 85 (the mini models count 32-pixel
        patches instead: an estimate either way)."""
        scale = min(1.0, 2048 / max(width, height, 1))
        width, height = width * scale, height * scale
        scale = min(1.0, 768 / max(min(width, height), 1))
        width, height = width * scale, height * scale
        return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)

    @classmethod
    def takes_temperature(cls, model_id: str, caps: Capabilities, effort: str | None) -> bool:
        # GPT-5.2 and later take sampling parameters with reasoning off (effort none: the default of 5.2 to 5.4); every
        # other reasoning model refuses any temperature but 1
        return caps.temperature or (effort == "none" and _version(model_id) >= (5, 2))

    def new_client(self) -> openai.AsyncOpenAI:
        api = sdk()
        return api.AsyncOpenAI(
            api_key=self.api_key(),
            base_url=self.endpoint() or self.default_base_url,  # None: the SDK's default, api.openai.com
            max_retries=0,  # the runner has one retry policy for every provider
            timeout=self.model.timeout_s,
            _strict_response_validation=os.environ.get(STRICT_ENV) == "1",
            # the SDK's own client, connecting only to addresses the runner allows (at every redirect too)
            http_client=checked_client(api.DefaultAsyncHttpxClient)(),
        )

    async def prepare(self) -> None:
        await super().prepare()
        self.client().chat.completions  # noqa: B018 - the SDK imports its resources at first use: 0.3 s of the first call

    def params(self, request: Request) -> dict:
        params = {"model": self.model.id, "messages": chat_messages(wire_messages(request.messages)),
                  self.max_tokens_field: request.max_tokens}
        if request.tools:
            params["tools"] = [{"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": tool.parameters}}
                for tool in request.tools]
        if request.temperature is not None:  # None: the model takes only its default, and refuses any other
            params["temperature"] = request.temperature
        if request.reasoning is not None:
            params["reasoning_effort"] = request.reasoning
        if request.json_schema is not None and self.capabilities.structured_output:
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": request.json_schema, "strict": is_strict(request.json_schema)}}
        elif request.json_mode or request.json_schema is not None:  # a model without structured outputs
            params["response_format"] = {"type": "json_object"}
        if request.seed is not None and self.seed_field == "seed":
            params["seed"] = request.seed
        elif request.seed is not None:  # a field of another API's: the SDK sends it only as extra_body
            params["extra_body"] = {self.seed_field: request.seed}
        return params

    def mapped(self, exc: BaseException) -> ProviderError:
        return stainless_error(exc, sdk())

    async def _once(self, request: Request) -> Response:
        return _completion(await self.client().chat.completions.create(**self.params(request)))

    def batch_entry(self, custom_id: str, request: Request) -> dict:
        body = self.params(request)
        body.update(body.pop("extra_body", {}))  # the batch's line is the request's body as it goes out
        return {"custom_id": custom_id, "method": "POST", "url": self.batch_endpoint, "body": body}

    async def batch_submit(self, entries: list[dict]) -> str:
        lines = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries).encode()
        try:
            uploaded = await self.client().files.create(file=("batch.jsonl", lines, "application/jsonl"),
                                                        purpose="batch")
            batch = await self.client().batches.create(input_file_id=uploaded.id, endpoint=self.batch_endpoint,
                                                       completion_window="24h")
        except Exception as exc:  # noqa: BLE001 - the runner's terms, as for a call
            raise self.mapped(exc) from None
        return batch.id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        try:
            batch = await self.client().batches.retrieve(batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.mapped(exc) from None
        counts = batch.request_counts
        state = {"completed": "ended", "expired": "expired", "failed": "failed", "cancelled": "cancelled"}
        reasons = [error.message or error.code or "" for error in ((batch.errors and batch.errors.data) or [])]
        ended = batch.completed_at or batch.expired_at or batch.failed_at or batch.cancelled_at
        return BatchStatus(
            id=batch.id, state=state.get(batch.status, "pending"), word=batch.status,
            succeeded=counts.completed if counts else None, failed=counts.failed if counts else None,
            pending=counts.total - counts.completed - counts.failed if counts else None,
            reason="; ".join(filter(None, reasons)), created_at=batch.created_at, ended_at=ended, raw=batch)

    async def batch_results(self, status: BatchStatus, custom_ids: list[str]) -> dict[str, Response]:
        answers: dict[str, Response] = {}
        for file_id in (status.raw.output_file_id, status.raw.error_file_id):
            if not file_id:
                continue
            try:
                content = await self.client().files.content(file_id)
            except Exception as exc:  # noqa: BLE001
                raise self.mapped(exc) from None
            for line in content.text.splitlines():
                if line.strip():
                    entry = json.loads(line)
                    answers[entry["custom_id"]] = self._batch_answer(entry)
        return answers

    def _batch_answer(self, entry: dict) -> Response:
        """One line of a batch's output or error file as a Response."""
        reply = entry.get("response") or {}
        status = reply.get("status_code")
        if entry.get("error") or status != 200:
            error = entry.get("error") or {}
            message = error.get("message") or server_message(reply.get("body")) or "no reason given"
            kind = BATCH_EXPIRED if error.get("code") == "batch_expired" else "batch_failed"
            problem = error_for_status(status, message) if status else ProviderError(
                f"{error.get('code') or 'error'}: {message}", kind)
            return error_response(problem)
        try:
            return _completion(sdk().types.chat.ChatCompletion.model_validate(reply["body"]))
        except Exception as exc:  # noqa: BLE001 - one broken answer is one error row
            return error_response(self.mapped(exc))

    async def _stream(self, request: Request, clock: Clock) -> Response:
        stream = await self.client().chat.completions.create(
            **self.params(request), stream=True, stream_options={"include_usage": True})
        await refuse_a_page(stream)
        parts: list[str] = []
        calls: dict[int, dict] = {}  # a streamed tool call's pieces, by its index
        finish_reason = None
        usage = Usage()
        async for chunk in stream:
            if chunk.usage is not None:
                usage = clock.usage = _usage(chunk.usage)
            for choice in chunk.choices:
                if choice.delta is not None and choice.delta.content:
                    clock.text_arrived(choice.delta.content)
                    parts.append(choice.delta.content)
                for piece in (choice.delta.tool_calls or []) if choice.delta is not None else []:
                    call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": []})
                    call["id"] = piece.id or call["id"]
                    if piece.function is not None:
                        call["name"] = piece.function.name or call["name"]
                        call["arguments"].append(piece.function.arguments or "")
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
        if finish_reason is None:
            raise ProviderError("the stream ended before a finish reason", "malformed", retryable=True)
        made = [tool_call(c["id"], c["name"], "".join(c["arguments"])) for _, c in sorted(calls.items())]
        return Response(text="".join(parts), usage=usage, finish_reason=finish_reason, tool_calls=made)


# What ends llama-cpp-python's own server on its first answer on many current Intel machines: said when a
# server on this machine goes away mid-run
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
LLAMA_CPP_CRASH = ("llama.cpp's Python server dies so on Intel AMX CPUs when it repacks weights: start it with "
                   "python -m runner.llama_server")


class OpenAICompatibleProvider(OpenAIProvider):
    """Any server that speaks Chat Completions: `model.base_url` plus `model.api_key_env`.

    Local servers (llama.cpp, vLLM, LM Studio) need no key: without `api_key_env` a placeholder is sent.
    """

    max_tokens_field = "max_tokens"
    key_env = ()  # a key only when model.api_key_env names its variable
    key_prefix = key_owner = own_host = price_provider = None  # the endpoint's, from model.price_provider
    catalogue = None

    @classmethod
    def catalogue_for(cls, model) -> str | None:
        # an endpoint priced as a provider serves that provider's models (genai-prices' ids are models.dev's)
        return model.price_provider

    @classmethod
    def family_for(cls, model) -> type:
        # an endpoint priced as a provider serves that provider's models, whose families it knows (Gemini's
        # OpenAI-compatible endpoint: which Gemini thinks, at which efforts)
        return priced_as(model.price_provider) or cls

    def __init__(self, model) -> None:
        super().__init__(model)
        if not model.base_url:
            raise ConfigError(f"model/{model.name}: provider openai_compatible needs model.base_url "
                              f"(the server's URL, e.g. http://127.0.0.1:8080/v1)")
        # an endpoint priced as a provider is that provider's (Gemini's is priced as google): at its own API,
        # it takes that provider's keys
        owner = priced_as(model.price_provider)
        if owner is not None:
            self.key_owner, self.own_host = owner.key_owner, owner.own_host
        # the server answered a call of this job: a refused connection now means it went away (crashed)
        self._answered = False

    def api_key(self) -> str:
        # local servers take no key, but the SDK insists on one
        return super().api_key() or "not-needed"

    async def generate(self, request: Request) -> Response:
        response = await super().generate(request)
        if response.ok or response.status_code is not None:
            self._answered = True
        return response

    def mapped(self, exc: BaseException) -> ProviderError:
        error = super().mapped(exc)
        if error.kind != "connection":
            return error
        cause = type(exc.__cause__ or exc).__name__  # httpx's or httpx2's, as the SDK's version has it
        hint = f"; {LLAMA_CPP_CRASH}" if urlsplit(self.endpoint()).hostname in LOOPBACK else ""
        if cause == "RemoteProtocolError":  # it had begun to answer: its process ended mid-answer
            self._answered = True
            return ProviderError(f"the server closed the connection before its answer was complete: it may have "
                                 f"crashed (see its log){hint}", "connection", retryable=True)
        if cause == "ConnectError" and self._answered:
            return ProviderError(f"the server at {self.endpoint()} no longer accepts connections, after answering "
                                 f"earlier in this run: it stopped or crashed (see its log){hint}",
                                 "connection", retryable=True)
        return error


# OpenAI's reasoning models by family: the values of reasoning_effort each takes, and its default (checked
# 2026-12-07 against OpenAI's API reference and the errors it returns)
_EFFORTS_5 = ("minimal", "low", "medium", "high")  # gpt-5, gpt-5-mini, gpt-5-nano: default medium, no none
_EFFORTS_51 = ("none", "low", "medium", "high")  # gpt-5.1: default none, no minimal
_EFFORTS_52 = ("none", "low", "medium", "high", "xhigh")  # gpt-5.2 and later: xhigh too
# gpt-5.5 and 5.6 (Sol, Terra, Luna) take the same efforts but reason at medium when told nothing: unset, they refuse
# a temperature that reasoning_effort none takes (OpenAI's reasoning guide; checked 2026-12-07 by search: live
# probes in inspect_ai#5242 and BerriAI/litellm#32060). GPT-5.6's `max` is no value of model.reasoning.
_MEDIUM_BY_DEFAULT = (5, 5)
_EFFORTS_O = ("low", "medium", "high")  # o1, o3, o3-mini, o4-mini, o3-pro; the codex models before codex-max


def _base_id(model_id: str) -> str:
    """gpt-5-mini-2025-08-07 -> gpt-5-mini; openai/gpt-5 -> gpt-5 (a gateway's prefix)."""
    name = model_id.rsplit("/", 1)[-1].lower()
    return re.sub(r"-\d{4}-\d{2}-\d{2}$", "", name)


def _version(model_id: str) -> tuple[int, int]:
    """(5, 2) for gpt-5.2-*, (5, 0) for gpt-5-*; (0, 0) for a model that is not GPT-5.x."""
    match = re.match(r"gpt-(\d+)(?:\.(\d+))?(?:-|$)", _base_id(model_id))
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)


def openai_efforts(model_id: str) -> tuple[tuple[str, ...] | None, str | None]:
    """(the reasoning_effort values an OpenAI model takes, its default effort); (None, None) for a model that
    does not reason, ((), None) for one that reasons but takes no setting (gpt-5-chat-latest, o1-mini)."""
    name = _base_id(model_id)
    version = _version(name)
    if re.match(r"o\d", name):
        return ((), None) if name.startswith(("o1-mini", "o1-preview")) else (_EFFORTS_O, "medium")
    if version < (5, 0):
        return None, None
    if "-chat" in name:
        return ((), None) if version == (5, 0) else (("medium",), "medium")
    if name.endswith("-pro") or "-pro-" in name:
        return (("high",), "high") if version < (5, 2) else (("medium", "high", "xhigh"), "high")
    if "codex" in name:
        later = version >= (5, 2) or "codex-max" in name
        return (_EFFORTS_O + ("xhigh",) if later else _EFFORTS_O), "medium"
    if version == (5, 0):
        return _EFFORTS_5, "medium"
    if version == (5, 1):
        return _EFFORTS_51, "none"
    return _EFFORTS_52, "medium" if version >= _MEDIUM_BY_DEFAULT else "none"


def chat_messages(messages: list[dict]) -> list[dict]:
    """The messages as Chat Completions takes them: a message with images has content parts, each image an
    `image_url` part holding a data URL (plain string content goes as it is)."""
    if not any(isinstance(m.get("content"), list) for m in messages):
        return messages
    return [{**m, "content": [content_part(p) for p in m["content"]]} if isinstance(m.get("content"), list) else m
            for m in messages]


def content_part(part: dict) -> dict:
    """One neutral content part (runner.calls) as Chat Completions' part."""
    if is_image(part):
        return {"type": "image_url", "image_url": {"url": data_url(part)}}
    return {"type": "text", "text": part["text"]}


def is_strict(schema: dict) -> bool:
    """Whether OpenAI's strict structured outputs take this schema as it is: every object lists all of its
    properties as required and allows no others (otherwise the schema is sent without strict)."""
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or set(schema.get("required") or []) != set(properties):
            return False
    children = [*(schema.get("properties") or {}).values(), *(schema.get("$defs") or {}).values()]
    children += [schema[key] for key in ("items",) if isinstance(schema.get(key), dict)]
    children += [s for key in ("anyOf", "allOf", "oneOf") for s in schema.get(key) or []]
    return all(is_strict(child) for child in children)


def _completion(completion) -> Response:
    """A whole (non-streamed) chat completion as a Response."""
    if isinstance(completion, str):  # the SDK hands back a body that is not JSON as it came
        raise not_the_api(completion) or ProviderError("the response is not JSON", "malformed", retryable=True)
    if not completion.choices:
        raise ProviderError("the response has no choices", "malformed", retryable=True)
    choice = completion.choices[0]
    made = [tool_call(call.id, call.function.name, call.function.arguments)
            for call in choice.message.tool_calls or () if getattr(call, "function", None) is not None]
    return Response(text=choice.message.content or "", usage=_usage(completion.usage),
                    finish_reason=choice.finish_reason, tool_calls=made)


def wire_messages(messages: list[dict]) -> list[dict]:
    """The runner's messages as Chat Completions takes them: an assistant turn's tool calls with their arguments
    as JSON text, each tool result as a `tool` message answering its call by id. Messages without tools go as
    they are."""
    if not in_tool_loop(messages):
        return messages
    sent = []
    for m in messages:
        if m["role"] == "tool":
            sent.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            sent.append({"role": "assistant", "content": m.get("content") or None, "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": arguments_text(c)}}
                for c in m["tool_calls"]]})
        else:
            sent.append(without_replay(m))
    return sent


def arguments_text(call: dict) -> str:
    """A call's arguments as the JSON text the model sent (text that was not a JSON object, as it was)."""
    arguments = call["arguments"]
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _usage(usage) -> Usage:
    if usage is None:
        return Usage()  # no counts: runner.tokens counts them
    details = getattr(usage, "prompt_tokens_details", None)
    # completion_tokens already holds the reasoning tokens (billed as output); the details say how many
    output_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=(getattr(details, "cached_tokens", None) or 0) if details is not None else 0,
        source="provider",
        reasoning_tokens=getattr(output_details, "reasoning_tokens", None) if output_details is not None else None,
    )
