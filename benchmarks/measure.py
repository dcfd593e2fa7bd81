"""Runs one command as a whole process and measures it: wall time, CPU time and peak memory.

CPU and peak resident memory come from `os.wait4`, which reports them for that one child (and the
children it waited for, e.g. promptfoo's node), so figures of different runs never mix.
"""
from __future__ import annotations

import os
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

    def cpu_ms_per_call(self, calls: int) -> float:
        return 1000 * self.cpu_s / calls


def run_measured(name: str, argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float = 900) -> Measured:
    log = cwd / f"{name.replace(' ', '_')}.log"
    with open(log, "w+", encoding="utf-8") as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        killer = threading.Timer(timeout_s, process.kill)  # a hung run ends; its figures show it
        killer.start()
        _, status, usage = os.wait4(process.pid, 0)  # blocks without holding the GIL: the server thread runs
        killer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
        out.seek(0)
        output = out.read()
    # ru_maxrss is in KiB on Linux
    return Measured(name, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode, output)
