"""The provider interface: one async call in, one plain `Response` out.

A provider module wraps one SDK. It turns a `Request` into that SDK's call (streamed or not), and the
SDK's answer or exception into a `Response`. Nothing after this point knows which SDK produced it.
Providers never retry (the SDKs' own retries are turned off); the engine owns the one retry policy
and reads `Response.retryable` / `Response.retry_after_s` to apply it. The engine awaits `prepare()`
before a provider's first call, so importing an SDK and building its client is never timed as a call.
"""
from __future__ import annotations

import json
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from runner.calls import IMAGE_TYPES, Request, Response, Usage
from runner.providers.capabilities import Capabilities, capabilities
from runner.providers.connections import check_endpoint, refusal
from runner.providers.keys import MissingKey, key_from_env, key_names
from runner.providers.reasons import redacted_line, server_message, what_came
from runner.redact import watch_url
from runner.settings import ModelSettings, check_url
from runner.tokens import count_usage


class ProviderError(Exception):
    """An SDK failure already mapped to the runner's terms."""

    def __init__(self, message: str, kind: str, status_code: int | None = None,
                 retryable: bool = False, retry_after_s: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.status_code = status_code
        self.retryable = retryable
        self.retry_after_s = retry_after_s


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


def refused_error(exc: BaseException) -> ProviderError | None:
    """A connection the runner refused (runner.providers.connections: a redirect or a name that led to a
    metadata address), whatever the SDK wrapped it in; None for any other failure. Not retried: the
    address is the endpoint's answer, not a passing fault."""
    found = refusal(exc)
    return ProviderError(f"not connected: {found}; nothing was sent to it", "refused") if found else None


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


class Clock:
    """Latency and time to first text for one call; hands each streamed piece to the request's listener, and
    keeps the usage a stream has reported so far (a stream that breaks after it was still billed)."""

    def __init__(self, on_text: Callable[[str], None] | None = None) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.on_text = on_text
        self.usage: Usage | None = None

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
    if not response.ok or response.answered:  # text, or calls of the tools it was offered
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


# the error_kind of a request a batch did not answer before it expired: the engine sends it again, once
BATCH_EXPIRED = "batch_expired"


@dataclass
class BatchStatus:
    """Where one of the provider's batches stands, in the runner's words (the provider's own in `word`)."""

    id: str
    state: str  # pending | ended | expired | failed | cancelled
    word: str = ""  # the provider's status (in_progress, finalizing, JOB_STATE_RUNNING...)
    succeeded: int | None = None
    failed: int | None = None
    pending: int | None = None
    reason: str = ""  # why a batch failed or ended early, as the provider says it
    created_at: float | None = None  # epoch seconds, the provider's clock
    ended_at: float | None = None
    raw: Any = field(default=None, repr=False)  # the SDK's object: what batch_results reads the answers from

    def __post_init__(self) -> None:
        # the provider's words, untrusted: they reach the rows of the requests the batch did not answer
        self.reason = server_message(self.reason) if self.reason else ""

    @property
    def done(self) -> bool:
        return self.state != "pending"


class Provider(ABC):
    """One model behind one SDK. Built once per job; `generate` may run concurrently.

    A provider class declares its own facts, which the rest of the runner reads from it (through the
    registry, runner.providers) instead of keeping tables of its own."""

    #: environment variables that may hold this provider's key, in order of preference (none: no key)
    key_env: tuple[str, ...] = ()
    #: how its keys start ("sk-ant-"): at its own API a key shaped like another provider's is refused
    key_prefix: str | None = None
    #: whose keys its own API takes, in messages ("anthropic")
    key_owner: str | None = None
    #: the host of its own API: only there can a key's shape tell whose key it must be
    own_host: str | None = None
    #: the provider id genai-prices knows it by (None: unpriced unless the model config gives a price)
    price_provider: str | None = None
    #: runs on the user's own machine: calls cost 0 unless the model config gives a price
    free: bool = False
    #: the variable its SDK reads its endpoint from when model.base_url is not set
    endpoint_env: str | None = None
    #: its SDK's loggers: Hydra sets the root logger to INFO, and HTTP clients would log every request
    loggers: tuple[str, ...] = ()
    #: its batch API's limits, (requests, bytes) in one batch; None: it has no batch API (model.batch refused)
    batch_limits: tuple[int, int] | None = None
    #: its API takes a sampling seed, and it sends the request's (the row's `seed` is empty where not)
    takes_seed: bool = True
    #: the image media types its models take (those whose inputs include image): an image of another type
    #: is not sent, its cell is skipped with the reason
    image_types: tuple[str, ...] = IMAGE_TYPES

    # What its models take (runner.providers.capabilities and runner.calling.asking read these). A provider
    # that maps model.reasoning onto its API sets `thinking_room`, overrides `family_capabilities` (the
    # efforts each family takes) and `takes_temperature` where thinking forbids one, and sends
    # Request.reasoning / Request.thinking_tokens in its own terms.

    #: models.dev's id for this provider's models (None: not looked up; the family defaults decide)
    catalogue: str | None = None
    #: the temperature its models answer at when none is sent: results.csv records it for a model that takes
    #: none (None: not known, the column is left empty)
    default_temperature: float | None = None
    #: tokens of room for thinking added to max_tokens, by effort (the model's default effort when
    #: model.reasoning is null), where the API counts thinking and answer against one cap; within the
    #: model's output limit. An effort not listed adds nothing.
    thinking_room: Mapping[str, int] = {}

    @classmethod
    def catalogue_for(cls, model: ModelSettings) -> str | None:
        """The catalogue's provider id to look this model up under."""
        return cls.catalogue

    @classmethod
    def family_for(cls, model: ModelSettings) -> type[Provider]:
        """The provider whose family defaults this model's capabilities start from: its own."""
        return cls

    @classmethod
    def family_capabilities(cls, model_id: str) -> Capabilities:
        """What a model of this provider takes when the catalogue does not say: the provider's defaults for
        the model's family, and (always) the efforts it takes and its default effort. The base: a model that
        does not reason and takes a temperature."""
        return Capabilities()

    @classmethod
    def image_tokens(cls, width: int, height: int) -> int:
        """About how many input tokens one image of this size counts, for estimates (a dry run, the budget's
        worst case): the provider reports the real count. The base: Claude's rule, width x height / 750 after
        fitting the long edge within 1,568 pixels and at most about 1,600 tokens; a middle estimate for others."""
        scale = min(1.0, 1568 / max(width, height, 1))
        return max(1, min(1600, math.ceil(width * scale * height * scale / 750)))

    @classmethod
    def takes_temperature(cls, model_id: str, caps: Capabilities, effort: str | None) -> bool:
        """Whether a temperature may be sent to this model when it thinks at `effort` (the setting sent, or
        its default effort when none is sent)."""
        return caps.temperature

    @property
    def capabilities(self) -> Capabilities:
        """What this model takes (looked up once per model config)."""
        return capabilities(self.model)

    # Tools (Request.tools, a `tools` task). A provider that takes them sends each Tool in its API's shape,
    # turns the neutral assistant and tool messages of runner.calls into its own (each tool result answering
    # its call by id), and returns the calls the model made in Response.tool_calls (parsed arguments), with
    # Response.replay holding whatever of its own content the API needs sent back in the next turn.

    def refuses_tools(self) -> str | None:
        """Why this model cannot be offered tools (its calls are then skipped with this reason), or None."""
        if self.capabilities.tool_call:
            return None
        return (f"model {self.model.name} ({self.model.provider}/{self.model.id}) does not take tools, as far as "
                f"the models.dev catalogue and its provider know: set model.tool_call=true if it does")

    def __init__(self, model: ModelSettings) -> None:
        self.model = model
        watch_url(model.base_url)  # a password in it is a secret, in any form it may come back in

    def endpoint(self) -> str:
        """The endpoint its calls go to: `model.base_url`, else the SDK's variable; "" for the provider's own
        API. One answer for the cache key, the `base_url` column and the key-shape check."""
        if self.model.base_url:
            return self.model.base_url.rstrip("/")
        return (os.environ.get(self.endpoint_env) or "").rstrip("/") if self.endpoint_env else ""

    def check_endpoint(self) -> None:
        """Before any call: the SDK's variable the model falls back on is an http(s) URL (model.base_url is
        checked with the settings), and the endpoint is no address the runner refuses to connect to (a
        link-local or metadata address, or a name that resolves to one)."""
        name = self.endpoint_env
        from_variable = bool(not self.model.base_url and name and os.environ.get(name))
        if from_variable:
            check_url(os.environ[name], name)
        url = self.endpoint()
        if url:
            check_endpoint(url, name if from_variable else "model.base_url")

    def key_names(self) -> tuple[str, ...]:
        return key_names(self.model.api_key_env, self.key_env)

    def expected_key_owner(self) -> str | None:
        """Whose key shape to insist on: only the provider's own API's; a proxy or gateway has keys of its
        own (LiteLLM's start with sk- whatever wire format it speaks)."""
        url = self.endpoint()
        if not url:
            return self.key_owner
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None
        return self.key_owner if self.own_host and host == self.own_host else None

    def missing_key(self) -> str | None:
        """Why the model's calls would be skipped (no key set), or None. Raises ConfigError when the key
        cannot be right (spaces around it, another provider's key at this one's own API)."""
        try:
            self.api_key()
        except MissingKey as exc:
            return str(exc)
        return None

    def api_key(self) -> str | None:
        """The key, read when it is needed; None for a provider that takes none. Raises MissingKey."""
        return key_from_env(self.key_names(), self.expected_key_owner()) if self.key_names() else None

    async def prepare(self) -> None:  # noqa: B027 - optional: most providers need nothing
        """Get ready for the first call (import the SDK, build the client, load a model), outside any call's
        clock and deadline. The engine awaits it once before the first call that is not answered from the
        cache; it must be safe to await again."""

    @abstractmethod
    async def generate(self, request: Request) -> Response:
        """Make one call. Must not raise for provider failures: return a Response with `error` set."""

    async def aclose(self) -> None:  # noqa: B027 - optional: a provider may hold nothing to release
        """Release clients and models at the end of the job."""

    # The batch API (providers with `batch_limits`). The engine (runner.calling.batch) decides what to send,
    # keeps the batch's id safe before it waits, and turns the answers into records like any other call's.

    def batch_entry(self, custom_id: str, request: Request) -> dict:
        """One request of a batch as the provider's batch API takes it (its size counts against the limit)."""
        raise NotImplementedError(f"{type(self).__name__} has no batch API")

    async def batch_submit(self, entries: list[dict]) -> str:
        """Send one batch; returns the provider's id for it. Raises ProviderError."""
        raise NotImplementedError(f"{type(self).__name__} has no batch API")

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Where the batch stands. Raises ProviderError."""
        raise NotImplementedError(f"{type(self).__name__} has no batch API")

    def batch_answer(self, request: Request, response: Response) -> Response:
        """A batch's answer to `request`, finished as `generate` would finish it (a prefill put back)."""
        return response

    async def batch_results(self, status: BatchStatus, custom_ids: list[str]) -> dict[str, Response]:
        """The answers of a batch that is no longer pending, by custom id (`custom_ids`: the batch's, in the
        order submitted): each a Response as `generate` would give (usage, finish reason), or one with the
        provider's reason for failing it; requests the batch never answered are missing. Raises ProviderError."""
        raise NotImplementedError(f"{type(self).__name__} has no batch API")


def error_response(error: ProviderError) -> Response:
    """A failed call as a Response: one line, and what the retry policy needs to know."""
    return Response(error=redacted_line(str(error), 500), error_kind=error.kind, status_code=error.status_code,
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
    refused = refused_error(exc)
    if refused is not None:
        return refused
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
    """A provider whose SDK has a client: one call, streamed or not, timed and mapped the same way for every
    SDK. Subclasses say how to build the client (`new_client`, importing the SDK the first time), how to
    call (`_once`, `_stream`) and how to read the SDK's errors (`mapped`)."""

    def __init__(self, model: ModelSettings) -> None:
        super().__init__(model)
        # kept for the job's life (google-genai closes a client's connections when the client is collected)
        self._client: Any = None

    async def prepare(self) -> None:
        self.client()
        load_async_backend()

    def client(self) -> Any:
        """The SDK's client, built once, at the first call or in `prepare`."""
        if self._client is None:
            self._client = self.new_client()
        return self._client

    @abstractmethod
    def new_client(self) -> Any:
        """Build the SDK's client for this model, with the SDK's own retries off (the runner has one policy)."""

    async def close_client(self, client: Any) -> None:
        """Release the client's connections (the Stainless SDKs and ollama: `await client.close()`)."""
        await client.close()

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await self.close_client(client)

    async def generate(self, request: Request) -> Response:
        clock = Clock(request.on_text)
        try:
            if self.model.stream:
                response = await self._stream(request, clock)
            else:
                response = await self._once(request)
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a row, never a crash
            response = error_response(self.mapped(exc))
            if clock.usage is not None and clock.usage.reported:  # the stream broke after its usage came: billed
                response.usage = clock.usage
        clock.finish(response, streamed=self.model.stream)  # counting tokens below is not the provider's time
        if response.ok and response.usage.input_tokens is None:
            # the server sent no usage (some OpenAI-compatible servers when streaming): count it ourselves
            said = response.text + "".join(json.dumps(call["arguments"]) for call in response.tool_calls)
            response.usage = count_usage(request.messages, said, self.model.id)
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
