"""`python -m runner.comparison FOLDER`: rebuild a run's or sweep's comparison from what its jobs wrote.

The command of the contract; the work is in runner.analysis.build.
"""
from __future__ import annotations

import sys

from runner.analysis.build import main

if __name__ == "__main__":
    sys.exit(main())
