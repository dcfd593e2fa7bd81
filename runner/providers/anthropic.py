"""Anthropic's Messages API through the official `anthropic` SDK.

The Messages API keeps the system prompt apart from the messages and requires `max_tokens`. The SDK
(2.13) has no `temperature` argument any more, so it goes in the request body through `extra_body`.
Streaming reads input usage from `message_start` and the cumulative output from `message_delta`.
JSON mode prefills the answer with "{" (the Request carries no schema for structured outputs); models
that refuse prefill (Claude 4.6 and later) answer 400, which becomes an error row saying so.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from runner.calls import Request, Response, Usage
from runner.providers.base import (
    STRICT_ENV,
    Clock,
    ProviderError,
    SDKProvider,
    error_for_status,
    not_the_api,
    refuse_a_page,
    retry_after,
    stainless_error,
    status_error_body,
)
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

    def new_client(self) -> anthropic.AsyncAnthropic:
        return sdk().AsyncAnthropic(
            api_key=self.api_key(),
            base_url=self.endpoint() or None,  # None: the SDK's default, api.anthropic.com
            max_retries=0,  # the runner has one retry policy for every provider
            timeout=self.model.timeout_s,
            _strict_response_validation=os.environ.get(STRICT_ENV) == "1",
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
        response = await super().generate(request)
        if request.json_mode and response.ok and response.text.strip():
            # the prefill is part of the answer; alone it is no answer (the engine says the answer is empty)
            response.text = JSON_PREFILL + response.text
        return response

    def mapped(self, exc: BaseException) -> ProviderError:
        return stainless_error(_mapped(exc), sdk())

    async def _once(self, request: Request) -> Response:
        message = await self.client().messages.create(**self.params(request))
        if isinstance(message, str):  # the SDK hands back a body that is not JSON as it came
            raise not_the_api(message) or ProviderError("the response is not JSON", "malformed", retryable=True)
        text = "".join(block.text for block in message.content if block.type == "text")
        return Response(text=text, usage=_usage(message.usage), finish_reason=message.stop_reason)

    async def _stream(self, request: Request, clock: Clock) -> Response:
        stream = await self.client().messages.create(**self.params(request), stream=True)
        await refuse_a_page(stream)
        parts: list[str] = []
        usage = None
        finish_reason = None
        async for event in stream:
            if event.type == "message_start":
                usage = event.message.usage
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
        if usage is None or finish_reason is None:
            raise ProviderError("the stream ended before message_start or a stop reason", "malformed", retryable=True)
        return Response(text="".join(parts), usage=_usage(usage), finish_reason=finish_reason)


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
