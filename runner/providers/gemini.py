"""Gemini through google-genai, Google's maintained SDK (async API; streamed unless model.stream=false).

The conversion from chat messages to Gemini's shape (system instruction apart, assistant turns as role
"model"), the reading of usage and finish reasons, and the mapping of Google's errors are shared with
the google-generativeai provider (`runner.providers.gemini_generativeai`, chosen by model.sdk).
Batch runs (`model.batch=true`) use Gemini's batch mode: `batches.create` with inline requests (each
carrying its custom id as metadata), `batches.get` to poll, the answers inline in the finished job.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from runner.calls import Request, Response, Usage
from runner.providers.base import (
    BatchStatus,
    Clock,
    ProviderError,
    SDKProvider,
    error_for_status,
    error_response,
    not_the_api,
    retry_after,
)
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


def split_messages(messages: list[dict]) -> tuple[str | None, list[dict]]:
    """(system instruction, contents): Gemini takes the system prompt apart and calls the assistant "model"."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    contents = [{"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
                for m in messages if m["role"] != "system"]
    return system, contents


def finish_reason(value) -> str | None:
    """A candidate's finish reason (an enum of either SDK) as a lower-case word; None while unfinished."""
    name = getattr(value, "name", value)
    if not name or name == "FINISH_REASON_UNSPECIFIED":
        return None
    return FINISH_REASONS.get(name, str(name).lower())


def usage_from(metadata) -> Usage:
    """usageMetadata of either SDK. Thinking tokens are billed as output, so they count as output here."""
    if metadata is None or not metadata.prompt_token_count:
        return Usage(input_tokens=None)
    thoughts = getattr(metadata, "thoughts_token_count", None) or 0  # absent from google-generativeai's protos
    return Usage(input_tokens=metadata.prompt_token_count,
                 output_tokens=(metadata.candidates_token_count or 0) + thoughts,
                 cached_tokens=metadata.cached_content_token_count or 0, source="provider")


def candidate_text(candidate) -> str:
    """The answer's text parts, without thought summaries."""
    content = candidate.content
    if content is None or not content.parts:
        return ""
    return "".join(part.text for part in content.parts if part.text and not getattr(part, "thought", False))


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
    if isinstance(exc, errors.APIError):
        response = getattr(exc, "response", None)
        # a body in Google's shape has a message; another (a proxy's) only details: the parsed body
        message = exc.message or server_message(exc.details) or str(exc)
        return status_error(exc.code, message, exc.details, getattr(response, "headers", None))
    if unreadable(exc) is not None:
        return unreadable(exc)
    if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):
        return ProviderError("timed out waiting for the provider", "timeout", retryable=True)
    if isinstance(exc, (httpx2.TransportError, OSError)):
        return ProviderError(f"connection failed: {type(exc).__name__}: {exc}", "connection", retryable=True)
    return ProviderError(f"{type(exc).__name__}: {exc}", "malformed", retryable=True)


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

    def new_client(self) -> genai.Client:
        # imported at the first call: preflight and cached runs do not need google-genai
        from google import genai
        from google.genai import types

        return genai.Client(
            api_key=self.api_key(),
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=self.endpoint() or None, api_version=API_VERSION,
                timeout=int(self.model.timeout_s * 1000),  # milliseconds in google-genai
                # one attempt, and no implicit reconnects either: the runner has one retry policy
                retry_options=types.HttpRetryOptions(attempts=1)),
        )

    async def prepare(self) -> None:
        await super().prepare()
        from google.genai import types

        # pydantic builds google-genai's request and answer types at first use: 0.3 s of the first call
        self._params(Request([{"role": "user", "content": "-"}], 0.0, 1))
        types.GenerateContentResponse.model_validate(SAMPLE_ANSWER)

    def config(self, system: str | None, request: Request) -> types.GenerateContentConfig:
        from google.genai import types

        return types.GenerateContentConfig(
            system_instruction=system, temperature=request.temperature, max_output_tokens=request.max_tokens,
            response_mime_type="application/json" if request.json_mode else None)

    def _params(self, request: Request) -> dict:
        system, contents = split_messages(request.messages)
        return dict(model=self.model.id, contents=contents, config=self.config(system, request))

    async def _once(self, request: Request) -> Response:
        return answer(await self.client().aio.models.generate_content(**self._params(request)))

    async def _stream(self, request: Request, clock: Clock) -> Response:
        chunks = Chunks(clock)
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
        if request.json_mode:
            config["response_mime_type"] = "application/json"
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
                answers[key] = answer(item.response)
            except ProviderError as exc:
                answers[key] = error_response(exc)
        return answers

    async def close_client(self, client: genai.Client) -> None:
        await client.aio.aclose()
        client.close()


def answer(result) -> Response:
    """A whole (non-streamed) GenerateContentResponse of either SDK as a Response."""
    chunks = Chunks(None)
    chunks.add(result)
    return chunks.response()


class Chunks:
    """Collects a stream's chunks: text as it arrives, the finish reason, and the last chunk's usage."""

    def __init__(self, clock: Clock | None) -> None:
        self.clock = clock
        self.parts: list[str] = []
        self.finish: str | None = None
        self.usage = Usage(input_tokens=None)
        self.blocked: str | None = None

    def add(self, chunk) -> None:
        if chunk.usage_metadata is not None:
            self.usage = usage_from(chunk.usage_metadata)
            if self.clock is not None:  # a stream that breaks after this was billed for it
                self.clock.usage = self.usage
        feedback = getattr(chunk, "prompt_feedback", None)
        block_reason = getattr(feedback, "block_reason", None)
        if block_reason:
            self.blocked = getattr(block_reason, "name", str(block_reason))
        for candidate in chunk.candidates or ():
            text = candidate_text(candidate)
            if text:
                if self.clock is not None:
                    self.clock.text_arrived(text)
                self.parts.append(text)
            self.finish = finish_reason(candidate.finish_reason) or self.finish

    def response(self) -> Response:
        if self.blocked:
            raise ProviderError(f"the prompt was blocked ({self.blocked})", "blocked")
        if self.finish is None:
            raise ProviderError("the response ended before a finish reason", "malformed", retryable=True)
        return Response(text="".join(self.parts), usage=self.usage, finish_reason=self.finish)
