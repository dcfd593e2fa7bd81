"""A strict fake of Ollama's chat API (`POST /api/chat`, JSON and NDJSON streaming) on 127.0.0.1.

Like the real server: a model that is not pulled gets 404 with Ollama's error body, a stream is one JSON
object a line and the last line has `done: true`, `done_reason` and the token counts. Stricter than the
real server, which ignores what it does not know: unknown request fields and options are rejected, so a
typo in our request fails a test instead of being ignored.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.fakes.server import FakeServer, Faults, Received, Reply

ALLOWED = {"model", "messages", "tools", "stream", "format", "options", "keep_alive", "think", "logprobs",
           "top_logprobs"}
OPTIONS = {"temperature", "num_predict", "top_p", "top_k", "seed", "stop", "num_ctx"}
NANOS = 1_000_000


def words(text: str) -> int:
    return len(text.split())


def default_answer(messages: list[dict]) -> str:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"Answer to: {' '.join(last.split()[:12])}"


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"error": message})


def _line(data: dict) -> bytes:
    return json.dumps(data).encode() + b"\n"


class OllamaFake:
    """Routes for /api/chat, all the SDK needs to chat. `models` are the pulled ones; `answer(messages)` is what
    they say."""

    def __init__(self, models: tuple[str, ...] = ("llama3.2",), answer: Callable[[list[dict]], str] = default_answer,
                 stream_error_after: int | None = None, chunk_delay_s: float = 0.0):
        self.models = models
        self.answer = answer
        self.stream_error_after = stream_error_after
        self.chunk_delay_s = chunk_delay_s

    def pulled(self, name: str) -> bool:
        return name in self.models or name.removesuffix(":latest") in self.models

    def validate(self, body) -> Reply | None:
        if not isinstance(body, dict):
            return _error(400, "invalid request body")
        unknown = set(body) - ALLOWED
        if unknown:
            return _error(400, f"unknown field {sorted(unknown)[0]!r}")
        if not body.get("model"):
            return _error(400, "model is required")
        messages = body.get("messages")
        if not isinstance(messages, list):
            return _error(400, "messages is required")
        for m in messages:
            if m.get("role") not in ("system", "user", "assistant", "tool") or not isinstance(m.get("content"), str):
                return _error(400, f"invalid message {m!r}")
        options = body.get("options") or {}
        if set(options) - OPTIONS:
            return _error(400, f"unknown option {sorted(set(options) - OPTIONS)[0]!r}")
        if "seed" in options and type(options["seed"]) is not int:
            return _error(400, f"option \"seed\" must be of type integer, not {type(options['seed']).__name__}")
        if body.get("format") not in (None, "", "json") and not isinstance(body.get("format"), dict):
            return _error(400, f"invalid format {body.get('format')!r}")
        if not self.pulled(body["model"]):
            return _error(404, f"model '{body['model']}' not found")
        return None

    def chat(self, request: Received) -> Reply:
        try:
            body = request.json
        except json.JSONDecodeError:
            return _error(400, "invalid character in request body")
        problem = self.validate(body)
        if problem:
            return problem
        options = body.get("options") or {}
        text = self.answer(body["messages"])
        finish = "stop"
        limit = options.get("num_predict")
        if limit is not None and limit >= 0 and words(text) > limit:
            text = " ".join(text.split()[:limit])
            finish = "length"
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        final = {"model": body["model"], "created_at": created, "done": True, "done_reason": finish,
                 "total_duration": 50 * NANOS, "load_duration": 5 * NANOS,
                 "prompt_eval_count": sum(words(m["content"]) for m in body["messages"]) + 3 * len(body["messages"]),
                 "prompt_eval_duration": 10 * NANOS, "eval_count": words(text), "eval_duration": 30 * NANOS}
        if not body.get("stream", True):  # Ollama streams unless told not to
            return Reply(200, {**final, "message": {"role": "assistant", "content": text}})
        return Reply(200, headers={"Content-Type": "application/x-ndjson"}, chunk_delay_s=self.chunk_delay_s,
                     chunks=self._lines(body["model"], created, text, final))

    def _lines(self, model, created, text, final):
        for i, word in enumerate(text.split(" ") if text else []):
            if self.stream_error_after is not None and i == self.stream_error_after:
                yield _line({"error": "an error was encountered while running the model: unexpected EOF"})
                return
            yield _line({"model": model, "created_at": created,
                         "message": {"role": "assistant", "content": word if i == 0 else " " + word}, "done": False})
        yield _line({**final, "message": {"role": "assistant", "content": ""}})

    def routes(self) -> dict:
        return {("POST", "/api/chat"): self.chat}


def ollama_server(faults: Faults | None = None, latency_s: float = 0.0, **options) -> FakeServer:
    fake = OllamaFake(**options)
    server = FakeServer(fake.routes(), faults=faults, latency_s=latency_s)
    server.fake = fake
    return server
