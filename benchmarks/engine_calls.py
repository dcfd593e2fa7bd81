"""How the engine scales with the number of calls: wall time and the peak memory of the run and its comparison process.

Runs `python -m runner model=gpt repeats=N cache=false` against the loopback OpenAI fake for a few N and
prints calls per second and peak resident memory. Flat memory means the peak barely moves from 1,000 to 10,000 calls.

    python benchmarks/engine_calls.py [N ...]          (default: 1000 10000)
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from measure import run_measured  # noqa: E402 - benchmarks/ is not a package

from tests.conftest import clean_env  # noqa: E402
from tests.fakes.openai_server import openai_server  # noqa: E402


def measure(calls: int) -> tuple[float, float]:
    """(seconds, peak resident MB of the run and its comparison process) of one run of `calls` calls, in a
    fresh process. The run leaves with os._exit, so its memory is read from outside (benchmarks/measure.py)."""
    with tempfile.TemporaryDirectory() as folder, openai_server() as server:
        env = clean_env(OPENAI_API_KEY="test-key", RUNNER_CACHE_DIR=str(Path(folder) / "cache"),
                        PYTHONPATH=str(REPO))
        command = [sys.executable, "-m", "runner", "model=gpt", f"model.base_url={server.url}/v1",
                   f"repeats={calls}", "cache=false", "model.concurrency=32", "max_tokens=16"]
        measured = run_measured(f"runner {calls}", command, cwd=Path(folder), env=env)
        if measured.exit_code != 0 or len(server.received) != calls:
            raise SystemExit(f"run of {calls} calls failed ({measured.exit_code}):\n{measured.output[-2000:]}")
    return measured.wall_s, measured.peak_mb


def main(argv: list[str]) -> None:
    for calls in [int(a) for a in argv] or [1000, 10000]:
        seconds, peak_mb = measure(calls)
        print(f"{calls:>6} calls: {seconds:6.1f} s ({calls / seconds:5.0f} calls/s), peak resident {peak_mb:6.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
