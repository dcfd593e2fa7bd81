"""Gemini through google-generativeai, the SDK the course used: `model.sdk=generativeai`.

Support for that SDK has ended upstream; google-genai (`runner.providers.gemini`) is the default. It is
an optional extra (`pip install 'runner[generativeai]'`), imported only when a model selects it. It runs
over REST: its gRPC default cannot reach an http:// endpoint, and its async call is broken over REST,
so the sync call runs in a worker thread. Over REST it streams one JSON array, which the SDK parses;
it drops an error object inside that array, so such a stream ends as "no finish reason" (retryable).
The SDK is imported by `prepare()`, in the job: its end-of-support notice is then one line of the
runner's own log, not of Hydra's checks before the run.

Its protos (google-ai-generativelanguage 0.6.15, the last it takes) predate thinking: GenerationConfig has no
thinking_config, Part no `thought`, UsageMetadata no thoughtsTokenCount. So a model.reasoning setting is bad
input here (it names model.sdk); a model that thinks by default still gets its room for thinking (that is only
maxOutputTokens), and its thought tokens are read from totalTokenCount, which counts them, so they are billed.
Its response_schema is the API's Schema proto: a JSON Schema is sent with the fields that proto has (types,
properties, required, items, enum...; additionalProperties and the like dropped), or as JSON mode when even
that cannot be built.
Tools: its protos have function declarations (parameters as the Schema proto, cut down the same way), function
calls and responses with their ids, but no thought signatures, which Gemini 3 requires sent back with every
function call of a tool loop: tools go to Gemini 2.5 and earlier only (a Gemini 3 model's tools cells are
skipped, with the reason).
"""
from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import re
import threading
import warnings

from runner.calls import Request, Response
from runner.errors import ConfigError
from runner.providers.base import Clock, ProviderError, refused_error
from runner.providers.connections import checked_adapter
from runner.providers.gemini import (
    Chunks,
    GeminiProvider,
    answer,
    split_messages,
    status_error,
    thinking_of,
    unreadable,
)
from runner.providers.reasons import server_message

EXTRA_MISSING = ("model.sdk=generativeai needs google-generativeai: "
                 "pip install 'runner[generativeai]' (or drop model.sdk to use google-genai)")

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
        raise ConfigError(EXTRA_MISSING) from None
    log.warning("google-generativeai has reached end of support upstream; it is used because model.sdk="
                "generativeai (without it, runner uses google-genai)")
    return genai, glm, client_options, exceptions


def installed() -> bool:
    try:
        return importlib.util.find_spec("google.generativeai") is not None
    except (ImportError, ValueError):
        return False


def _mapped(exc: Exception) -> ProviderError:
    import requests

    _, _, _, exceptions = sdk()
    if isinstance(exc, ProviderError):
        return exc
    refused = refused_error(exc)
    if refused is not None:
        return refused
    if isinstance(exc, exceptions.GoogleAPICallError):
        response = getattr(exc, "response", None)
        # its message is "POST <url>: <what it understood of the body>"; the body itself says more
        message = server_message(getattr(response, "text", None)) or exc.message
        return status_error(exc.code, message, exc.details, getattr(response, "headers", None))
    if isinstance(exc, (requests.Timeout, exceptions.DeadlineExceeded, TimeoutError)):
        return ProviderError("timed out waiting for the provider", "timeout", retryable=True)
    if isinstance(exc, (requests.ConnectionError, OSError)):
        return ProviderError(f"connection failed: {connection_reason(exc)}", "connection", retryable=True)
    if unreadable(exc) is not None:
        return unreadable(exc)
    # its stream parser reads one character at a time, and names the first one when it is not "["
    streamed = re.match(r"Can only parse array of JSON objects, instead got (.)", str(exc))
    if streamed and streamed.group(1) in "d:":
        # "data: {...}" (or an SSE comment): server-sent events, the stream google-genai asks for, which a proxy
        # (LiteLLM's Gemini route) sends whatever was asked; the endpoint is right, the stream format is not
        return ProviderError("the endpoint streamed server-sent events (data: lines), not google-generativeai's "
                             "JSON array: set model.stream=false (or drop model.sdk to use google-genai)",
                             "not_the_api")
    if streamed and streamed.group(1) not in "[{":
        what = "HTML" if streamed.group(1) == "<" else f"text (starting {streamed.group(1)!r})"
        return ProviderError(f"the endpoint answered with {what}, not the provider's JSON: check model.base_url",
                             "not_the_api")
    return ProviderError(f"{type(exc).__name__}: {exc}", "malformed", retryable=True)


def connection_reason(exc: BaseException) -> str:
    """requests' connection errors in one line: urllib3 wraps the reason in three layers of text (a pool, a
    URL, a connection object's repr); keep the host and the reason."""
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None) or inner or exc
    # "<urllib3.connection.HTTPConnection object at 0x..>: " or "HTTPConnection(host=.., port=..): "
    text = re.sub(r"^(<[^>]*>|\w+\([^)]*\)):\s*", "", str(reason))
    text = re.sub(r"^(Failed to establish a new connection|Connection aborted\.?):?\s*", "", text)
    pool = getattr(inner, "pool", None)
    where = f"{pool.host}:{pool.port}: " if getattr(pool, "host", None) else ""
    return f"{where}{text}"


# the fields of the API's Schema proto as google-generativeai's dict conversion names them
SCHEMA_FIELDS = {"type", "format", "description", "nullable", "enum", "items", "max_items", "maxItems", "min_items",
                 "minItems", "properties", "required"}


