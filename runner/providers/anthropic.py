"""Anthropic's Messages API through the official `anthropic` SDK.

The Messages API keeps the system prompt apart from the messages and requires `max_tokens`. The SDK
(2.13) has no `temperature` argument any more, so it goes in the request body through `extra_body`.
Streaming reads input usage from `message_start` and the cumulative output from `message_delta`.
Batch runs (`model.batch=true`) use Message Batches: `messages.batches.create` with the same params,
`retrieve` to poll, and `results` (the batch's results_url, JSONL) for the answers.

Reasoning (`model.reasoning`; what each generation takes: runner.providers.claude_models, checked 2026-12-07):
  - Claude 4.6 and later think adaptively: `thinking: {type: adaptive, display: summarized}` with
    `output_config: {effort: low | medium | high | xhigh}`. `display: summarized` because Opus 4.7 and later
    return empty thinking blocks by default; the summary is kept in results.jsonl (`reasoning`).
  - 3.7 Sonnet and Claude 4 to 4.5 take a token budget: `thinking: {type: enabled, budget_tokens: N}`, N the
    room for thinking that runner.calling.asking added to max_tokens by effort (`thinking_room`: low 4,096,
    medium 16,384, high 32,768 within the model's output limit), at least 1,024 and always below max_tokens.
  - `none` sends nothing to a model that thinks only when asked; `thinking: {type: disabled}` (Claude 5) or
    `{type: between_tools}` (Sonnet 5.5) to one that thinks by default; models that always think do not
    take it. null sends nothing, except adaptive thinking (its default) with a summary to a model that
    thinks by default.
  - max_tokens covers thinking and answer together, so the cap sent is the answer's max_tokens plus the
    room for thinking. A thinking call is sent no temperature (Anthropic refuses one), and Opus 4.7 and
    later never are (sampling parameters were removed).
  - Thinking text streams as `thinking_delta` events: it goes to Response.reasoning, never into the answer;
    ttft_s is the first piece of answer text. `usage.output_tokens` includes the thinking (billed as
    output); `usage.output_tokens_details.thinking_tokens` says how many were thinking. Where the API
    leaves that out, reasoning_tokens is estimated (source "estimate") as the billed output less the
    answer counted at about four characters a token: the thinking text itself is a summary, shorter than
    what was billed, and empty where the model omits it.
JSON (json_mode, or Request.json_schema):
  - a schema on a model with structured outputs: `output_config.format` (json_schema, objects closed with
    additionalProperties false as the API demands, unsupported keywords moved into descriptions by the SDK);
  - otherwise, when the call does not think: one tool the model is made to call (`tool_choice` forced),
    its input the answer (input_schema the schema, or any object);
  - the assistant prefill "{" only for a model that takes prefill and no tools (Claude 4.6 and later refuse
    prefill: HTTP 400, and a thinking call takes neither prefill nor a forced tool);
  - a thinking call without a schema answers in text as the prompt asks; the JSON object is taken from the
    text (a code fence or words around it dropped).
Tools (Request.tools; checked 2026-12-07): `tools` with each one's
`input_schema`; the model's calls are `tool_use` blocks (id, name, input; streamed as input_json_delta), stop
reason tool_use. The next turn sends the assistant's content blocks back as they came (Response.replay): with
thinking on, the API refuses a tool loop whose last assistant turn does not start with its thinking block, its
signature intact. The tool results go in one user message, a `tool_result` block per call (tool_use_id, content,
is_error).
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from runner import tokens
from runner.calls import Request, Response, Usage, is_image, tool_call
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
    retry_after,
    stainless_error,
    status_error_body,
)
from runner.providers.claude_models import ADAPTIVE, family
from runner.providers.connections import checked_client
from runner.providers.reasons import server_message

if TYPE_CHECKING:
    import anthropic

WIRE = "anthropic"  # Response.replay's mark: content blocks to send back as they are
JSON_PREFILL = "{"
JSON_TOOL = "json_answer"  # the one tool a JSON answer is given through when the call does not think
ANY_OBJECT = {"type": "object"}
MIN_BUDGET = 1024  # the least budget_tokens Anthropic takes
# the ways a JSON answer is asked for (Anthropic.json_way)
SCHEMA, TOOL, PREFILL, TEXT = "schema", "tool", "prefill", "text"


def sdk():
    """The `anthropic` package, imported at the first call (preflight and cached runs do not need it)."""
    import anthropic

    return anthropic


class AnthropicProvider(SDKProvider):
    key_env = ("ANTHROPIC_API_KEY",)
    key_prefix = "sk-ant-"
    key_owner = "anthropic"
    own_host = "api.anthropic.com"
    price_provider = "anthropic"
    endpoint_env = "ANTHROPIC_BASE_URL"
    loggers = ("anthropic", "httpx2", "httpx", "httpcore")
    takes_seed = False  # the Messages API has no seed
    #: Message Batches: at most 100,000 requests and 256 MB per batch
    batch_limits = (100_000, 256 * 1024 * 1024)
    catalogue = "anthropic"
    default_temperature = 1.0  # Anthropic's default; a thinking call may only be at 1
    # max_tokens covers thinking and answer: the room for thinking at each effort (a budget model's
    # budget_tokens; an adaptive model's headroom)
    thinking_room = {"low": 4096, "medium": 16384, "high": 32768, "xhigh": 65536}

    @classmethod
    def family_capabilities(cls, model_id: str) -> Capabilities:
        fam = family(model_id)
        return Capabilities(reasoning=fam.thinking is not None, temperature=fam.sampling,
                            structured_output=fam.structured_output, tool_call=True,
                            input_modalities=("text", "image", "pdf"), output_limit=fam.output_limit,
                            efforts=fam.efforts, default_effort=fam.default_effort)

    @classmethod
    def takes_temperature(cls, model_id: str, caps: Capabilities, effort: str | None) -> bool:
        # thinking takes no temperature ("`temperature` may only be set to 1 when thinking is enabled")
        return caps.temperature and effort in (None, "none")

    def __init__(self, model) -> None:
        super().__init__(model)
        self.family = family(model.id)

    def new_client(self) -> anthropic.AsyncAnthropic:
        api = sdk()
        return api.AsyncAnthropic(
            api_key=self.api_key(),
            base_url=self.endpoint() or None,  # None: the SDK's default, api.anthropic.com
            max_retries=0,  # the runner has one retry policy for every provider
            timeout=self.model.timeout_s,
            _strict_response_validation=os.environ.get(STRICT_ENV) == "1",
            # the SDK's own client, connecting only to addresses the runner allows (at every redirect too)
            http_client=checked_client(api.DefaultAsyncHttpxClient)(),
        )

    async def prepare(self) -> None:
        await super().prepare()
        self.client().messages  # noqa: B018 - the SDK imports its resources at first use

    # --- what a call sends ----------------------------------------------------------------------------

    def effort(self, request: Request) -> str | None:
        """How hard this call thinks: the setting sent, else the model's default (None: it does not think)."""
        caps = self.capabilities
        return (request.reasoning or caps.default_effort) if caps.reasoning else None

    def thinks(self, request: Request) -> bool:
        return self.effort(request) not in (None, "none")

    def thinking(self, request: Request) -> dict | None:
        """The `thinking` parameter, or None to send none."""
        effort = self.effort(request)
        if effort is None:
            return None
        if effort == "none":  # asked not to think: only a model that thinks by default needs telling
            return {"type": self.family.off} if request.reasoning == "none" and self.family.off else None
        if self.family.thinking == ADAPTIVE:
            return {"type": "adaptive", "display": "summarized"}
        budget = max(MIN_BUDGET, request.thinking_tokens)
        if budget >= request.max_tokens:  # only when the model's output limit leaves no room (model.max_output_tokens)
            raise ProviderError(f"model.reasoning={effort} needs a thinking budget of at least {MIN_BUDGET} tokens "
                                f"below max_tokens ({request.max_tokens}): raise the model's output limit",
                                "bad_request")
        return {"type": "enabled", "budget_tokens": budget}

    def json_way(self, request: Request) -> str | None:
        """How a JSON answer is asked for (None: no JSON asked)."""
        if not request.json_mode and request.json_schema is None:
            return None
        caps = self.capabilities
        if request.json_schema is not None and caps.structured_output and closed(request.json_schema):
            return SCHEMA
        if self.thinks(request):
            return TEXT  # thinking takes neither a forced tool nor a prefill
        if caps.tool_call and self.family.forced_tool:
            return TOOL
        if self.family.prefill:
            return PREFILL
        return TEXT

    def params(self, request: Request) -> dict:
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        messages = wire_messages(request.messages)
        params: dict[str, Any] = {"model": self.model.id, "messages": messages, "max_tokens": request.max_tokens}
        if request.tools:
            params["tools"] = [{"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
                               for tool in request.tools]
        output_config: dict[str, Any] = {}
        thinking = self.thinking(request)
        if thinking is not None:
            params["thinking"] = thinking
            if thinking["type"] == "adaptive" and request.reasoning is not None:
                output_config["effort"] = request.reasoning
        way = self.json_way(request)
        if way == SCHEMA:
            output_config["format"] = {"type": "json_schema", "schema": sdk().transform_schema(request.json_schema)}
        elif way == TOOL:
            schema = request.json_schema if (request.json_schema or {}).get("type") == "object" else ANY_OBJECT
            params["tools"] = [{"name": JSON_TOOL, "description": "Give your answer: the JSON object asked for.",
                                "input_schema": schema}]
            params["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
        elif way == PREFILL:
            messages.append({"role": "assistant", "content": JSON_PREFILL})
        if output_config:
            params["output_config"] = output_config
        if request.temperature is not None:  # None: this call takes none (thinking, or Opus 4.7 and later)
            params["extra_body"] = {"temperature": request.temperature}
        if system:
            params["system"] = system
        return params

    # --- what comes back ------------------------------------------------------------------------------

    async def generate(self, request: Request) -> Response:
        return self.batch_answer(request, await super().generate(request))

    def batch_answer(self, request: Request, response: Response) -> Response:
        if not response.ok:
            return response
        way = self.json_way(request)
        if way == PREFILL and response.text.strip():
            # the prefill is part of the answer; alone it is no answer (the engine says the answer is empty)
            response.text = JSON_PREFILL + response.text
        elif way == TEXT:
            response.text = json_object_in(response.text)
        return response

    def batch_entry(self, custom_id: str, request: Request) -> dict:
        params = self.params(request)
        params.update(params.pop("extra_body", {}))  # a batch's params are plain JSON: temperature goes in directly
        return {"custom_id": custom_id, "params": params}

    async def batch_submit(self, entries: list[dict]) -> str:
        try:
            return (await self.client().messages.batches.create(requests=entries)).id
        except Exception as exc:  # noqa: BLE001 - the runner's terms, as for a call
            raise self.mapped(exc) from None

    async def batch_status(self, batch_id: str) -> BatchStatus:
        try:
            batch = await self.client().messages.batches.retrieve(batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.mapped(exc) from None
        counts = batch.request_counts
        return BatchStatus(
            id=batch.id, state="ended" if batch.processing_status == "ended" else "pending",
            word=batch.processing_status, succeeded=counts.succeeded,
            failed=counts.errored + counts.canceled + counts.expired, pending=counts.processing,
            created_at=batch.created_at.timestamp(), ended_at=batch.ended_at.timestamp() if batch.ended_at else None,
            raw=batch)

    async def batch_results(self, status: BatchStatus, custom_ids: list[str]) -> dict[str, Response]:
        answers: dict[str, Response] = {}
        try:
            async for item in await self.client().messages.batches.results(status.id):
                answers[item.custom_id] = _batch_answer(item.result)
        except Exception as exc:  # noqa: BLE001
            raise self.mapped(exc) from None
        return answers

    def mapped(self, exc: BaseException) -> ProviderError:
        return stainless_error(_mapped(exc), sdk())

    async def _once(self, request: Request) -> Response:
        return _message(await self.client().messages.create(**self.params(request)))

    async def _stream(self, request: Request, clock: Clock) -> Response:
        stream = await self.client().messages.create(**self.params(request), stream=True)
        await refuse_a_page(stream)
        blocks = Blocks()
        usage = None
        details = None
        finish_reason = None
        async for event in stream:
            if event.type == "message_start":
                usage = event.message.usage
                details = getattr(usage, "output_tokens_details", None)
                clock.usage = _usage(usage, details)  # billed from here on, whatever becomes of the stream
            elif event.type == "content_block_start":
                blocks.start(event.content_block)
            elif event.type == "content_block_delta":
                piece = blocks.delta(event.delta)
                if piece:  # answer text or the answer tool's JSON: thinking is not the answer's first token
                    clock.text_arrived(piece)
            elif event.type == "message_delta":
                finish_reason = event.delta.stop_reason
                if usage is not None:
                    # message_delta's counts are cumulative; input counts appear there only when they changed
                    changed = {k: v for k, v in event.usage.model_dump().items()
                               if k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                        "cache_creation_input_tokens") and v is not None}
                    usage = usage.model_copy(update=changed)
                    details = getattr(event.usage, "output_tokens_details", None) or details
                    clock.usage = _usage(usage, details)
        if usage is None or finish_reason is None:
            raise ProviderError("the stream ended before message_start or a stop reason", "malformed", retryable=True)
        return blocks.response(usage, details, finish_reason)


class Blocks:
    """A message's content blocks as they arrive (or as a whole message has them): the thinking, kept apart,
    the answer's text, the input of the answer tool, and the calls of the tools offered (a streamed block's
    pieces follow its start). Each block keeps what the API needs sent back in a tool loop: a thinking block's
    signature, a redacted one's data, a tool call's id and name."""

    def __init__(self) -> None:
        self.blocks: list[dict] = []  # {"type", "parts": [its text: thinking, text or the tool's JSON], ...}

    def start(self, block) -> None:
        entry: dict[str, Any] = {"type": block.type, "parts": []}
        if block.type == "thinking":
            entry["parts"].append(block.thinking or "")
            entry["signature"] = getattr(block, "signature", "") or ""
        elif block.type == "text":
            entry["parts"].append(block.text or "")
        elif block.type == "tool_use":  # a whole message's input; a streamed one's comes as deltas
            entry.update(id=block.id, name=block.name)
            entry["parts"].append(json.dumps(block.input, ensure_ascii=False) if block.input else "")
        elif block.type == "redacted_thinking":
            entry["data"] = getattr(block, "data", "")
        self.blocks.append(entry)

    def delta(self, delta) -> str:
        """Record a streamed piece; returns it when it is part of the answer (text or the answer tool's JSON)."""
        if not self.blocks:
            return ""
        block = self.blocks[-1]
        if delta.type == "signature_delta":
            block["signature"] = block.get("signature", "") + delta.signature
            return ""
        piece = {"thinking_delta": "thinking", "text_delta": "text", "input_json_delta": "partial_json"}.get(delta.type)
        if piece is None:
            return ""  # citations_delta
        text = getattr(delta, piece)
        block["parts"].append(text)
        if delta.type == "thinking_delta" or (block["type"] == "tool_use" and block.get("name") != JSON_TOOL):
            return ""  # thinking, or a tool call's arguments: not the answer's text
        return text

    def joined(self, *kinds: str) -> list[str]:
        return ["".join(block["parts"]) for block in self.blocks if block["type"] in kinds]

    def response(self, usage, details, finish_reason: str | None) -> Response:
        answer_tool = ["".join(b["parts"]) for b in self.blocks if b["type"] == "tool_use" and b["name"] == JSON_TOOL]
        answer = _tool_text(answer_tool[0]) if answer_tool else "".join(self.joined("text"))
        calls = [tool_call(b["id"], b["name"], "".join(b["parts"]))
                 for b in self.blocks if b["type"] == "tool_use" and b["name"] != JSON_TOOL]
        thought = bool(self.joined("thinking", "redacted_thinking"))  # its text may be omitted or redacted
        replay = {"wire": WIRE, "content": self.wire(calls)} if calls else None
        visible = answer + "".join(self.joined("tool_use"))  # what is not thinking: the text and the calls' input
        return Response(text=answer, reasoning="\n\n".join(t for t in self.joined("thinking") if t),
                        usage=_usage(usage, details, thought, visible), finish_reason=finish_reason,
                        tool_calls=calls, replay=replay)

    def wire(self, calls: list[dict]) -> list[dict]:
        """The blocks as the next request must send them back: thinking with its signature first, as it came."""
        inputs = iter(calls)
        sent = []
        for block in self.blocks:
            if block["type"] == "thinking":
                sent.append({"type": "thinking", "thinking": "".join(block["parts"]), "signature": block["signature"]})
            elif block["type"] == "redacted_thinking":
                sent.append({"type": "redacted_thinking", "data": block["data"]})
            elif block["type"] == "text" and "".join(block["parts"]):
                sent.append({"type": "text", "text": "".join(block["parts"])})
            elif block["type"] == "tool_use" and block["name"] != JSON_TOOL:
                call = next(inputs)
                arguments = call["arguments"] if isinstance(call["arguments"], dict) else {}
                sent.append({"type": "tool_use", "id": call["id"], "name": call["name"], "input": arguments})
        return sent


def wire_messages(messages: list[dict]) -> list[dict]:
    """The conversation (its system prompt aside) as the Messages API takes it: an assistant turn that called
    tools as the content blocks it came with (or, from elsewhere, its text and tool_use blocks), and each run of
    tool results as one user message of tool_result blocks."""
    sent: list[dict] = []
    for m in messages:
        if m["role"] == "system":
            continue
        if m["role"] == "tool":
            block = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]}
            if m.get("is_error"):
                block["is_error"] = True
            if sent and sent[-1]["role"] == "user" and isinstance(sent[-1]["content"], list) \
                    and all(b["type"] == "tool_result" for b in sent[-1]["content"]):
                sent[-1]["content"].append(block)
            else:
                sent.append({"role": "user", "content": [block]})
        elif m["role"] == "assistant" and (m.get("replay") or {}).get("wire") == WIRE:
            sent.append({"role": "assistant", "content": m["replay"]["content"]})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            content = [{"type": "text", "text": m["content"]}] if m.get("content") else []
            content += [{"type": "tool_use", "id": c["id"], "name": c["name"],
                         "input": c["arguments"] if isinstance(c["arguments"], dict) else {}} for c in m["tool_calls"]]
            sent.append({"role": "assistant", "content": content})
        else:
            sent.append({"role": m["role"], "content": content_blocks(m["content"])})
    return sent


