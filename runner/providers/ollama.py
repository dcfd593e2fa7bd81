"""Local models served by Ollama, through the `ollama` package (as the course ran Llama 3.2).

The host is `model.base_url`, else OLLAMA_HOST, else Ollama's default (127.0.0.1:11434). No key, unless
`model.api_key_env` names one (Ollama behind an authenticating proxy, or ollama.com): it goes out as a
Bearer token. Usage comes from the final line of the answer (`prompt_eval_count`, `eval_count`). The
`ollama` package has no retries of its own. A model that is not pulled answers 404; the error row says
how to pull it.

Thinking models (checked 2026-12-07): Ollama's `think` takes true or false,
or "low", "medium", "high" for the models that have levels (gpt-oss, which cannot stop thinking); a model
without thinking refuses it (400 "... does not support thinking"). Told nothing, a thinking model thinks. Which
models think is known by family here (Ollama's catalogue is the server's, not models.dev's): gpt-oss takes
model.reasoning low, medium, high (sent as they are); qwen3 (not its instruct and coder models), deepseek-r1,
deepseek-v3.1 and magistral take none (think false) and medium (think true: such a model has one way of
thinking). For another, set model.reasoning_model=true and model.reasoning_efforts in its config: more than one
effort besides none is sent as a level, else as true. num_predict counts thinking and answer together, so the
runner adds room for thinking by effort. The thinking arrives in `message.thinking`, apart from the answer:
it goes to Response.reasoning, and time to first token waits for the answer's first text. eval_count counts both;
Ollama does not say how many were thinking, so reasoning_tokens is estimated: eval_count split between thinking
and answer by their share of the text (reasoning_tokens_source estimate). A JSON Schema goes as `format`
(Ollama constrains the output to it).

Tools (checked 2026-12-07): `tools` of type function, for the model families
Ollama lists as taking tools (TOOLS below; model.tool_call=true for another); a model without them answers 400
"... does not support tools". The calls come in `message.tool_calls` (arguments as an object, all at once when
streamed); ollama 0.6.3's types carry no call id, so the runner numbers them. The next turn sends the assistant
message with its tool_calls and a `tool` message per call, naming its tool (`tool_name`).
"""
from __future__ import annotations

import base64
import functools
import json
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from runner.calls import Request, Response, Usage, images_in, in_tool_loop, text_of, tool_call, without_replay
from runner.providers.base import (
    Capabilities,
    Clock,
    ProviderError,
    SDKProvider,
    error_for_status,
    not_the_api,
    refused_error,
)
from runner.providers.connections import check_endpoint, checked_client

if TYPE_CHECKING:
    import ollama

DEFAULT_PORT = 11434  # Ollama's, when OLLAMA_HOST or model.base_url names none


LEVELS = ("low", "medium", "high")
# families that take tools (Ollama's model library tags them "tools"; checked 2026-12-07)
TOOLS = re.compile(r"(llama3\.[123]|llama4|qwen2\.5|qwen3|qwq|mistral|mixtral|magistral|devstral|ministral|gpt-oss|"
                   r"granite3|granite4|command-r|hermes3|firefunction|smollm2|phi4-mini|deepseek-v3|cogito|nemotron)")
# families that think and can be told not to (think true/false); gpt-oss has levels instead
TOGGLED = re.compile(r"(qwen3(?!-coder)(?!.*instruct)|deepseek-r1|deepseek-v3\.1|magistral)")


def ollama_efforts(model_id: str) -> tuple[tuple[str, ...], str] | None:
    """(the values of model.reasoning an Ollama model takes, its effort when told nothing); None: it does not
    think, as far as its name tells."""
    name = model_id.lower().rsplit("/", 1)[-1]  # hf.co/org/model:tag, library/qwen3:8b
    if name.startswith("gpt-oss"):
        return LEVELS, "medium"
    if TOGGLED.match(name):
        return ("none", "medium"), "medium"
    return None


def ollama_messages(messages: list[dict]) -> list[dict]:
    """The messages as Ollama's chat takes them: a message with images keeps its text as `content` and its
    images in `images` (bytes, which the package sends in base64; a string it would first try as a file path)."""
    if not any(isinstance(m.get("content"), list) for m in messages):
        return messages
    return [{**m, "content": text_of(m["content"]),
             "images": [base64.b64decode(part["data"]) for part in images_in([m])]}
            if isinstance(m.get("content"), list) else m for m in messages]


