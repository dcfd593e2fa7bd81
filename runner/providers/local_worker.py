"""The embedded model's own process: `python -m runner.providers.local_worker`, started by runner.providers.local.

llama.cpp is native code: a fault inside it (SIGSEGV, SIGABRT, an illegal instruction) kills the process it
runs in. Running it here, and not in the run's process, means such a crash costs the call in flight and
nothing else: the run records it, restarts this process for the next call, and still writes its comparison.

The protocol is JSON lines. The run sends, on stdin:
  {"load": {"path": ..., "n_ctx": ..., "repack": false}}      once, first
  {"call": {"messages", "temperature", "max_tokens", "json_mode", "json_schema", "seed", "stream"}}   then one per call
and this process answers, on its stdout, one line at a time:
  {"ready": {...}} or {"failed": "why"}                         after the load (then it exits on "failed")
  {"text": "..."} per streamed chunk, then {"done": {...}} or {"error": "...", "kind": ...}   per call
Calls are answered one at a time: one llama.cpp context serves one call at a time. The model is loaded
once, for the life of the process. When stdin closes (the run ended, or was killed) the process exits at
once, even in the middle of a call.

Test-only switch (never set it in real use): RUNNER_TEST_LOCAL_WORKER_CRASH=segv|abort|ill|bus makes the
process crash with a real SIGSEGV, SIGABRT, SIGILL or SIGBUS when a call arrives, so tests can crash it;
RUNNER_TEST_LOCAL_WORKER_START_DELAY_S=N makes its start-up N seconds slower, so tests can tell whether a
call's clock includes the start-up.
"""
from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import os
import queue
import secrets
import signal
import sys
import threading
import time

CRASH_ENV = "RUNNER_TEST_LOCAL_WORKER_CRASH"
START_DELAY_ENV = "RUNNER_TEST_LOCAL_WORKER_START_DELAY_S"


def model_params_with(**fields):
    """A stand-in for llama_cpp's `llama_model_default_params` that sets `fields` on the defaults.

    `Llama(...)` has no keyword for some model parameters (`use_extra_bufts` among them, up to 0.3.36 at
    least); it builds its params from `llama_cpp.llama_cpp.llama_model_default_params()` and loads the
    model inside `__init__`. Setting an attribute a ctypes Structure does not declare does nothing, so
    each field is checked against the struct's `_fields_` first.
    """
    import llama_cpp.llama_cpp as low

    declared = {name for name, *_ in low.llama_model_params._fields_}
    missing = sorted(set(fields) - declared)
    if missing:
        raise RuntimeError(f"this llama-cpp-python ({_version()}) has no model parameter {', '.join(missing)}")
    defaults = low.llama_model_default_params

    def default_params():
        params = defaults()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    return default_params


@contextlib.contextmanager
def repacking(repack: bool):
    """While inside, every `Llama(...)` this process builds has llama.cpp repack its weights only when `repack`.

    llama_cpp.llama reads `llama_model_default_params` from llama_cpp.llama_cpp at call time; a process that
    loads its models from one thread at a time (this one, runner.llama_server) can swap it for a load's
    duration safely."""
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params
    low.llama_model_default_params = model_params_with(use_extra_bufts=repack)
    try:
        yield
    finally:
        low.llama_model_default_params = original


def check_repacking(llm, repack: bool) -> None:
    """Raise unless the loaded model took `repack` (a llama-cpp-python that builds its params otherwise)."""
    if bool(llm.model_params.use_extra_bufts) != repack:
        raise RuntimeError(f"this llama-cpp-python ({_version()}) did not take use_extra_bufts={repack}")


def load_model(path: str, n_ctx: int, repack: bool):
    """The Llama for `path`; llama.cpp repacks weights for its AVX-512/AMX kernels only when `repack`."""
    from llama_cpp import Llama

    with repacking(repack):
        llm = Llama(model_path=path, n_ctx=n_ctx, verbose=False)
    check_repacking(llm, repack)
    # the first decode pages in the weights and starts llama.cpp's threads: do it now, not in a call's time
    llm.eval(llm.tokenize(b"Hello", add_bos=True))
    llm.reset()
    return llm


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("llama-cpp-python")
    except Exception:  # noqa: BLE001 - only for a message
        return "unknown version"