def _tool_text(partial_json: str) -> str:
    """The answer tool's input as compact JSON text (as the model sent it when it is not JSON)."""
    try:
        return json.dumps(json.loads(partial_json), ensure_ascii=False) if partial_json.strip() else "{}"
    except json.JSONDecodeError:
        return partial_json


def content_blocks(content):
    """A message's content as the Messages API takes it: plain text as it is; with images, content blocks,
    each image an `image` block with its bytes in base64."""
    if not isinstance(content, list):
        return content
    return [{"type": "image", "source": {"type": "base64", "media_type": part["media_type"], "data": part["data"]}}
            if is_image(part) else {"type": "text", "text": part["text"]} for part in content]


def closed(schema: dict) -> bool:
    """Whether structured outputs can take `schema`: every object in it can be closed (additionalProperties
    false, as the API demands). An object with no properties and no `additionalProperties: false` is any
    object, which a closed schema cannot say; one allowing other properties cannot be closed either."""
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        extra = schema.get("additionalProperties")
        if extra is not None and extra is not False:
            return False
        if "properties" not in schema and extra is not False:
            return False
    children = [*(schema.get("properties") or {}).values(), *(schema.get("$defs") or {}).values()]
    children += [schema["items"]] if isinstance(schema.get("items"), dict) else []
    children += [s for key in ("anyOf", "allOf", "oneOf") for s in schema.get(key) or []]
    return all(closed(child) for child in children)


