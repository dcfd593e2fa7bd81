"""A strict fake of the Gemini API (generateContent, streamGenerateContent) on 127.0.0.1.

It speaks both wire formats the two Google SDKs use:
- google-genai: `POST /{version}/models/{model}:generateContent`, and `:streamGenerateContent?alt=sse`
  (server-sent events, one `data:` line per chunk).
- google-generativeai over REST: the same paths with `?$alt=json;enum-encoding=int` (enums as numbers),
  and streaming as one JSON array sent in pieces (`[{...}\r\n,\r\n{...}]`), not SSE.
Strict the way the real API is: unknown request fields, roles other than user/model, a temperature
outside 0..2 or a bad key get Google's error bodies. A wrong key gets what Google really sends
(400 INVALID_ARGUMENT with reason API_KEY_INVALID); `reject_key_with` picks 401 or 403 instead.
Usage comes in `usageMetadata`; when streaming, only the last chunk carries the full counts.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from tests.fakes.openai_server import words
from tests.fakes.server import FakeServer, Faults, Received, Reply

VERSIONS = ("v1", "v1beta")
BODY_FIELDS = {"contents", "systemInstruction", "generationConfig", "safetySettings", "tools", "toolConfig",
               "cachedContent"}
GENERATION_FIELDS = {"temperature", "maxOutputTokens", "topP", "topK", "candidateCount", "stopSequences",
                     "responseMimeType", "responseSchema", "responseJsonSchema", "presencePenalty",
                     "frequencyPenalty", "seed", "thinkingConfig", "responseModalities"}
MIME_TYPES = {"text/plain", "application/json", "text/x.enum"}
# google.ai.generativelanguage's FinishReason numbers, sent when the client asks for enum-encoding=int
FINISH_NUMBERS = {"STOP": 1, "MAX_TOKENS": 2, "SAFETY": 3}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def google_error(code: int, message: str, reason: str | None = None, headers: dict | None = None) -> Reply:
    """Google's error body: {"error": {"code", "message", "status", "details"}}."""
    error = {"code": code, "message": message, "status": STATUS_NAMES.get(code, "UNKNOWN")}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                             "domain": "googleapis.com",
                             "metadata": {"service": "generativelanguage.googleapis.com"}}]
    return Reply(code, {"error": error}, headers=headers)


def default_answer(contents: list[dict]) -> str:
    last = next((c["parts"][0]["text"] for c in reversed(contents) if c["role"] == "user"), "")
    return f"Answer to: {' '.join(last.split()[:12])}"


def _texts(content: dict) -> list[str]:
    return [part["text"] for part in content.get("parts", [])]