class TokenCounter:
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

    def output_tokens(self, finish_reason: str | None) -> int:
        # "stop": the last sampled token was the end-of-generation token, which the answer does not contain
        return max(self.sampled - (1 if finish_reason == "stop" else 0), 0)


def answer(llm, call: dict, send) -> None:
    """One call: streamed chunks (if asked) then the final line, all through `send`."""
    crash = os.environ.get(CRASH_ENV)
    if crash == "segv":
        faulthandler._sigsegv()
    elif crash == "abort":
        os.abort()
    elif crash in ("ill", "bus"):  # faulthandler prints the stack, then the signal ends the process
        signal.raise_signal(getattr(signal, f"SIG{crash.upper()}"))
    # without a seed llama-cpp-python derives one from the model's, the same in every process: every run
    # would tell the same joke
    seed = call.get("seed")
    params = dict(messages=call["messages"], temperature=call["temperature"], max_tokens=call["max_tokens"],
                  seed=secrets.randbelow(2**31) if seed is None else seed)
    if call.get("json_schema") is not None:  # llama.cpp turns the schema into a grammar the sampling follows
        params["response_format"] = {"type": "json_object", "schema": call["json_schema"]}
    elif call.get("json_mode"):
        params["response_format"] = {"type": "json_object"}
    started = time.perf_counter()
    try:
        if call.get("stream", True):
            from llama_cpp import LogitsProcessorList

            counter = TokenCounter()
            finish_reason = None
            for chunk in llm.create_chat_completion(**params, stream=True,
                                                    logits_processor=LogitsProcessorList([counter])):
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    send({"text": text})
                finish_reason = choice.get("finish_reason") or finish_reason
            done = {"finish_reason": finish_reason, "input_tokens": counter.prompt_tokens or 0,
                    "output_tokens": counter.output_tokens(finish_reason)}
        else:
            result = llm.create_chat_completion(**params)
            choice = result["choices"][0]
            done = {"text": choice["message"]["content"] or "", "finish_reason": choice["finish_reason"],
                    "input_tokens": result["usage"]["prompt_tokens"],
                    "output_tokens": result["usage"]["completion_tokens"]}
    except ValueError as exc:  # llama.cpp's way of saying the prompt does not fit the context
        send({"error": f"llama.cpp: {exc}", "kind": "bad_request"})
        return
    except Exception as exc:  # noqa: BLE001 - one failed call, not a dead process
        send({"error": f"llama.cpp: {type(exc).__name__}: {exc}", "kind": "local"})
        return
    done["worker_s"] = time.perf_counter() - started  # the call's time as this process saw it (pipe overhead)
    send({"done": done})


def _lines(stream, into: queue.Queue) -> None:
    """Read the run's requests; when the run is gone (stdin closed), exit at once, even mid-call."""
    for line in stream:
        into.put(line)
    os._exit(0)


def serve() -> int:
    # Ctrl-C reaches every process of the terminal; the run decides what it means and closes our stdin
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()  # a crash prints the Python stack on stderr: the run logs it
    # stdout is the answer pipe: keep a copy of it, and send anything else written there (llama.cpp's C
    # code prints to file descriptor 1) to stderr
    answers = open(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", newline="\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def send(message: dict) -> None:
        with lock:
            answers.write(json.dumps(message) + "\n")
            answers.flush()

    requests: queue.Queue[str] = queue.Queue()
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    threading.Thread(target=_lines, args=(stdin, requests), daemon=True).start()
    load = json.loads(requests.get())["load"]
    delay = float(os.environ.get(START_DELAY_ENV) or 0)
    if delay:
        time.sleep(delay)
    started = time.perf_counter()
    try:
        llm = load_model(load["path"], load["n_ctx"], load["repack"])
    except Exception as exc:  # noqa: BLE001 - the run records it on every call of this model
        send({"failed": " ".join(f"{type(exc).__name__}: {exc}".split())})
        return 0  # it said why; an exit code would only look like a crash (abort() exits 3 on Windows)
    send({"ready": {"pid": os.getpid(), "load_s": time.perf_counter() - started,
                    "use_extra_bufts": bool(llm.model_params.use_extra_bufts), "n_ctx": llm.n_ctx(),
                    "llama_cpp": _version()}})
    while True:
        answer(llm, json.loads(requests.get())["call"], send)


if __name__ == "__main__":
    code = serve()
    sys.stderr.flush()
    os._exit(code)  # no teardown: llama.cpp's frees take time and the run is not waiting for them