def json_object_in(text: str) -> str:
    """The JSON object in an answer that was asked for one in words only (a thinking call): the text as it
    is when it parses, else the first object found in it (the model's code fence or words around it
    dropped); the text unchanged when there is none (the caller says it is not JSON)."""
    stripped = text.strip()
    try:
        json.loads(stripped)
        return stripped
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    start = stripped.find("{")
    while start != -1:
        try:
            found, end = decoder.raw_decode(stripped, start)
        except json.JSONDecodeError:
            start = stripped.find("{", start + 1)
            continue
        if isinstance(found, dict):
            return stripped[start:end]
        start = stripped.find("{", end)
    return text


def _message(message) -> Response:
    """A whole Message as a Response."""
    if isinstance(message, str):  # the SDK hands back a body that is not JSON as it came
        raise not_the_api(message) or ProviderError("the response is not JSON", "malformed", retryable=True)
    blocks = Blocks()
    for block in message.content:
        blocks.start(block)
    return blocks.response(message.usage, getattr(message.usage, "output_tokens_details", None),
                           message.stop_reason)


def _batch_answer(result) -> Response:
    """One request's result in a Message Batch: succeeded, errored, canceled or expired."""
    if result.type == "succeeded":
        return _message(result.message)
    if result.type == "expired":
        return Response(error="the batch expired before answering this request", error_kind=BATCH_EXPIRED)
    if result.type == "canceled":
        return Response(error="the batch was canceled before answering this request", error_kind="batch_failed")
    error = getattr(result.error, "error", None)
    reason = f"{getattr(error, 'type', 'error')}: {getattr(error, 'message', '') or 'no reason given'}"
    return error_response(ProviderError(f"the batch failed this request ({reason})", "batch_failed"))


