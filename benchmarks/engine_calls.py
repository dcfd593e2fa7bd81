"""How the engine scales with the number of calls: wall time and the runner process's peak memory.

Runs `python -m runner model=gpt repeats=N cache=false` against the loopback OpenAI fake for a few N and
prints calls per second and peak RSS. Flat memory means the peak barely moves from 1,000 to 10,000 calls.

    python benchmarks/engine_calls.py [N ...]          (default: 1000 10000)
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import clean_env  # noqa: E402
from tests.fakes.openai_server import openai_server  # noqa: E402


def measure(calls: int) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one run of `calls` calls, in a fresh process."""
    with tempfile.TemporaryDirectory() as folder, openai_server() as server:
        env = clean_env(OPENAI_API_KEY="test-key", RUNNER_CACHE_DIR=str(Path(folder) / "cache"))
        command = [sys.executable, "-c",
                   "import resource, runpy, sys, atexit\n"
                   "atexit.register(lambda: print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                   "file=sys.stderr))\n"
                   "sys.argv = ['runner', *sys.argv[1:]]\n"
                   "runpy.run_module('runner', run_name='__main__')",
                   "model=gpt", f"model.base_url={server.url}/v1", f"repeats={calls}", "cache=false",
                   "model.concurrency=32", "max_tokens=16"]
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak = next((int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("peak_kb")), None)
        if proc.returncode != 0 or peak is None or len(server.received) != calls:
            raise SystemExit(f"run of {calls} calls failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, peak / 1024


def main(argv: list[str]) -> None:
    for calls in [int(a) for a in argv] or [1000, 10000]:
        seconds, peak_mb = measure(calls)
        print(f"{calls:>6} calls: {seconds:6.1f} s ({calls / seconds:5.0f} calls/s), peak RSS {peak_mb:6.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
