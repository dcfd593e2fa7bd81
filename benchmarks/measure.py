"""Runs one command as a whole process and measures it: wall time, CPU time and peak memory.

CPU time comes from `os.wait4`, which reports it for that one child and the children it waited for (the
runner's comparison process, promptfoo's node), so figures of different runs never mix. Peak memory is
the largest sum of resident memory over the child and all its descendants at any moment, sampled every
20 ms from /proc (Linux): a tool that spreads its work over processes is charged for all of them at
once (pages they share are counted in each). Where /proc is missing, wait4's peak of the largest single
process is used instead. The same samples also give the peak of the started process alone and the peak
of its descendants alone (for the runner: the run, and the comparison process it starts at launch).
"""
from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4
SAMPLE_S = 0.02


@dataclass
class Measured:
    name: str
    wall_s: float
    cpu_s: float
    peak_mb: float
    exit_code: int
    output: str  # stdout and stderr, for figures the process prints and for errors
    line_times: list[tuple[float, str]]  # (seconds since start, line) as each output line arrived
    own_peak_mb: float = float("nan")  # the started process alone (nan without /proc)
    children_peak_mb: float = float("nan")  # its descendants alone, summed at each sample

    def ended_at(self, pattern: str) -> float:
        """Seconds from the start to the first output line matching `pattern` (nan if none)."""
        found = re.compile(pattern)
        return next((t for t, line in self.line_times if found.search(line)), float("nan"))

    def cpu_ms_per_call(self, calls: int) -> float:
        return 1000 * self.cpu_s / calls


def _tree(pid: int) -> list[int]:
    """The process and all its descendants, from /proc/PID/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


class TreeMemory:
    """Samples the summed resident memory of a process tree until stopped; `peak_kb` is the largest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.own_peak_kb = 0
        self.children_peak_kb = 0
        self.available = os.path.isdir(f"/proc/{pid}/task")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if self.available:
            self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(SAMPLE_S):
            own, *children = (_rss_kb(pid) for pid in _tree(self.pid))
            self.own_peak_kb = max(self.own_peak_kb, own)
            self.children_peak_kb = max(self.children_peak_kb, sum(children))
            self.peak_kb = max(self.peak_kb, own + sum(children))

    def stop(self) -> None:
        self._done.set()
        if self.available:
            self._thread.join()


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
    memory = TreeMemory(process.pid)
    killer = threading.Timer(timeout_s, process.kill)  # a hung run ends; its figures show it
    killer.start()
    if hasattr(os, "waitid"):  # wait for the exit without reaping, so the sampler sees the last moment
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    wall = time.perf_counter() - started
    memory.stop()
    _, status, usage = os.wait4(process.pid, 0)  # blocks without holding the GIL: the server thread runs
    killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    reader.join()
    output = "".join(line for _, line in line_times)
    (cwd / f"{name.replace(' ', '_')}.log").write_text(output, encoding="utf-8")
    # ru_maxrss is in KiB on Linux
    peak_kb = memory.peak_kb if memory.available and memory.peak_kb else usage.ru_maxrss
    sampled = memory.available and memory.peak_kb
    return Measured(name, wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024, process.returncode,
                    output, line_times, memory.own_peak_kb / 1024 if sampled else float("nan"),
                    memory.children_peak_kb / 1024 if sampled else float("nan"))