def _usage(usage, details=None, thought: bool = False, answer: str = "") -> Usage:
    """The runner's convention: input_tokens counts all input, cache reads and cache writes included;
    output_tokens every output token billed, thinking included (as the API counts them), and of them
    reasoning_tokens the thinking: the API's own count, else an estimate when the model thought."""
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    thinking, source = None, "provider"
    if details is not None and getattr(details, "thinking_tokens", None) is not None:
        thinking = details.thinking_tokens
    elif thought:  # the billed output less the answer: the thinking text is a summary, shorter than billed
        thinking, source = max(0, usage.output_tokens - tokens.estimate(answer)), "estimate"
    return Usage(input_tokens=usage.input_tokens + cache_read + cache_write, output_tokens=usage.output_tokens,
                 cached_tokens=cache_read, source="provider", reasoning_tokens=thinking, reasoning_source=source)


def _mapped(exc: BaseException) -> BaseException:
    """Anthropic's status errors, with the API's own message; errors sent inside a stream, as retryable."""
    if not isinstance(exc, sdk().APIStatusError):
        return exc
    if exc.status_code < 400:
        # an `event: error` in a 200 stream (overloaded_error, api_error): the SDK raises it with status 200
        message = exc.api_message or exc.message
        return ProviderError(f"provider error in stream: {exc.type or 'error'}: {message}", "stream", retryable=True)
    message = server_message(status_error_body(exc)) or exc.api_message or exc.message
    return error_for_status(exc.status_code, message, retry_after(exc.response.headers))
