"""A strict fake of Ollama's chat API (`POST /api/chat`, JSON and NDJSON streaming) on 127.0.0.1.

Like the real server: a model that is not pulled gets 404 with Ollama's error body, a stream is one JSON
object a line and the last line has `done: true`, `done_reason` and the token counts. Stricter than the
real server, which ignores what it does not know: unknown request fields and options are rejected, so a
typo in our request fails a test instead of being ignored.

Thinking as Ollama does it (checked 2026-12-07): the models in THINKERS
think, and think when told nothing; `think` true/false toggles the others' thinking, gpt-oss takes "low",
"medium", "high" (and thinks at its default, medium, when sent a boolean). A model without thinking refuses
think (400 '"<model>" does not support thinking'), a toggled one refuses a level (400 'think value "low" is not
supported for this model'). The thinking comes before the answer in `message.thinking` (streamed line by line),
counts against num_predict (all of it spent: an empty answer, done_reason "length") and in eval_count.

Tools (checked 2026-12-07): `tools` of type function; a model without tool
support refuses them (400 "registry.ollama.ai/library/<model>:latest does not support tools"); the others call
them as the fakes' tool brain decides (tests.fakes.tools): `message.tool_calls`, each {"function": {"index",
"name", "arguments": an object}} (and an id, which ollama 0.6.3's types drop), all in one line when streamed.
Arguments sent back as text, not an object, are the Go server's 400; stricter than it, a `tool` message that
answers no call of the assistant turn before it is refused.

Images (tests/fakes/images.py): a message's `images` is a list of base64 strings (Ollama decodes them as Go's
standard base64: anything else is a 400 naming the byte); bytes that are no image, or images sent to a model
that is not in VISION, are refused (the fake's wording). The answer says what each image of the last user
message is; prompt_eval_count counts 576 tokens an image.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from tests.fakes import images
from tests.fakes import tools as brain
from tests.fakes.server import FakeServer, Faults, Received, Reply

ALLOWED = {"model", "messages", "tools", "stream", "format", "options", "keep_alive", "think", "logprobs",
           "top_logprobs"}
OPTIONS = {"temperature", "num_predict", "top_p", "top_k", "seed", "stop", "num_ctx"}
NANOS = 1_000_000
# the thinking models this fake knows: their levels (none: think true/false only)
THINKERS = {"qwen3": (), "deepseek-r1": (), "gpt-oss:20b": ("low", "medium", "high")}
# thinking tokens a call spends: by level, or (think true / told nothing) the model's default
THOUGHT = {"low": 120, "medium": 480, "high": 1500}
VISION = ("llava", "llama3.2-vision", "gemma3", "qwen2.5vl")  # the models that take images
BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
TOOL_MODELS = {"llama3.2", "qwen3", "gpt-oss:20b"}  # the models this fake serves that take tools


def said(m: dict) -> str:
    """Every word a message carries, for counting: its content and its tool calls' arguments."""
    return " ".join([m.get("content") or ""] + [json.dumps(c["function"].get("arguments")) for c in
                                                m.get("tool_calls") or []])


def tools_problem(body: dict) -> Reply | None:
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            return _error(400, f"invalid tool {i}: a function with a name is required")
    if body.get("tools") and body["model"].removesuffix(":latest") not in TOOL_MODELS:
        return _error(400, f"registry.ollama.ai/library/{body['model'].removesuffix(':latest')}:latest does not "
                           f"support tools")
    pending = 0  # calls of the last assistant turn not answered yet
    for m in body["messages"]:
        for call in m.get("tool_calls") or []:
            if not isinstance((call.get("function") or {}).get("arguments"), dict):
                return _error(400, "json: cannot unmarshal string into Go struct field ToolCallFunction.messages."
                                   "tool_calls.function.arguments of type api.ToolCallFunctionArguments")
        if m["role"] == "tool":
            if pending == 0:
                return _error(400, "a tool message must answer a tool call of the assistant message before it")
            pending -= 1
        else:
            pending = len(m.get("tool_calls") or [])
    return None


