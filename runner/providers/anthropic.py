"""Anthropic's Messages API through the official `anthropic` SDK.

The Messages API keeps the system prompt apart from the messages and requires `max_tokens`. The SDK
(2.13) has no `temperature` argument any more, so it goes in the request body through `extra_body`.
Streaming reads input usage from `message_start` and the cumulative output from `message_delta`.
JSON mode prefills the answer with "{" (the Request carries no schema for structured outputs); models
that refuse prefill (Claude 4.6 and later) answer 400, which becomes an error row saying so.
Batch runs (`model.batch=true`) use Message Batches: `messages.batches.create` with the same params,
`retrieve` to poll, and `results` (the batch's results_url, JSONL) for the answers.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from runner.calls import Request, Response, Usage
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
    retry_after,
    stainless_error,
    status_error_body,
)
from runner.providers.connections import checked_client
from runner.providers.reasons import server_message

if TYPE_CHECKING:
    import anthropic

JSON_PREFILL = "{"


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

    def params(self, request: Request) -> dict:
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        messages = [{"role": m["role"], "content": m["content"]} for m in request.messages if m["role"] != "system"]
        if request.json_mode:
            messages.append({"role": "assistant", "content": JSON_PREFILL})
        params = {
            "model": self.model.id,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "extra_body": {"temperature": request.temperature},
        }
        if system:
            params["system"] = system
        return params

    async def generate(self, request: Request) -> Response:
        return self.batch_answer(request, await super().generate(request))

    def batch_answer(self, request: Request, response: Response) -> Response:
        if request.json_mode and response.ok and response.text.strip():
            # the prefill is part of the answer; alone it is no answer (the engine says the answer is empty)
            response.text = JSON_PREFILL + response.text
        return response

    def batch_entry(self, custom_id: str, request: Request) -> dict:
        params = self.params(request)
        params.update(params.pop("extra_body"))  # a batch's params are plain JSON: temperature goes in directly
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
        parts: list[str] = []
        usage = None
        finish_reason = None
        async for event in stream:
            if event.type == "message_start":
                usage = event.message.usage
                clock.usage = _usage(usage)
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                clock.text_arrived(event.delta.text)
                parts.append(event.delta.text)
            elif event.type == "message_delta":
                finish_reason = event.delta.stop_reason
                if usage is not None:
                    # message_delta's counts are cumulative; input counts appear there only when they changed
                    changed = {k: v for k, v in event.usage.model_dump().items()
                               if k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                        "cache_creation_input_tokens") and v is not None}
                    usage = usage.model_copy(update=changed)
                    clock.usage = _usage(usage)
        if usage is None or finish_reason is None:
            raise ProviderError("the stream ended before message_start or a stop reason", "malformed", retryable=True)
        return Response(text="".join(parts), usage=_usage(usage), finish_reason=finish_reason)


def _message(message) -> Response:
    """A whole Message as a Response."""
    if isinstance(message, str):  # the SDK hands back a body that is not JSON as it came
        raise not_the_api(message) or ProviderError("the response is not JSON", "malformed", retryable=True)
    text = "".join(block.text for block in message.content if block.type == "text")
    return Response(text=text, usage=_usage(message.usage), finish_reason=message.stop_reason)


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


def _usage(usage) -> Usage:
    """The runner's convention: input_tokens counts all input, cache reads and cache writes included."""
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    return Usage(input_tokens=usage.input_tokens + cache_read + cache_write, output_tokens=usage.output_tokens,
                 cached_tokens=cache_read, source="provider")


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
