"""`python -m runner.compare [OLD] [NEW]`: what changed between two runs, from the history database.

The command of the contract; the work is in runner.analysis.compare_runs.
"""
from __future__ import annotations

import sys

from runner.analysis.compare_runs import main

if __name__ == "__main__":
    sys.exit(main())
