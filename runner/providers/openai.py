"""OpenAI Chat Completions through the official `openai` SDK, and any OpenAI-compatible endpoint.

Streaming asks for usage in the last chunk (`stream_options.include_usage`); servers that ignore it
(llama.cpp's, some proxies) leave the counts to `runner.tokens`, and `tokens_source` says so.
Batch runs (`model.batch=true`) upload the requests as one JSONL file (`files.create`, purpose batch),
create the batch (`batches.create`), poll it (`batches.retrieve`) and read its output and error files.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from runner.calls import Request, Response, Usage
from runner.errors import ConfigError
from runner.providers import priced_as
from runner.providers.base import (
    BATCH_EXPIRED,
    STRICT_ENV,
    BatchStatus,
    Clock,
    ProviderError,
    SDKProvider,
    error_for_status,
    error_response,
    not_the_api,
    refuse_a_page,
    stainless_error,
)
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
    #: where the SDK sends calls when neither model.base_url nor endpoint_env says (None: the SDK's default)
    default_base_url: str | None = None
    #: OpenAI's Batch API: at most 50,000 requests and a 200 MB input file per batch
    batch_limits = (50_000, 200 * 1024 * 1024)
    batch_endpoint = "/v1/chat/completions"

    def new_client(self) -> openai.AsyncOpenAI:
        return sdk().AsyncOpenAI(
            api_key=self.api_key(),
            base_url=self.endpoint() or self.default_base_url,  # None: the SDK's default, api.openai.com
            max_retries=0,  # the runner has one retry policy for every provider
            timeout=self.model.timeout_s,
            _strict_response_validation=os.environ.get(STRICT_ENV) == "1",
        )

    async def prepare(self) -> None:
        await super().prepare()
        self.client().chat.completions  # noqa: B018 - the SDK imports its resources at first use: 0.3 s of the first call

    def params(self, request: Request) -> dict:
        params = {
            "model": self.model.id,
            "messages": request.messages,
            "temperature": request.temperature,
            self.max_tokens_field: request.max_tokens,
        }
        if request.json_mode:
            params["response_format"] = {"type": "json_object"}
        return params

    def mapped(self, exc: BaseException) -> ProviderError:
        return stainless_error(exc, sdk())

    async def _once(self, request: Request) -> Response:
        return _completion(await self.client().chat.completions.create(**self.params(request)))

    def batch_entry(self, custom_id: str, request: Request) -> dict:
        return {"custom_id": custom_id, "method": "POST", "url": self.batch_endpoint, "body": self.params(request)}

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
        finish_reason = None
        usage = Usage()
        async for chunk in stream:
            if chunk.usage is not None:
                usage = clock.usage = _usage(chunk.usage)
            for choice in chunk.choices:
                if choice.delta is not None and choice.delta.content:
                    clock.text_arrived(choice.delta.content)
                    parts.append(choice.delta.content)
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
        if finish_reason is None:
            raise ProviderError("the stream ended before a finish reason", "malformed", retryable=True)
        return Response(text="".join(parts), usage=usage, finish_reason=finish_reason)


class OpenAICompatibleProvider(OpenAIProvider):
    """Any server that speaks Chat Completions: `model.base_url` plus `model.api_key_env`.

    Local servers (llama.cpp, vLLM, LM Studio) need no key: without `api_key_env` a placeholder is sent.
    """

    max_tokens_field = "max_tokens"
    key_env = ()  # a key only when model.api_key_env names its variable
    key_prefix = key_owner = own_host = price_provider = None  # the endpoint's, from model.price_provider

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

    def api_key(self) -> str:
        # local servers take no key, but the SDK insists on one
        return super().api_key() or "not-needed"


def _completion(completion) -> Response:
    """A whole (non-streamed) chat completion as a Response."""
    if isinstance(completion, str):  # the SDK hands back a body that is not JSON as it came
        raise not_the_api(completion) or ProviderError("the response is not JSON", "malformed", retryable=True)
    if not completion.choices:
        raise ProviderError("the response has no choices", "malformed", retryable=True)
    choice = completion.choices[0]
    return Response(text=choice.message.content or "", usage=_usage(completion.usage),
                    finish_reason=choice.finish_reason)


def _usage(usage) -> Usage:
    if usage is None:
        return Usage()  # no counts: runner.tokens counts them
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=(getattr(details, "cached_tokens", None) or 0) if details is not None else 0,
        source="provider",
    )
