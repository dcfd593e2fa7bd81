"""A strict fake of Anthropic's Messages API (JSON and SSE streaming) on 127.0.0.1.

Strict the way the real API is: a missing key or `anthropic-version` header, unknown request fields,
a missing `max_tokens`, temperature outside 0..1, a "system" role inside `messages`, or a final
assistant turn ending in whitespace get the real API's error shapes. Streams carry the real `event:`
lines, and an in-stream `event: error` can be injected.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.fakes.server import FakeServer, Faults, Received, Reply

ALLOWED = {"model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k", "stop_sequences",
           "stream", "metadata", "output_config", "thinking", "tools", "tool_choice", "service_tier"}
STOP_REASONS = {"end_turn", "max_tokens"}


def words(text: str) -> int:
    return len(text.split())


def default_answer(messages: list[dict]) -> str:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"Answer to: {' '.join(last.split()[:12])}"


def _error(status: int, type_: str, message: str, headers: dict | None = None) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": type_, "message": message},
                          "request_id": "req_test"}, headers={"request-id": "req_test", **(headers or {})})


def _invalid(message: str) -> Reply:
    return _error(400, "invalid_request_error", message)


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class AnthropicFake:
    """Routes for /v1/messages. `answer(messages) -> text` decides what the model says.

    Token counts are words, like the OpenAI fake's: input is the words of the system prompt and the
    messages plus 3 per message; `cache_read` and `cache_write` of them are reported as cache reads and
    cache writes, the rest as `input_tokens` (as the real API splits them).
    """

    def __init__(self, key: str = "test-key", answer: Callable[[list[dict]], str] = default_answer,
                 cache_read: int = 0, cache_write: int = 0, stream_error_after: int | None = None,
                 chunk_delay_s: float = 0.0, echo_key: bool = False):
        self.key = key
        self.echo_key = echo_key  # a careless server: its 401 repeats the credentials it was sent
        self.answer = answer
        self.cache_read = cache_read
        self.cache_write = cache_write
        self.stream_error_after = stream_error_after
        self.chunk_delay_s = chunk_delay_s

    def validate(self, request: Received) -> Reply | None:
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if given != self.key:
            echoed = (f" (x-api-key: {request.headers.get('x-api-key')}, authorization: "
                      f"{request.headers.get('authorization')})") if self.echo_key else ""
            return _error(401, "authentication_error", f"invalid x-api-key{echoed}")
        if not request.headers.get("anthropic-version"):
            return _invalid("anthropic-version: header is required")
        try:
            body = request.json
        except json.JSONDecodeError:
            return _invalid("There was an error parsing the body of your request")
        unknown = set(body) - ALLOWED
        if unknown:
            return _invalid(f"{sorted(unknown)[0]}: Extra inputs are not permitted")
        if not isinstance(body.get("model"), str):
            return _invalid("model: Field required")
        if "max_tokens" not in body:
            return _invalid("max_tokens: Field required")
        if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
            return _invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
        t = body.get("temperature", 1)
        if not isinstance(t, (int, float)) or not 0 <= t <= 1:
            return _invalid("temperature: range: 0..1")
        if "system" in body and not isinstance(body["system"], (str, list)):
            return _invalid("system: Input should be a valid string or list")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _invalid("messages: Field required")
        for i, m in enumerate(messages):
            if m.get("role") == "system":
                return _invalid('messages: Unexpected role "system". The Messages API accepts a top-level '
                                '`system` parameter, not "system" as an input message role.')
            if m.get("role") not in ("user", "assistant") or set(m) - {"role", "content"}:
                return _invalid(f"messages.{i}: Input should be a valid message")
            if not isinstance(m.get("content"), str) or (not m["content"] and i < len(messages) - 1):
                return _invalid(f"messages.{i}: all messages must have non-empty content")
        if messages[-1]["role"] == "assistant" and messages[-1]["content"] != messages[-1]["content"].rstrip():
            return _invalid("messages: final assistant content cannot end with trailing whitespace")
        return None

    def usage(self, body: dict, text: str) -> dict:
        system = body.get("system") or ""
        system_words = words(system if isinstance(system, str) else " ".join(b.get("text", "") for b in system))
        total = system_words + sum(words(m["content"]) for m in body["messages"]) + 3 * len(body["messages"])
        read = min(self.cache_read, total)
        write = min(self.cache_write, total - read)
        return {"input_tokens": total - read - write, "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read, "output_tokens": words(text), "service_tier": "standard"}

    def messages(self, request: Received) -> Reply:
        problem = self.validate(request)
        if problem:
            return problem
        body = request.json
        text = self.answer(body["messages"])
        last = body["messages"][-1]
        if last["role"] == "assistant" and text.startswith(last["content"]):
            text = text[len(last["content"]):]  # the model continues its prefilled turn
        finish = "end_turn"
        if words(text) > body["max_tokens"]:
            text = " ".join(text.split()[:body["max_tokens"]])
            finish = "max_tokens"
        usage = self.usage(body, text)
        ident = f"msg_{int(time.time() * 1000)}"
        message = {"id": ident, "type": "message", "role": "assistant", "model": body["model"],
                   "content": [{"type": "text", "text": text}], "stop_reason": finish, "stop_sequence": None,
                   "usage": usage}
        if not body.get("stream"):
            return Reply(200, message, headers={"request-id": "req_test"})
        return Reply(200, headers={"Content-Type": "text/event-stream", "request-id": "req_test"},
                     chunk_delay_s=self.chunk_delay_s, chunks=self._events(message))

    def _events(self, message: dict):
        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**usage, "output_tokens": 1}}  # the real API reports 1 output token at the start
        yield _sse("message_start", {"type": "message_start", "message": start})
        yield _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})
        yield _sse("ping", {"type": "ping"})
        text = message["content"][0]["text"]
        for i, word in enumerate(text.split(" ") if text else []):
            if self.stream_error_after is not None and i == self.stream_error_after:
                yield _sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                return
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": word if i == 0 else " " + word}})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}})
        yield _sse("message_stop", {"type": "message_stop"})

    def routes(self) -> dict:
        return {("POST", "/v1/messages"): self.messages}


def anthropic_server(faults: Faults | None = None, latency_s: float = 0.0, **options) -> FakeServer:
    fake = AnthropicFake(**options)
    server = FakeServer(fake.routes(), faults=faults, latency_s=latency_s)
    server.fake = fake
    return server
