"""Local models served by Ollama, through the `ollama` package (as the course ran Llama 3.2).

The host is `model.base_url`, else OLLAMA_HOST, else Ollama's default (127.0.0.1:11434). No key, unless
`model.api_key_env` names one (Ollama behind an authenticating proxy, or ollama.com): it goes out as a
Bearer token. Usage comes from the final line of the answer (`prompt_eval_count`, `eval_count`). The
`ollama` package has no retries of its own. A model that is not pulled answers 404; the error row says
how to pull it.
"""
from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from runner.calls import Request, Response, Usage
from runner.providers.base import Clock, ProviderError, SDKProvider, error_for_status, not_the_api, refused_error
from runner.providers.connections import check_endpoint, checked_client

if TYPE_CHECKING:
    import ollama

DEFAULT_PORT = 11434  # Ollama's, when OLLAMA_HOST or model.base_url names none


class OllamaProvider(SDKProvider):
    free = True
    endpoint_env = "OLLAMA_HOST"
    loggers = ("ollama", "httpx", "httpcore")

    def new_client(self) -> ollama.AsyncClient:
        key = self.api_key()
        # host None: the package reads OLLAMA_HOST, then its default
        return _client_class()(host=self.model.base_url or None, timeout=self.model.timeout_s,
                               headers={"Authorization": f"Bearer {key}"} if key else None)

    def check_endpoint(self) -> None:
        """OLLAMA_HOST also takes a bare host or host:port (Ollama's client reads it its own way): its host is
        checked as model.base_url's is."""
        where = "model.base_url" if self.model.base_url else "OLLAMA_HOST"
        host = self.model.base_url or os.environ.get("OLLAMA_HOST") or ""
        url = host if "://" in host else f"http://{host}"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return  # not a host the package can read: its first call says so
        if parts.hostname:
            check_endpoint(urlunsplit((parts.scheme, parts.netloc if port else f"{parts.netloc}:{DEFAULT_PORT}",
                                       "", "", "")), where)

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
        refused = refused_error(exc)
        if refused is not None:
            return refused
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


@functools.cache
def _client_class() -> type:
    """ollama.AsyncClient over an httpx client that connects only to addresses the runner allows (at every
    redirect too). Imported at the first call: preflight and cached runs do not need the package."""
    import httpx
    import ollama

    class CheckedAsyncClient(ollama.AsyncClient):
        def __init__(self, host: str | None = None, **kwargs) -> None:
            # ollama.AsyncClient.__init__ only names httpx.AsyncClient as the class its base builds
            super(ollama.AsyncClient, self).__init__(checked_client(httpx.AsyncClient), host, **kwargs)

    return CheckedAsyncClient


def _usage(final) -> Usage:
    return Usage(input_tokens=final.prompt_eval_count, output_tokens=final.eval_count, cached_tokens=0,
                 source="provider")
