"""What the embedded model's own process costs a call: the run's latency against the model process's own.

The run times each call around the pipe (runner.providers.local); the model's process times the same call
from the moment it reads it to its last line (`worker_s`). The difference is what the process boundary
adds: writing and reading JSON lines, and the wake-ups on both sides.

    python benchmarks/local_pipe.py --calls 20 --max-tokens 8
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.providers.local import model_path  # noqa: E402
from runner.providers.local_process import WorkerProcess  # noqa: E402

MESSAGES = [{"role": "system", "content": "You are an assistant that is great at telling jokes"},
            {"role": "user", "content": "Tell a light-hearted joke for an audience of Data Scientists"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()
    started = time.perf_counter()
    worker = WorkerProcess.spawn()
    worker.load(str(model_path(None)), 2048, False)
    print(f"start and load: {time.perf_counter() - started:.2f} s (load alone {worker.ready['load_s']:.2f} s)")
    overheads, latencies = [], []
    for _ in range(args.calls):
        start = time.perf_counter()
        worker.send({"call": {"messages": MESSAGES, "temperature": 0.0, "max_tokens": args.max_tokens,
                              "json_mode": False, "stream": True}})
        chunks = 0
        while "done" not in (message := worker.receive()):
            chunks += 1
        latency = time.perf_counter() - start
        latencies.append(latency)
        overheads.append(latency - message["done"]["worker_s"])
    worker.close()
    ms = sorted(o * 1000 for o in overheads)
    print(f"{args.calls} calls, {chunks} chunks each: latency median {statistics.median(latencies):.3f} s; "
          f"pipe overhead per call median {statistics.median(ms):.3f} ms, max {ms[-1]:.3f} ms")


if __name__ == "__main__":
    main()