class OllamaProvider(SDKProvider):
    free = True
    endpoint_env = "OLLAMA_HOST"
    loggers = ("ollama", "httpx", "httpcore")
    # num_predict counts thinking and answer together: room for the thinking each effort may spend
    thinking_room = {"low": 2048, "medium": 8192, "high": 16384}

    @classmethod
    def family_capabilities(cls, model_id: str) -> Capabilities:
        efforts = ollama_efforts(model_id)
        tools = bool(TOOLS.match(model_id.lower().rsplit("/", 1)[-1]))
        if efforts is None:  # structured output works for every model: Ollama constrains the sampling to the schema
            return Capabilities(structured_output=True, tool_call=tools)
        return Capabilities(reasoning=True, structured_output=True, efforts=efforts[0], default_effort=efforts[1],
                            tool_call=tools)

    def think(self, request: Request) -> bool | str | None:
        """`think` for this call: None (not sent) when model.reasoning is null."""
        if request.reasoning is None:
            return None
        if request.reasoning == "none":
            return False
        graded = [effort for effort in self.capabilities.efforts if effort != "none"]
        return request.reasoning if len(graded) > 1 else True

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
            "messages": ollama_messages(wire_messages(request.messages)),
            "options": {"temperature": request.temperature, "num_predict": request.max_tokens},
        }
        if request.tools:
            params["tools"] = [{"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": tool.parameters}}
                for tool in request.tools]
        if request.json_schema is not None and self.capabilities.structured_output:
            params["format"] = request.json_schema
        elif request.json_mode or request.json_schema is not None:
            params["format"] = "json"
        if request.seed is not None:
            params["options"]["seed"] = request.seed
        think = self.think(request)
        if think is not None:
            params["think"] = think
        return params

    async def _once(self, request: Request) -> Response:
        answer = await self.client().chat(**self.params(request), stream=False)
        thinking = answer.message.thinking or ""
        text = answer.message.content or ""
        return Response(text=text, reasoning=thinking, usage=self._usage(answer, thinking, text),
                        finish_reason=answer.done_reason, tool_calls=calls_of([answer]))

    async def _stream(self, request: Request, clock: Clock) -> Response:
        parts: list[str] = []
        thoughts: list[str] = []
        calling = []  # the lines that call tools
        last = None
        async for part in await self.client().chat(**self.params(request), stream=True):
            if part.message.thinking:  # before the answer: not its first token
                thoughts.append(part.message.thinking)
            if part.message.content:
                clock.text_arrived(part.message.content)
                parts.append(part.message.content)
            if part.message.tool_calls:
                calling.append(part)
            last = part
        if last is None or not last.done:
            raise ProviderError("the stream ended before its final line (done=true)", "malformed", retryable=True)
        thinking, text = "".join(thoughts), "".join(parts)
        return Response(text=text, reasoning=thinking, usage=self._usage(last, thinking, text),
                        finish_reason=last.done_reason, tool_calls=calls_of(calling))

    def _usage(self, final, thinking: str, text: str) -> Usage:
        """The final line's counts. eval_count holds thinking and answer: the thinking's part of it is estimated by
        its share of the text (for a model that thinks: 0 when it did not)."""
        usage = Usage(input_tokens=final.prompt_eval_count, output_tokens=final.eval_count, cached_tokens=0,
                      source="provider")
        if thinking or self.capabilities.reasoning:
            total = final.eval_count or 0
            usage.reasoning_tokens = round(total * len(thinking) / (len(thinking) + len(text))) if thinking else 0
            usage.reasoning_source = "estimate"
        return usage

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


def calls_of(lines) -> list[dict]:
    """The tool calls in these answer lines, numbered (ollama 0.6.3's types carry no call id)."""
    calls = [call for line in lines for call in line.message.tool_calls or ()]
    return [tool_call(f"ollama-call-{i}", call.function.name, dict(call.function.arguments or {}))
            for i, call in enumerate(calls, 1)]


def wire_messages(messages: list[dict]) -> list[dict]:
    """The runner's messages as Ollama's chat takes them: an assistant turn's tool calls with their arguments as
    an object, each tool result as a `tool` message naming its tool. Messages without tools go as they are."""
    if not in_tool_loop(messages):
        return messages
    sent = []
    for m in messages:
        if m["role"] == "tool":
            sent.append({"role": "tool", "content": m["content"], "tool_name": m["name"]})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            sent.append({"role": "assistant", "content": m.get("content") or "", "tool_calls": [
                {"function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], dict)
                              else {}}} for c in m["tool_calls"]]})
        else:
            sent.append(without_replay(m))
    return sent


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

