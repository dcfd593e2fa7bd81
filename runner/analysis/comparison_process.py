"""The comparison is built in a second process that starts with the run.

Building the comparison needs pandas and matplotlib: about 0.8 s of imports, as long as the calls of a
small sweep. `python -m runner` starts this process first thing. It imports them on another core while
the run composes its config and makes its calls, then waits. When the calls are done, the run sends it
the run's folder. It builds results.csv, summary.csv, report.md and the plots, answers with one JSON
line of counts, and exits. A run that ends without a comparison (`--help`, a config error, a dry run,
Ctrl-C) closes the pipe instead, and the process exits without a word.

The process ignores Ctrl-C (the run it serves decides what an interrupt means) and never sees the keys
read from `.env`, which are loaded after it starts. Where it cannot start, the run builds the comparison
itself.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# the analysis's own loggers: Hydra sets the root logger to INFO, and matplotlib would log its font search
QUIET_LOGGERS = ("matplotlib", "PIL")
# options after which Hydra runs no job, so there will be no comparison to build
NO_RUN_OPTIONS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc",
                  "--version", "--resolve"}


@dataclass
class Outcome:
    """What the run says when its comparison is written, and the exit code it ends with."""

    calls: int
    ok: int
    error: int
    skipped: int
    exit_code: int

    def line(self, folder: Path) -> str:
        calls = f"{self.calls} call{'' if self.calls == 1 else 's'}"
        return (f"runner: {calls} ({self.ok} ok, {self.error} error, {self.skipped} skipped) -> "
                f"{folder / 'report.md'}")


def build_here(folder: Path) -> Outcome:
    """Build the comparison here, in this process."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    from runner.analysis.build import build_comparison  # pandas: imported when a comparison is built

    comparison = build_comparison(folder)
    answers = comparison.answers  # the judges' calls are told in the report, under What judging cost
    counts = answers.status.value_counts().to_dict() if not answers.empty else {}
    return Outcome(len(answers), counts.get("ok", 0), counts.get("error", 0), counts.get("skipped", 0),
                   comparison.exit_code)


class ComparisonProcess:
    """The parent's side: start the process, then send it one folder (or nothing)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    @classmethod
    def start(cls) -> ComparisonProcess | None:
        package_parent = str(Path(__file__).resolve().parents[2])  # the same `runner` the parent imported
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        try:
            process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, env=env, encoding="utf-8")
        except OSError:
            return None
        return cls(process)

    def request(self, folder: Path) -> Outcome | None:
        """The comparison of `folder`, built by the process; None when it failed (it said why on stderr)."""
        try:
            self.process.stdin.write(json.dumps({"folder": str(Path(folder).absolute())}) + "\n")
            self.process.stdin.close()
        except OSError:  # it died before it could be asked (its traceback is on stderr)
            pass
        answer = self.process.stdout.readline()
        self.process.wait()
        try:
            return Outcome(**json.loads(answer))
        except (ValueError, TypeError):
            return None

    def stop(self) -> None:
        """No comparison after all: the process exits as soon as its imports are done."""
        try:
            self.process.stdin.close()
        except OSError:
            pass


_started: ComparisonProcess | None = None


def start_for(argv: list[str]) -> None:
    """Start the process, unless the command line says no job will run."""
    global _started
    if not NO_RUN_OPTIONS.intersection(argv) and "dry_run=true" not in argv:
        _started = ComparisonProcess.start()


def take() -> ComparisonProcess | None:
    """The process started for this run, if any (once)."""
    global _started
    process, _started = _started, None
    return process


def serve() -> int:
    """The child's side: import, warm up, then build the folder the run sends (or exit on an empty pipe)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers, sys.stdout = sys.stdout, sys.stderr  # stdout is the answer pipe: nothing else may go there
    import runner.analysis.build  # noqa: F401 - pandas and the report: the imports this process exists to do early
    from runner.analysis import plots

    try:
        plots.warm_up()
    except Exception:  # noqa: BLE001 - only a head start: the real plots say what is wrong, if anything
        pass
    request = sys.stdin.readline()
    if not request:
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    outcome = build_here(Path(json.loads(request)["folder"]))
    try:
        answers.write(json.dumps(asdict(outcome)) + "\n")
        answers.flush()
    except BrokenPipeError:  # the run was stopped (Ctrl-C, SIGTERM) while this was built: nobody to answer
        pass
    return 0


if __name__ == "__main__":
    code = serve()
    sys.stderr.flush()
    # no interpreter teardown: freeing pandas and matplotlib would take 0.2 s after the answer is out
    os._exit(code)
