"""How the engine scales with the number of calls: wall time, the CPU each call costs and the peak memory of the
run and its comparison process.

Runs `python -m runner model=gpt repeats=N cache=false` (gpt-4.1-mini, a model that does not reason) against
the loopback OpenAI fake for a few N and prints calls per second, the CPU of the calls in the run's process per
call (the runner's "N calls in ... s of CPU" line less its provider's preparation: the per-call path without
start-up) and peak resident memory. Flat memory means the peak barely moves from 1,000 to 10,000 calls.

    python benchmarks/engine_calls.py [N ...]          (default: 1000 10000)
    python benchmarks/engine_calls.py 2000 --repo /path/to/other/checkout --rounds 5

`--repo` (repeatable) runs another checkout's runner on the same calls, against this checkout's fake, the
checkouts taking turns within each round; the last lines give each one's median over the rounds and its
ratio to this checkout's.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from measure import Measured, run_measured  # noqa: E402 - benchmarks/ is not a package

from tests.conftest import clean_env  # noqa: E402
from tests.fakes.openai_server import openai_server  # noqa: E402


def calls_cpu_ms(measured: Measured, calls: int) -> float:
    """CPU milliseconds per call of the calls in the run's process, less the SDK's import and client."""
    match = re.search(r"calls? in [\d.]+ s, ([\d.]+) s of CPU", measured.output)
    if not match:
        return float("nan")
    prepared = sum(float(cpu) for cpu in re.findall(r"prepared in [\d.]+ s, ([\d.]+) s of CPU", measured.output))
    return 1000 * (float(match.group(1)) - prepared) / calls


def measure(calls: int, repo: Path = REPO) -> Measured:
    """One run of `calls` calls of `repo`'s runner, in a fresh process. The run leaves with os._exit, so its
    memory is read from outside (benchmarks/measure.py)."""
    with tempfile.TemporaryDirectory() as folder, openai_server() as server:
        env = clean_env(OPENAI_API_KEY="test-key", RUNNER_CACHE_DIR=str(Path(folder) / "cache"),
                        PYTHONPATH=str(repo))
        command = [sys.executable, "-m", "runner", "model=gpt", f"model.base_url={server.url}/v1",
                   f"repeats={calls}", "cache=false", "model.concurrency=32", "max_tokens=16"]
        measured = run_measured(f"runner {calls}", command, cwd=Path(folder), env=env)
        if measured.exit_code != 0 or len(server.received) != calls:
            raise SystemExit(f"{repo}: run of {calls} calls failed ({measured.exit_code}):\n{measured.output[-2000:]}")
    return measured


def line(name: str, calls: int, measured: Measured) -> str:
    return (f"{name}{calls:>6} calls: {measured.wall_s:6.1f} s ({calls / measured.wall_s:5.0f} calls/s), "
            f"{calls_cpu_ms(measured, calls):5.2f} ms of CPU per call in the run, "
            f"peak resident {measured.peak_mb:6.1f} MB")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calls", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument("--repo", action="append", type=Path, default=[],
                        help="another checkout whose runner to measure too (repeatable)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, the checkouts taking turns in each")
    args = parser.parse_args(argv)
    repos = [REPO] + [r.resolve() for r in args.repo if r.resolve() != REPO]
    width = max(len(str(r)) for r in repos) + 2 if len(repos) > 1 else 0
    for calls in args.calls:
        seen: dict[Path, list[Measured]] = {repo: [] for repo in repos}
        for _ in range(args.rounds):
            for repo in repos:
                measured = measure(calls, repo)
                seen[repo].append(measured)
                print(line(f"{str(repo):<{width}}" if width else "", calls, measured), flush=True)
        if len(repos) > 1 or args.rounds > 1:
            first = seen[repos[0]]
            base_cpu = statistics.median(calls_cpu_ms(m, calls) for m in first)
            base_wall = statistics.median(m.wall_s for m in first)
            for repo in repos:
                cpu = statistics.median(calls_cpu_ms(m, calls) for m in seen[repo])
                wall = statistics.median(m.wall_s for m in seen[repo])
                print(f"median of {args.rounds}: {repo}: {cpu:.2f} ms of CPU per call ({cpu / base_cpu:.2f} x), "
                      f"wall {wall:.1f} s ({wall / base_wall:.2f} x)")


if __name__ == "__main__":
    main(sys.argv[1:])
