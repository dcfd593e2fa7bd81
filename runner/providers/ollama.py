"""Local models served by Ollama, through the `ollama` package (as the course ran Llama 3.2).

The host is `model.base_url`, else OLLAMA_HOST, else Ollama's default (127.0.0.1:11434). No key, unless
`model.api_key_env` names one (Ollama behind an authenticating proxy, or ollama.com): it goes out as a
Bearer token. Usage comes from the final line of the answer (`prompt_eval_count`, `eval_count`). The
`ollama` package has no retries of its own. A model that is not pulled answers 404; the error row says
how to pull it.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from runner.calls import Request, Response, Usage
from runner.providers.base import Clock, ProviderError, SDKProvider, error_for_status, not_the_api

if TYPE_CHECKING:
    import ollama


class OllamaProvider(SDKProvider):
    free = True
    endpoint_env = "OLLAMA_HOST"
    loggers = ("ollama", "httpx", "httpcore")

    def new_client(self) -> ollama.AsyncClient:
        import ollama  # at the first call: preflight and cached runs do not need it

        key = self.api_key()
        # host None: the package reads OLLAMA_HOST, then its default
        return ollama.AsyncClient(host=self.model.base_url or None, timeout=self.model.timeout_s,
                                  headers={"Authorization": f"Bearer {key}"} if key else None)

    def check_endpoint(self) -> None:
        """OLLAMA_HOST also takes a bare host or host:port: Ollama's client reads it its own way."""

    def params(self, request: Request) -> dict:
        params = {
            "model": self.model.id,
            "messages": request.messages,
            "options": {"temperature": request.temperature, "num_predict": request.max_tokens},
        }
        if request.json_mode:
            params["format"] = "json"
        if request.seed is not None:
            params["options"]["seed"] = request.seed
        return params

    async def _once(self, request: Request) -> Response:
        answer = await self.client().chat(**self.params(request), stream=False)
        return Response(text=answer.message.content or "", usage=_usage(answer), finish_reason=answer.done_reason)

    async def _stream(self, request: Request, clock: Clock) -> Response:
        parts: list[str] = []
        last = None
        async for part in await self.client().chat(**self.params(request), stream=True):
            if part.message.content:
                clock.text_arrived(part.message.content)
                parts.append(part.message.content)
            last = part
        if last is None or not last.done:
            raise ProviderError("the stream ended before its final line (done=true)", "malformed", retryable=True)
        return Response(text="".join(parts), usage=_usage(last), finish_reason=last.done_reason)

    def mapped(self, exc: BaseException) -> ProviderError:
        import httpx
        import ollama

        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, json.JSONDecodeError):  # the package parses whatever came back as JSON
            return not_the_api(exc.doc) or ProviderError(f"malformed response: {exc}", "malformed", retryable=True)
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404 and "not found" in str(exc.error):
                return ProviderError(f"HTTP 404: model {self.model.id} is not pulled here: run `ollama pull "
                                     f"{self.model.id}` ({exc.error})", "not_found", 404)
            if exc.status_code == -1:  # an error line inside the stream carries no status
                return ProviderError(f"provider error in stream: {exc.error}", "stream", retryable=True)
            return error_for_status(exc.status_code, exc.error)
        if isinstance(exc, ConnectionError):  # the package's "Failed to connect to Ollama" (refused)
            return ProviderError(f"connection failed: {exc}", "connection", retryable=True)
        if isinstance(exc, httpx.TimeoutException):  # the package does not wrap httpx's other errors
            return ProviderError("timed out waiting for Ollama", "timeout", retryable=True)
        if isinstance(exc, httpx.TransportError):
            return ProviderError(f"connection failed: {type(exc).__name__}: {exc}", "connection", retryable=True)
        return ProviderError(f"{type(exc).__name__}: {exc}", "malformed", retryable=True)


def _usage(final) -> Usage:
    return Usage(input_tokens=final.prompt_eval_count, output_tokens=final.eval_count, cached_tokens=0,
                 source="provider")
