"""Work done aside in a forked child (runner.analysis.aside): the comparison draws its plots this way.

Each case runs in a fresh interpreter, as the comparison process is: one thread, so the child is forked
(pytest's own process may hold other tests' server threads, where Aside rightly does the work in place).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_the_work_runs_in_a_child_and_its_result_comes_back():
    done = run("""
        import os
        from runner.analysis.aside import Aside, can_fork
        assert can_fork()
        with Aside(lambda: (os.getpid(), [1, 2, 3])) as work:
            here = os.getpid()
            pid, value = work.result()
        print(pid != here, value, work.result()[1])
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "True [1, 2, 3] [1, 2, 3]"


def test_an_error_in_the_child_is_raised_here_with_its_message():
    done = run("""
        from runner.analysis.aside import Aside
        def broken():
            raise ValueError("no latency column")
        with Aside(broken) as work:
            try:
                work.result()
            except RuntimeError as exc:
                print("raised:", exc)
    """)
    assert done.returncode == 0, done.stderr
    assert "raised: ValueError: no latency column" in done.stdout


def test_a_child_that_dies_without_a_result_is_an_error_not_a_hang():
    done = run("""
        import os, signal
        from runner.analysis.aside import Aside
        with Aside(lambda: os.kill(os.getpid(), signal.SIGKILL)) as work:
            try:
                work.result()
            except RuntimeError as exc:
                print("raised:", exc)
    """)
    assert done.returncode == 0, done.stderr
    assert "raised: the child process ended without a result" in done.stdout


def test_the_child_is_reaped_when_the_body_fails_and_that_failure_is_the_one_raised():
    done = run("""
        import os
        from runner.analysis.aside import Aside
        try:
            with Aside(lambda: 1 / 0) as work:
                child = work.pid
                raise KeyError("the report failed")
        except KeyError as exc:
            print("raised:", exc)
        try:
            os.waitpid(child, os.WNOHANG)
            print("still there")
        except ChildProcessError:
            print("reaped")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["raised: 'the report failed'", "reaped"]


def test_asked_not_to_fork_the_work_is_done_in_this_process():
    done = run("""
        import os
        from runner.analysis.aside import Aside
        with Aside(os.getpid, fork=False) as work:
            print(work.pid, work.result() == os.getpid())
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "None True"


def test_with_other_threads_the_work_is_done_in_this_process():
    done = run("""
        import os, threading
        from runner.analysis.aside import Aside
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
        with Aside(os.getpid) as work:
            print(work.pid, work.result() == os.getpid())
        stop.set()
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "None True"


def test_report_html_carries_plots_the_child_was_still_drawing(tmp_path):
    """The comparison waits for the plots before report.html embeds them, however long they take."""
    done = run(f"""
        import base64, time
        from pathlib import Path
        from runner.analysis import plots
        from runner.analysis.build import build_comparison
        slow = plots.latency_bars
        def slowly(summary, path):
            time.sleep(1.5)
            return slow(summary, path)
        plots.latency_bars = slowly
        from runner.records import Record, RecordWriter
        folder = Path({str(tmp_path)!r}) / "run"
        with RecordWriter(folder) as writer:
            for model, latency in (("gpt", 0.8), ("claude", 1.2)):
                writer.write(Record(run_id="run", model=model, provider="openai", model_id="gpt-4o", task="joke",
                                    prompt="default", temperature=0.7, item="a", repeat=0, response="hello",
                                    latency_s=latency, input_tokens=10, output_tokens=5, cost_usd=0.001))
        build_comparison(folder, history_path=folder / "history.db")
        png = base64.b64encode((folder / "latency.png").read_bytes()).decode()
        print(png in (folder / "report.html").read_text(encoding="utf-8"))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True"