def proto_schema(schema):
    """A JSON Schema cut down to what the Schema proto holds: the fields it has, kept recursively."""
    if not isinstance(schema, dict):
        return schema
    kept = {key: value for key, value in schema.items() if key in SCHEMA_FIELDS}
    if isinstance(kept.get("properties"), dict):
        kept["properties"] = {name: proto_schema(value) for name, value in kept["properties"].items()}
    if "items" in kept:
        kept["items"] = proto_schema(kept["items"])
    return kept


def proto_part(part: dict):
    """A part of runner.providers.gemini's contents as google-generativeai takes it: text as a string, a function
    call or response as its proto's fields (a thought signature dropped: its protos have none), an image's
    inline_data as it is (proto-plus turns the base64 text of a bytes field into its bytes)."""
    if set(part) == {"text"}:
        return part["text"]
    return {key: value for key, value in part.items()
            if key in ("text", "function_call", "function_response", "inline_data")}


class GenerativeAIProvider(GeminiProvider):
    """Gemini's facts (keys, host, prices, endpoint variable); google-generativeai's client and calls."""

    loggers = ("google.generativeai", "urllib3")  # over REST it sends with requests
    batch_limits = None  # google-generativeai has no batch API: model.batch is refused (google-genai has one)
    takes_seed = False  # its GenerationConfig (and the protos under it, 0.6.15) has no seed: google-genai sends it

    def __init__(self, model) -> None:
        super().__init__(model)
        if model.reasoning is not None:
            raise ConfigError(f"model.reasoning={model.reasoning} (model {model.name}, {model.provider}/{model.id}): "
                              f"model.sdk=generativeai cannot send it (google-generativeai's protos have no "
                              f"thinking_config); leave model.reasoning=null, or drop model.sdk to send it through "
                              f"google-genai")
        if not installed():
            raise ConfigError(EXTRA_MISSING)  # before any call; the import itself waits for prepare()
        self._client_lock = threading.Lock()  # calls run in worker threads

    def refuses_tools(self) -> str | None:
        thinking = thinking_of(self.model.id)
        if thinking is not None and thinking.budget is None:  # Gemini 3 and later: thought signatures required
            return (f"model {self.model.name} ({self.model.id}) through model.sdk=generativeai takes no tools: "
                    f"google-generativeai's protos have no thought signatures, which Gemini 3 requires sent back "
                    f"with each function call; drop model.sdk to use google-genai")
        return super().refuses_tools()

    async def prepare(self) -> None:
        await asyncio.to_thread(self.client)

    def client(self):
        with self._client_lock:
            return super().client()

    def new_client(self):
        """This model's own REST client. genai.configure() would set one client for the whole process."""
        _, glm, client_options, _ = sdk()
        options = client_options.ClientOptions(api_key=self.api_key())
        if self.endpoint():
            options.api_endpoint = self.endpoint()
        client = glm.GenerativeServiceClient(transport="rest", client_options=options)
        # google-auth's session re-sends a request answered 401 twice, "refreshing" an API key
        # that cannot change; a rejected key is sent once (the SDK is frozen, so this stays put)
        client.transport._session._refresh_status_codes = ()
        # its session's connections go only to addresses the runner allows (at every redirect too)
        adapter = checked_adapter()
        client.transport._session.mount("https://", adapter)
        client.transport._session.mount("http://", adapter)
        return client

    async def close_client(self, client) -> None:
        """Its REST session closes with the process; the SDK has no async close."""

    def mapped(self, exc: BaseException) -> ProviderError:
        return _mapped(exc)

    async def _once(self, request: Request) -> Response:
        return await asyncio.to_thread(self._call, request, None)

    async def _stream(self, request: Request, clock: Clock) -> Response:
        return await asyncio.to_thread(self._call, request, clock)

    def _call(self, request: Request, clock: Clock | None) -> Response:
        """One call in a worker thread (its async call is broken over REST); streamed when given a clock."""
        genai = sdk()[0]
        system, contents = split_messages(request.messages)
        tools = [{"function_declarations": [
            {"name": tool.name, "description": tool.description, "parameters": proto_schema(tool.parameters)}
            for tool in request.tools]}] if request.tools else None
        model = genai.GenerativeModel(
            self.model.id, system_instruction=system, generation_config=self.generation_config(request), tools=tools)
        # GenerativeModel has no client argument; without this it would take the process-wide default one
        model._client = self.client()
        # retry=None: the SDK's own retries (503 by default) are off; the runner has one retry policy
        options = {"timeout": self.model.timeout_s, "retry": None}
        contents = [{"role": c["role"], "parts": [proto_part(p) for p in c["parts"]]} for c in contents]
        thinks = self.capabilities.reasoning
        if clock is None:
            return answer(model.generate_content(contents, request_options=options), thinks)
        chunks = Chunks(clock, thinks)
        for chunk in model.generate_content(contents, stream=True, request_options=options):
            chunks.add(chunk)
        return chunks.response()

    def generation_config(self, request: Request):
        """Its GenerationConfig: no thinking setting (it has none); a JSON Schema as far as its proto holds it."""
        genai = sdk()[0]
        json_output = request.json_mode or request.json_schema is not None
        values = dict(temperature=request.temperature, max_output_tokens=request.max_tokens,
                      response_mime_type="application/json" if json_output else None)
        schema = self.json_schema(request)
        if schema is not None:
            from google.generativeai.types import generation_types

            try:  # built here, so that a schema it cannot hold falls back to JSON mode rather than failing
                generation_types.to_generation_config_dict(genai.GenerationConfig(
                    **values, response_schema=proto_schema(schema)))
                values["response_schema"] = proto_schema(schema)
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("model %s: the JSON Schema does not fit google-generativeai's response_schema (%s): "
                            "asking for JSON without it", self.model.name, exc)
        return genai.GenerationConfig(**values)