def tool_turn(body: dict) -> brain.Decision | None:
    """What the fake model does when offered tools (tests.fakes.tools), from Ollama's messages."""
    if not body.get("tools"):
        return None
    messages = body["messages"]
    asked = max(i for i, m in enumerate(messages) if m["role"] == "user")
    after = messages[asked + 1:]
    rounds = [i for i, m in enumerate(after) if m["role"] == "assistant" and m.get("tool_calls")]
    latest = after[rounds[-1] + 1:] if rounds else []
    results = [brain.Result(m.get("tool_name") or "?", m["content"], m["content"].startswith("error:"))
               for m in latest if m["role"] == "tool"]
    return brain.decide(messages[asked]["content"], [t["function"]["name"] for t in body["tools"]], results,
                        len(rounds))


def words(text: str) -> int:
    return len(text.split())


def images_problem(message: dict, model: str) -> Reply | None:
    """Ollama's 400 for a message's `images` it cannot use (None: none, or images a vision model takes)."""
    given = message.get("images")
    if given is None:
        return None
    if not isinstance(given, list) or not all(isinstance(image, str) for image in given):
        return _error(400, "json: cannot unmarshal images into Go struct field Message.messages.images of type "
                           "[]api.ImageData")
    for image in given:
        valid = BASE64.match(image).end()
        if valid < len(image) or len(image) % 4:
            return _error(400, f"illegal base64 data at input byte {min(valid, len(image) - len(image) % 4)}")
        if images.sniff(images.decode(image)) is None:  # the fake's wording
            return _error(400, "image: unknown format")
    if given and not any(model.split(":")[0] == name for name in VISION):  # the fake's wording
        return _error(400, f'"{model}" does not support images')
    return None


def images_of(message: dict) -> list[bytes]:
    return [images.decode(image) for image in message.get("images") or []]


def thinking_text(messages: list[dict], tokens: int) -> str:
    """`tokens` words of thinking about the last user message."""
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    seed = f"Hmm, the user asks: {' '.join(last.split()[:8])}. Let me think it through.".split()
    return " ".join(seed[i % len(seed)] for i in range(tokens))


def default_answer(messages: list[dict]) -> str:
    last = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
    seen = "".join(f" {images.seen(data)}" for data in images_of(last))
    return f"Answer to: {' '.join(last['content'].split()[:12])}{seen}"


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"error": message})


def _line(data: dict) -> bytes:
    return json.dumps(data).encode() + b"\n"


