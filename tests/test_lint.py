"""The lint rules hold: `ruff check runner tests benchmarks` passes with pyproject's [tool.ruff], among them
the banned-api rule that keeps pandas and matplotlib inside runner/analysis."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def ruff(*args: str, source: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=REPO, input=source,
                          capture_output=True, text=True, timeout=120)


def test_the_code_passes_ruff():
    result = ruff("runner", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_pandas_outside_the_analysis_is_refused():
    """The banned-api rule is configured and bites: the same import passes in runner/analysis only."""
    source = "import pandas as pd\n\nprint(pd)\n"
    outside = ruff("--stdin-filename", "runner/calling/engine.py", "-", source=source)
    assert outside.returncode == 1 and "TID251" in outside.stdout, outside.stdout
    inside = ruff("--stdin-filename", "runner/analysis/summary.py", "-", source=source)
    assert inside.returncode == 0, inside.stdout
