"""Gemini through google-generativeai, the SDK the course used: `model.sdk=generativeai`.

Support for that SDK has ended upstream; google-genai (`runner.providers.gemini`) is the default. It is
an optional extra (`pip install 'runner[generativeai]'`), imported only when a model selects it. It runs
over REST: its gRPC default cannot reach an http:// endpoint, and its async call is broken over REST,
so the sync call runs in a worker thread. Over REST it streams one JSON array, which the SDK parses;
it drops an error object inside that array, so such a stream ends as "no finish reason" (retryable).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import threading
import warnings

from runner.providers.base import Clock, Provider, ProviderError, Request, Response, error_response, key_from_env
from runner.providers.gemini import (KEY_ENV, Chunks, answer, base_url, counted, split_messages,
                                     status_error)
from runner.settings import ConfigError

log = logging.getLogger(__name__)


@functools.cache
def sdk():
    """The google-generativeai modules, imported once; its end-of-support FutureWarnings become one log line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import google.ai.generativelanguage as glm
            import google.generativeai as genai
            from google.api_core import client_options, exceptions
    except ImportError:
        raise ConfigError("model.sdk=generativeai needs google-generativeai: "
                          "pip install 'runner[generativeai]' (or drop model.sdk to use google-genai)") from None
    log.warning("google-generativeai has reached end of support upstream; it is used because model.sdk="
                "generativeai (without it, runner uses google-genai)")
    return genai, glm, client_options, exceptions


def _mapped(exc: Exception) -> ProviderError:
    import requests

    _, _, _, exceptions = sdk()
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, exceptions.GoogleAPICallError):
        response = getattr(exc, "response", None)
        return status_error(exc.code, exc.message, exc.details, getattr(response, "headers", None))
    if isinstance(exc, (requests.Timeout, exceptions.DeadlineExceeded, TimeoutError)):
        return ProviderError("timed out waiting for the provider", "timeout", retryable=True)
    if isinstance(exc, (requests.ConnectionError, OSError)):
        return ProviderError(f"connection failed: {type(exc).__name__}: {exc}", "connection", retryable=True)
    return ProviderError(f"{type(exc).__name__}: {exc}", "malformed", retryable=True)


class GenerativeAIProvider(Provider):
    key_env = KEY_ENV

    def __init__(self, model) -> None:
        super().__init__(model)
        sdk()  # a missing extra is a config error, reported before any call
        self._client = None
        self._client_lock = threading.Lock()  # calls run in worker threads

    def check_key(self) -> None:
        key_from_env(self.key_env, "gemini")

    def client(self):
        """This model's own REST client. genai.configure() would set one client for the whole process."""
        with self._client_lock:
            if self._client is None:
                _, glm, client_options, _ = sdk()
                options = client_options.ClientOptions(api_key=key_from_env(self.key_env, "gemini"))
                if base_url(self.model):
                    options.api_endpoint = base_url(self.model)
                self._client = glm.GenerativeServiceClient(transport="rest", client_options=options)
                # google-auth's session re-sends a request answered 401 twice, "refreshing" an API key
                # that cannot change; a rejected key is sent once (the SDK is frozen, so this stays put)
                self._client.transport._session._refresh_status_codes = ()
            return self._client

    async def generate(self, request: Request) -> Response:
        return await asyncio.to_thread(self._generate, request)

    def _generate(self, request: Request) -> Response:
        genai = sdk()[0]
        clock = Clock()
        system, contents = split_messages(request.messages)
        model = genai.GenerativeModel(
            self.model.id, system_instruction=system,
            generation_config=genai.GenerationConfig(
                temperature=request.temperature, max_output_tokens=request.max_tokens,
                response_mime_type="application/json" if request.json_mode else None))
        # GenerativeModel has no client argument; without this it would take the process-wide default one
        model._client = self.client()
        # retry=None: the SDK's own retries (503 by default) are off; the runner has one retry policy
        options = {"timeout": self.model.timeout_s, "retry": None}
        contents = [{"role": c["role"], "parts": [p["text"] for p in c["parts"]]} for c in contents]
        try:
            if self.model.stream:
                chunks = Chunks(clock)
                for chunk in model.generate_content(contents, stream=True, request_options=options):
                    chunks.add(chunk)
                response = chunks.response()
            else:
                response = answer(model.generate_content(contents, request_options=options))
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a row, never a crash
            response = error_response(_mapped(exc))
        return clock.finish(counted(response, request, self.model), streamed=self.model.stream)