class OllamaFake:
    """Routes for /api/chat, all the SDK needs to chat. `models` are the pulled ones; `answer(messages)` is what
    they say."""

    def __init__(self, models: tuple[str, ...] = ("llama3.2",), answer: Callable[[list[dict]], str] = default_answer,
                 stream_error_after: int | None = None, chunk_delay_s: float = 0.0,
                 tools: Callable[[dict], brain.Decision | None] = tool_turn):
        self.tools = tools  # what the model does when offered tools: call some, or answer (None: not offered)
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
            # content may be left out of a turn that only calls tools (ollama's client drops an empty one)
            content = m.get("content", "" if m.get("tool_calls") else None)
            if m.get("role") not in ("system", "user", "assistant", "tool") or not isinstance(content, str) \
                    or set(m) - {"role", "content", "thinking", "images", "tool_calls", "tool_name"}:
                return _error(400, f"invalid message {m!r}")
            problem = images_problem(m, str(body["model"]))
            if problem:
                return problem
        options = body.get("options") or {}
        if set(options) - OPTIONS:
            return _error(400, f"unknown option {sorted(set(options) - OPTIONS)[0]!r}")
        if "seed" in options and type(options["seed"]) is not int:
            return _error(400, f"option \"seed\" must be of type integer, not {type(options['seed']).__name__}")
        if body.get("format") not in (None, "", "json") and not isinstance(body.get("format"), dict):
            return _error(400, f"invalid format {body.get('format')!r}")
        if not self.pulled(body["model"]):
            return _error(404, f"model '{body['model']}' not found")
        return self.check_think(body) or tools_problem(body)

    def thinker(self, name: str) -> tuple[str, ...] | None:
        """The levels of a thinking model (() for true/false only); None for a model that does not think."""
        return THINKERS.get(name, THINKERS.get(name.removesuffix(":latest")))

    def check_think(self, body: dict) -> Reply | None:
        think = body.get("think")
        if think is None:
            return None
        if not isinstance(think, bool) and think not in ("low", "medium", "high"):
            return _error(400, f'invalid think value: "{think}" (must be "high", "medium", "low", true, or false)')
        levels = self.thinker(body["model"])
        if levels is None and think is not False:
            return _error(400, f'"{body["model"]}" does not support thinking')
        if levels == () and isinstance(think, str):
            return _error(400, f'think value "{think}" is not supported for this model')
        return None

    def thought(self, body: dict) -> int:
        """Thinking tokens this call spends."""
        levels = self.thinker(body["model"])
        think = body.get("think")
        if levels is None or think is False and not levels:
            return 0
        return THOUGHT[think if isinstance(think, str) else "medium"]

    def chat(self, request: Received) -> Reply:
        try:
            body = request.json
        except json.JSONDecodeError:
            return _error(400, "invalid character in request body")
        problem = self.validate(body)
        if problem:
            return problem
        options = body.get("options") or {}
        decision = self.tools(body)
        calls = decision.calls if decision is not None else []
        text = decision.text if decision is not None else self.answer(body["messages"])
        thought = self.thought(body)
        finish = "stop"
        limit = options.get("num_predict")
        if limit is not None and limit >= 0 and thought >= limit:  # the cap ran out while it was still thinking
            thought, text, finish = limit, "", "length"
        elif limit is not None and limit >= 0 and words(text) + thought > limit:
            text = " ".join(text.split()[:limit - thought])
            finish = "length"
        thinking = thinking_text(body["messages"], thought)
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        final = {"model": body["model"], "created_at": created, "done": True, "done_reason": finish,
                 "total_duration": 50 * NANOS, "load_duration": 5 * NANOS,
                 "prompt_eval_count": sum(words(said(m)) for m in body["messages"]) + 3 * len(body["messages"])
                 + images.OLLAMA_IMAGE_TOKENS * sum(len(m.get("images") or []) for m in body["messages"]),
                 "prompt_eval_duration": 10 * NANOS, "eval_count": words(text) + thought, "eval_duration": 30 * NANOS}
        if calls and finish == "stop":  # the model calls tools: all of them in one message
            made = [{"id": f"call_{i}", "function": {"index": i, "name": name, "arguments": arguments}}
                    for i, (name, arguments) in enumerate(calls)]
            final["eval_count"] = sum(words(json.dumps(a)) for _, a in calls) + thought
            message = {"role": "assistant", "content": "", "tool_calls": made,
                       **({"thinking": thinking} if thinking else {})}
            if not body.get("stream", True):
                return Reply(200, {**final, "message": message})
            lines = [_line({"model": body["model"], "created_at": created, "done": False, "message": message}),
                     _line({**final, "message": {"role": "assistant", "content": ""}})]
            return Reply(200, headers={"Content-Type": "application/x-ndjson"}, chunk_delay_s=self.chunk_delay_s,
                         chunks=iter(lines))
        if not body.get("stream", True):  # Ollama streams unless told not to
            message = {"role": "assistant", "content": text, **({"thinking": thinking} if thinking else {})}
            return Reply(200, {**final, "message": message})
        return Reply(200, headers={"Content-Type": "application/x-ndjson"}, chunk_delay_s=self.chunk_delay_s,
                     chunks=self._lines(body["model"], created, text, thinking, final))

    def _lines(self, model, created, text, thinking, final):
        def line(field, word, first):
            return _line({"model": model, "created_at": created, "done": False,
                          "message": {"role": "assistant", "content": "",
                                      field: word if first else " " + word}})

        for i, word in enumerate(thinking.split(" ") if thinking else []):
            yield line("thinking", word, i == 0)
        for i, word in enumerate(text.split(" ") if text else []):
            if self.stream_error_after is not None and i == self.stream_error_after:
                yield _line({"error": "an error was encountered while running the model: unexpected EOF"})
                return
            yield line("content", word, i == 0)
        yield _line({**final, "message": {"role": "assistant", "content": ""}})

    def routes(self) -> dict:
        return {("POST", "/api/chat"): self.chat}


def ollama_server(faults: Faults | None = None, latency_s: float = 0.0, **options) -> FakeServer:
    fake = OllamaFake(**options)
    server = FakeServer(fake.routes(), faults=faults, latency_s=latency_s)
    server.fake = fake
    return server
