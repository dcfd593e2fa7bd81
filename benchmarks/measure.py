"""Runs one command as a whole process and measures it: wall time, CPU time and peak memory.

CPU and peak resident memory come from `os.wait4`, which reports them for that one child (and the
children it waited for, e.g. promptfoo's node), so figures of different runs never mix.
"""
from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measured:
    name: str
    wall_s: float
    cpu_s: float
    peak_mb: float
    exit_code: int
    output: str  # stdout and stderr, for figures the process prints and for errors
    line_times: list[tuple[float, str]]  # (seconds since start, line) as each output line arrived

    def ended_at(self, pattern: str) -> float:
        """Seconds from the start to the first output line matching `pattern` (nan if none)."""
        found = re.compile(pattern)
        return next((t for t, line in self.line_times if found.search(line)), float("nan"))

    def cpu_ms_per_call(self, calls: int) -> float:
        return 1000 * self.cpu_s / calls


def run_measured(name: str, argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float = 1800) -> Measured:
    """Run `argv` to its end; its output goes to NAME.log in `cwd`, each line timed as it arrives."""
    line_times: list[tuple[float, str]] = []
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace")

    def read() -> None:
        for line in process.stdout:
            line_times.append((time.perf_counter() - started, line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killer = threading.Timer(timeout_s, process.kill)  # a hung run ends; its figures show it
    killer.start()
    _, status, usage = os.wait4(process.pid, 0)  # blocks without holding the GIL: the server thread runs
    wall = time.perf_counter() - started
    killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    reader.join()
    output = "".join(line for _, line in line_times)
    (cwd / f"{name.replace(' ', '_')}.log").write_text(output, encoding="utf-8")
    # ru_maxrss is in KiB on Linux
    return Measured(name, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode,
                    output, line_times)
