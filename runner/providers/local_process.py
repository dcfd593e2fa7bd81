"""The run's handle on one embedded-model process (runner.providers.local_worker): start it, exchange JSON
lines with it, and say in words how it ended when it dies.

Plain `subprocess` with pipes, read by blocking calls in the caller's thread: it works the same on Linux,
macOS and Windows, and one process can serve the jobs of a multirun, each with its own event loop.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# How Windows reports a process killed by a fault (NTSTATUS codes as exit codes)
WINDOWS_FAULTS = {0xC0000005: "access violation", 0xC000001D: "illegal instruction",
                  0xC0000409: "fail-fast abort", 0xC00000FD: "stack overflow"}


class WorkerDied(Exception):
    """The process ended while the run was waiting for it."""

    def __init__(self, returncode: int | None, last_output: list[str]):
        self.returncode = returncode
        self.last_output = last_output
        self.fault = fault_name(returncode)
        super().__init__(self.how)

    @property
    def how(self) -> str:
        """'crashed (SIGSEGV)', 'exited unexpectedly (exit code 1)'."""
        if self.fault:
            return f"crashed ({self.fault})"
        return f"exited unexpectedly (exit code {self.returncode})"


class LoadFailed(Exception):
    """The process started but llama.cpp could not load the model (a bad GGUF, too little memory)."""


def fault_name(returncode: int | None) -> str | None:
    """The signal or Windows fault that ended a process, or None for a plain exit."""
    if returncode is None:
        return None
    if returncode < 0:  # POSIX: killed by signal -returncode
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return WINDOWS_FAULTS.get(returncode & 0xFFFFFFFF) if os.name == "nt" else None


def _environment() -> dict:
    """The worker's environment: this copy of `runner` importable, and no API keys (it needs none)."""
    env = {name: value for name, value in os.environ.items() if not name.upper().endswith("_API_KEY")}
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


class WorkerProcess:
    """One running process with the model loaded in it."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.ready: dict = {}
        self.last_output: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr.start()

    @classmethod
    def spawn(cls) -> WorkerProcess:
        """Start the process (it then waits for `load`). Raises OSError when it cannot be started."""
        process = subprocess.Popen([sys.executable, "-m", "runner.providers.local_worker"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=_environment(), encoding="utf-8")
        return cls(process)

    def load(self, path: str, n_ctx: int, repack: bool) -> None:
        """Load the model and wait until it is ready. Raises LoadFailed or WorkerDied."""
        self.send({"load": {"path": path, "n_ctx": n_ctx, "repack": repack}})
        answer = self.receive()
        if "failed" in answer:
            self.close()
            raise LoadFailed(answer["failed"])
        self.ready = answer["ready"]

    def _read_stderr(self) -> None:
        # llama.cpp is quiet with verbose=False: what arrives here is a crash's last words (faulthandler's
        # stack, a GGML_ASSERT), kept for the log when the process dies
        for line in self.process.stderr:
            line = line.rstrip()
            if line:
                self.last_output.append(line)
                log.debug("embedded model process: %s", line)

    def send(self, message: dict) -> None:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except OSError:  # it is gone: say how
            raise self._died() from None

    def receive(self) -> dict:
        """The next line it answers; WorkerDied when it ends instead."""
        line = self.process.stdout.readline()
        if not line:
            raise self._died()
        return json.loads(line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def _died(self) -> WorkerDied:
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its pipe yet still running: end it
            self.kill()
            code = self.process.returncode
        self._stderr.join(timeout=2)
        return WorkerDied(code, list(self.last_output))

    def kill(self) -> None:
        """End it now (a call given up on, the run's end)."""
        try:
            self.process.kill()
        except OSError:
            pass

    def close(self) -> None:
        """Let it exit on its own: it ends when its stdin closes."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