class GeminiFake:
    """Routes for /{version}/models/*. `answer(contents) -> text` decides what the model says."""

    def __init__(self, key: str = "test-key", answer: Callable[[list[dict]], str] = default_answer,
                 reject_key_with: int = 400, cached_tokens: int = 0, thoughts_tokens: int = 0,
                 finish_reason: str | None = None, stream_error_after: int | None = None,
                 chunk_delay_s: float = 0.0, echo_key: bool = False, sse_always: bool = False):
        self.key = key
        self.echo_key = echo_key  # a careless server: its error repeats the credentials it was sent
        self.answer = answer
        self.reject_key_with = reject_key_with
        self.cached_tokens = cached_tokens
        self.thoughts_tokens = thoughts_tokens
        self.finish_reason = finish_reason  # force one (SAFETY...); None: STOP, or MAX_TOKENS when cut
        self.stream_error_after = stream_error_after
        self.chunk_delay_s = chunk_delay_s
        # a proxy (LiteLLM's Gemini route) that streams server-sent events whatever the client asked for: what
        # google-generativeai, which asks for one JSON array, cannot read
        self.sse_always = sse_always

    # --- checks -----------------------------------------------------------------------------------
    def check_key(self, request: Received) -> Reply | None:
        query = parse_qs(urlsplit(request.path).query)
        key = request.headers.get("x-goog-api-key") or (query.get("key") or [None])[0]
        if not key:
            return google_error(403, "Method doesn't allow unregistered callers (callers without established "
                                     "identity). Please use API Key or other form of API consumer identity to "
                                     "call this API.", "SERVICE_DISABLED")
        if key != self.key:
            if self.echo_key:
                return google_error(self.reject_key_with, f"API key not valid: {key} (authorization: "
                                    f"{request.headers.get('authorization')})", "API_KEY_INVALID")
            if self.reject_key_with == 400:
                return google_error(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
            if self.reject_key_with == 401:
                return google_error(401, "Request had invalid authentication credentials.",
                                    "ACCESS_TOKEN_TYPE_UNSUPPORTED")
            return google_error(403, "Permission denied: Consumer has been suspended.", "CONSUMER_SUSPENDED")
        return None

    def check_body(self, body) -> Reply | None:
        if not isinstance(body, dict):
            return google_error(400, "Invalid JSON payload received.")
        for name in body:
            if name not in BODY_FIELDS:
                return google_error(400, f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return google_error(400, "* GenerateContentRequest.contents: contents is not specified")
        for content in contents:
            if set(content) - {"role", "parts"}:
                return google_error(400, f'Invalid JSON payload received. Unknown name in content: {sorted(content)}')
            if content.get("role") not in ("user", "model"):
                return google_error(400, "Please use a valid role: user, model.")
            if not self._parts_ok(content):
                return google_error(400, "* GenerateContentRequest.contents.parts: contents.parts must not be empty.")
        system = body.get("systemInstruction")
        if system is not None and (set(system) - {"role", "parts"} or not self._parts_ok(system)):
            return google_error(400, "* GenerateContentRequest.system_instruction: invalid content")
        config = body.get("generationConfig", {})
        for name in config:
            if name not in GENERATION_FIELDS:
                return google_error(400, f'Invalid JSON payload received. Unknown name "{name}" at '
                                         f"'generation_config': Cannot find field.")
        temperature = config.get("temperature", 1.0)
        if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
            return google_error(400, "* GenerateContentRequest.generation_config.temperature: "
                                     "temperature must be between 0 and 2")
        limit = config.get("maxOutputTokens")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            return google_error(400, "* GenerateContentRequest.generation_config.max_output_tokens: must be positive")
        seed = config.get("seed")
        if seed is not None and (type(seed) is not int or not -2**31 <= seed < 2**31):  # an int32
            return google_error(400, f"Invalid value at 'generation_config.seed' (TYPE_INT32), {seed!r}")
        if config.get("responseMimeType", "text/plain") not in MIME_TYPES:
            return google_error(400, f"* GenerateContentRequest.generation_config.response_mime_type: "
                                     f"allowed mimetypes are {sorted(MIME_TYPES)}")
        return None

    @staticmethod
    def _parts_ok(content: dict) -> bool:
        parts = content.get("parts")
        return isinstance(parts, list) and bool(parts) and all(
            isinstance(p, dict) and set(p) == {"text"} and isinstance(p["text"], str) for p in parts)

    # --- answers ----------------------------------------------------------------------------------
    def usage(self, body: dict, text: str, final: bool = True) -> dict:
        system = body.get("systemInstruction")
        prompt = sum(words(t) for c in body["contents"] for t in _texts(c)) + (sum(map(words, _texts(system)))
                                                                                if system else 0)
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
        if not final:
            return usage
        usage["candidatesTokenCount"] = words(text)
        usage["totalTokenCount"] = prompt + words(text) + self.thoughts_tokens
        if self.thoughts_tokens:
            usage["thoughtsTokenCount"] = self.thoughts_tokens
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = min(self.cached_tokens, prompt)
        return usage

    def generate(self, request: Received) -> Reply:
        url = urlsplit(request.path)
        version, _, rest = url.path.lstrip("/").partition("/")
        model, _, method = rest.partition(":")
        if version not in VERSIONS or not model.startswith("models/") or method not in (
                "generateContent", "streamGenerateContent"):
            return google_error(404, f"Method not found: {url.path}")
        problem = self.check_key(request)
        if problem:
            return problem
        try:
            body = request.json
        except json.JSONDecodeError:
            return google_error(400, "Invalid JSON payload received.")
        problem = self.check_body(body)
        if problem:
            return problem
        query = parse_qs(url.query)
        numbers = "enum-encoding=int" in (query.get("$alt") or [""])[0]
        text = self.answer(body["contents"])
        limit = body.get("generationConfig", {}).get("maxOutputTokens")
        finish = self.finish_reason or "STOP"
        if limit is not None and words(text) > limit:
            text = " ".join(text.split()[:limit])
            finish = self.finish_reason or "MAX_TOKENS"
        finish_value = FINISH_NUMBERS[finish] if numbers else finish
        model_version = model.removeprefix("models/")
        if method == "generateContent":
            return Reply(200, self._response(body, text, finish_value, model_version, final=True))
        pieces = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
        if query.get("alt") == ["sse"] or self.sse_always:
            chunks = self._sse(body, pieces, finish_value, model_version)
            return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=chunks,
                         chunk_delay_s=self.chunk_delay_s)
        return Reply(200, headers={"Content-Type": "application/json; charset=UTF-8"},
                     chunks=self._json_array(body, pieces, finish_value, model_version),
                     chunk_delay_s=self.chunk_delay_s)

    def _response(self, body, text, finish, model_version, final: bool) -> dict:
        candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if final:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "usageMetadata": self.usage(body, text if final else "", final),
                "modelVersion": model_version, "responseId": "fake-response-id"}

    def _chunks(self, body, pieces, finish, model_version):
        """Each piece of text as a response chunk; the last one has the finish reason and full usage."""
        full = "".join(pieces)
        for i, piece in enumerate(pieces):
            if self.stream_error_after is not None and i == self.stream_error_after:
                yield {"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}
                return
            last = i == len(pieces) - 1
            chunk = self._response(body, piece, finish, model_version, final=last)
            if last:
                chunk["usageMetadata"] = self.usage(body, full, final=True)
            yield chunk

    def _sse(self, body, pieces, finish, model_version):
        for chunk in self._chunks(body, pieces, finish, model_version):
            yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()

    def _json_array(self, body, pieces, finish, model_version):
        for i, chunk in enumerate(self._chunks(body, pieces, finish, model_version)):
            yield ("[" if i == 0 else "\r\n,\r\n").encode() + json.dumps(chunk, indent=2).encode()
        yield b"\r\n]"

    def routes(self) -> dict:
        return {("POST", f"/{version}/models/*"): self.generate for version in VERSIONS}


def gemini_server(faults: Faults | None = None, latency_s: float = 0.0, **options) -> FakeServer:
    fake = GeminiFake(**options)
    server = FakeServer(fake.routes(), faults=faults, latency_s=latency_s)
    server.fake = fake
    return server
