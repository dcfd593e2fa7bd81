"""The provider interface: one async call in, one plain `Response` out.

A provider module wraps one SDK. It turns a `Request` into that SDK's call (streamed or not), and the
SDK's answer or exception into a `Response`. Nothing after this point knows which SDK produced it.
Providers never retry (the SDKs' own retries are turned off); the engine owns the one retry policy
and reads `Response.retryable` / `Response.retry_after_s` to apply it. The engine awaits `prepare()`
before a provider's first call, so importing an SDK and building its client is never timed as a call.
"""
from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

from runner.endpoints import is_own_endpoint
from runner.providers.reasons import one_line, server_message, what_came
from runner.redact import watch_url, watch_variable
from runner.settings import ModelSettings

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass(frozen=True)
class Request:
    messages: list[Message]
    temperature: float
    max_tokens: int
    json_mode: bool = False
    # called with each piece of a streamed answer as it arrives (runner.chat shows it), possibly from another
    # thread; not part of what is asked, so not of the cache key either
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


@dataclass
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    source: str = "provider"  # provider | tiktoken | estimate


@dataclass
class Response:
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    error: str | None = None  # one line; None when the call succeeded
    error_kind: str | None = None  # auth | rate_limit | server | timeout | connection | bad_request | malformed | ...
    status_code: int | None = None
    retryable: bool = False
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ProviderError(Exception):
    """An SDK failure already mapped to the runner's terms."""

    def __init__(self, message: str, kind: str, status_code: int | None = None,
                 retryable: bool = False, retry_after_s: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.status_code = status_code
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class MissingKey(Exception):
    """The provider's key is not set: the model's cells are skipped, nothing is sent."""


RETRYABLE_STATUS = {408, 409, 429} | set(range(500, 600))

# Tests set this so SDKs that can (openai, anthropic) validate every response against their types: a fake
# server that drifts from the real wire format then fails instead of passing quietly.
STRICT_ENV = "RUNNER_STRICT_SDK_VALIDATION"


def not_the_api(text: str | None) -> ProviderError | None:
    """An answer that is a web page or plain text, not the provider's JSON: the endpoint is not the API (a
    proxy's login page, a wrong port or path). None when it looks like JSON, only cut short (retryable)."""
    what = what_came(text)
    if what is None:
        return None
    return ProviderError(f"the endpoint answered with {what}, not the provider's JSON: check model.base_url",
                         "not_the_api")


def error_for_status(status: int | None, message: str, retry_after_s: float | None = None) -> ProviderError:
    """The runner's reading of an HTTP status, the same for every SDK. `message` may be the raw body."""
    message = server_message(message) or "no reason given"
    if status == 401 or status == 403:
        return ProviderError(f"HTTP {status}: key rejected ({message})", "auth", status)
    if status == 429:
        return ProviderError(f"HTTP 429: rate limited ({message})", "rate_limit", status, True, retry_after_s)
    if status is not None and status >= 500:
        return ProviderError(f"HTTP {status}: server error ({message})", "server", status, True, retry_after_s)
    if status in RETRYABLE_STATUS:
        return ProviderError(f"HTTP {status}: {message}", "transient", status, True, retry_after_s)
    if status == 404:
        return ProviderError(f"HTTP 404: not found ({message})", "not_found", status)
    return ProviderError(f"HTTP {status}: {message}", "bad_request", status)


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from Retry-After / retry-after-ms headers, if a server sent them."""
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000.0
        value = headers.get("retry-after")
        if value is not None:
            return float(value)
    except (TypeError, ValueError):
        return None
    return None


# Key prefixes that tell whose key it is; longest first. A key of unknown shape (a proxy's, a test's) passes.
KEY_OWNERS = (("sk-ant-", "anthropic"), ("AIza", "gemini"), ("sk-", "openai"))
# Variables that hold the same key: naming one in model.api_key_env accepts the others (the course's .env
# has GOOGLE_API_KEY where Google's docs now say GEMINI_API_KEY)
KEY_ALIASES = (("GEMINI_API_KEY", "GOOGLE_API_KEY"),)


def key_owner(value: str) -> str | None:
    return next((owner for prefix, owner in KEY_OWNERS if value.startswith(prefix)), None)


def _a(word: str) -> str:
    return f"a{'n' if word[:1].lower() in 'aeiou' else ''} {word}"


def key_names(api_key_env: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """The variables to read a key from: `model.api_key_env` (and its aliases) when set, else the provider's."""
    if not api_key_env:
        return default
    for aliases in KEY_ALIASES:
        if api_key_env in aliases:
            return (api_key_env, *(name for name in aliases if name != api_key_env))
    return (api_key_env,)


def key_from_env(names: tuple[str, ...], provider: str | None = None) -> str:
    """The first of these environment variables that is set, checked the way the course checked keys.

    A missing key raises MissingKey (the model's cells are skipped). A key with spaces around it, or, when
    `provider` is given, one that cannot belong to it (another provider's prefix) raises ConfigError before
    any call. The key's value never appears in a message.
    """
    from runner.settings import ConfigError

    for name in names:
        watch_variable(name)  # whatever its name, its value is now a secret the runner holds
    for name in names:
        value = os.environ.get(name)
        if not value:
            continue
        if value != value.strip():
            raise ConfigError(f"{name} has spaces, tabs or a newline around it: remove them in .env or the environment")
        owner = key_owner(value)
        if provider and owner and owner != provider:
            raise ConfigError(
                f"{name} holds what looks like {_a(owner)} key, not {_a(provider)} one: "
                f"check .env or the environment (a proxy's key is accepted when model.base_url points at the proxy)")
        return value
    raise MissingKey(f"{' or '.join(names)} is not set: put it in .env or the environment")


class Clock:
    """Latency and time to first text for one call; hands each streamed piece to the request's listener."""

    def __init__(self, on_text: Callable[[str], None] | None = None) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.on_text = on_text

    def text_arrived(self, text: str = "") -> None:
        if self.first is None:
            self.first = time.perf_counter()
        if self.on_text is not None and text:
            self.on_text(text)

    def finish(self, response: Response, streamed: bool) -> Response:
        end = time.perf_counter()
        response.latency_s = end - self.start
        if streamed and self.first is not None:
            response.ttft_s = self.first - self.start
        return response


def refuse_empty(response: Response) -> Response:
    """An answer without text is not a success: an error row that says so.

    A proxy in front of llama.cpp's server turns a stream the server cut (it drops a stream when a new
    request arrives) into a normal finish with no text: that is worth another try. An answer that spent
    every output token without text (a reasoning model at max_tokens) will only do it again.
    """
    if not response.ok or response.text.strip():
        return response
    tokens = response.usage.output_tokens
    finish = response.finish_reason or "none"
    spent = tokens and finish in ("length", "max_tokens")
    if spent:
        response.error = (f"empty answer: all {tokens} output tokens were used without any text "
                          f"(finish_reason {finish}): raise max_tokens")
    elif finish == "content_filter":
        response.error = "empty answer: stopped by the provider's content filter (finish_reason content_filter)"
    else:
        response.error = (f"empty answer (finish_reason {finish}, {tokens or 0} output tokens): the server or a "
                          f"proxy may have cut the stream")
    response.error_kind = "empty"
    response.retryable = not spent and finish != "content_filter"
    return response


class Provider(ABC):
    """One model behind one SDK. Built once per job; `generate` may run concurrently."""

    #: environment variables that may hold this provider's key, in order of preference (none: no key)
    key_env: tuple[str, ...] = ()
    #: whose keys its own API takes (KEY_OWNERS): a key of another shape is refused there, not elsewhere
    key_owner: str | None = None

    def __init__(self, model: ModelSettings) -> None:
        self.model = model
        watch_url(model.base_url)  # a password in it is a secret, in any form it may come back in

    def key_names(self) -> tuple[str, ...]:
        return key_names(self.model.api_key_env, self.key_env)

    def expected_key_owner(self) -> str | None:
        """Whose key shape to insist on: only the provider's own API; a proxy or gateway has keys of its own
        (LiteLLM's start with sk- whatever wire format it speaks)."""
        return self.key_owner if is_own_endpoint(self.model, self.key_owner) else None

    def check_key(self) -> None:
        """Raise MissingKey when no key is set; ConfigError when the key cannot be right."""
        if self.key_names():
            self.api_key()

    def api_key(self) -> str | None:
        return key_from_env(self.key_names(), self.expected_key_owner()) if self.key_names() else None

    async def prepare(self) -> None:
        """Get ready for the first call (import the SDK, build the client, load a model), outside any call's
        clock and deadline. The engine awaits it once before the first call that is not answered from the
        cache; it must be safe to await again."""

    @abstractmethod
    async def generate(self, request: Request) -> Response:
        """Make one call. Must not raise for provider failures: return a Response with `error` set."""

    async def aclose(self) -> None:
        """Release clients and models at the end of the job."""


def error_response(error: ProviderError) -> Response:
    """A failed call as a Response: one line, and what the retry policy needs to know."""
    return Response(error=one_line(str(error), 500), error_kind=error.kind, status_code=error.status_code,
                    retryable=error.retryable, retry_after_s=error.retry_after_s)


def status_error_body(exc: BaseException) -> Any:
    """The raw body of an SDK's HTTP status error (what the server said), or what the SDK kept of it."""
    response = getattr(exc, "response", None)
    try:
        text = response.text if response is not None else None
    except Exception:  # noqa: BLE001 - a streamed body that was never read
        text = None
    return text if text else getattr(exc, "body", None)


def stainless_error(exc: BaseException, sdk: Any) -> ProviderError:
    """Map an exception of a Stainless-generated SDK (openai, anthropic) onto the runner's terms."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, getattr(sdk, "APITimeoutError", ())):
        return ProviderError("timed out waiting for the provider", "timeout", retryable=True)
    if isinstance(exc, getattr(sdk, "APIConnectionError", ())):
        cause = exc.__cause__ or exc
        return ProviderError(f"connection failed: {type(cause).__name__}: {cause}", "connection", retryable=True)
    if isinstance(exc, getattr(sdk, "APIStatusError", ())):
        response = getattr(exc, "response", None)
        message = server_message(status_error_body(exc)) or getattr(exc, "message", None) or str(exc)
        return error_for_status(exc.status_code, message, retry_after(getattr(response, "headers", None)))
    if isinstance(exc, getattr(sdk, "APIResponseValidationError", ())):
        return ProviderError(f"malformed response: {exc}", "malformed", retryable=True)
    if isinstance(exc, getattr(sdk, "APIError", ())):
        # errors sent inside a stream carry no HTTP status
        return ProviderError(f"provider error in stream: {getattr(exc, 'message', exc)}", "stream", retryable=True)
    return ProviderError(f"{type(exc).__name__}: {exc}", "malformed", retryable=True)


def load_async_backend() -> None:
    """httpx and httpx2 load anyio's asyncio backend at their first request (0.1 s, more on a busy machine):
    the first anyio primitive made inside the event loop loads it now instead."""
    try:
        import anyio

        anyio.Event()
    except Exception:  # noqa: BLE001 - only a head start: the first call loads it otherwise
        pass


async def refuse_a_page(stream) -> None:
    """A stream answered with a web page (a proxy's or a wrong path's) instead of events: say so, rather
    than "ended before a finish reason". For the Stainless-generated SDKs (openai, anthropic)."""
    response = getattr(stream, "response", None)
    content_type = response.headers.get("content-type", "") if response is not None else ""
    if "html" in content_type:
        body = (await response.aread()).decode("utf-8", "replace")
        raise not_the_api(body) or ProviderError(f"the endpoint answered with {content_type}, not the "
                                                 f"provider's events: check model.base_url", "not_the_api")


class SDKProvider(Provider):
    """A provider whose SDK has an async client: one call, streamed or not, timed and mapped the same way
    for every SDK. Subclasses say how to build the client (`client`, imported and built by `prepare`), how
    to call (`_once`, `_stream`) and how to read the SDK's errors (`mapped`)."""

    async def prepare(self) -> None:
        self.client()
        load_async_backend()

    @abstractmethod
    def client(self) -> Any:
        """The SDK's async client, built once (importing the SDK the first time)."""

    async def generate(self, request: Request) -> Response:
        clock = Clock(request.on_text)
        try:
            if self.model.stream:
                response = await self._stream(request, clock)
            else:
                response = await self._once(request)
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a row, never a crash
            response = error_response(self.mapped(exc))
        clock.finish(response, streamed=self.model.stream)  # counting tokens below is not the provider's time
        if response.ok and response.usage.input_tokens is None:
            # the server sent no usage (some OpenAI-compatible servers when streaming): count it ourselves
            from runner.tokens import count_usage

            response.usage = count_usage(request.messages, response.text, self.model.id)
        return response

    @abstractmethod
    async def _once(self, request: Request) -> Response:
        """One call without streaming."""

    @abstractmethod
    async def _stream(self, request: Request, clock: Clock) -> Response:
        """One streamed call; `clock.text_arrived(text)` with each piece of text as it comes."""

    @abstractmethod
    def mapped(self, exc: BaseException) -> ProviderError:
        """The SDK's exception in the runner's terms (ProviderError passes through)."""
